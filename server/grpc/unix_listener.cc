#include "server/grpc/unix_listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include <grpcpp/server_posix.h>

#include "common/log.h"

namespace vgpu::server {

absl::StatusOr<std::unique_ptr<UnixSocketListener>> UnixSocketListener::Start(
    const std::string& path, grpc::Server* server, int send_buffer_bytes) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unix socket path must be 1..",
                     sizeof(address.sun_path) - 1, " bytes: '", path, "'"));
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  struct stat existing {};
  if (lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      return absl::AlreadyExistsError(
          absl::StrCat(path, " exists and is not a socket"));
    }
    unlink(path.c_str());  // left behind by an earlier run
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, 64) != 0) {
    int error = errno;
    if (fd >= 0) close(fd);
    return absl::ErrnoToStatus(error, absl::StrCat("cannot listen on ", path));
  }
  int wake_fd = eventfd(0, EFD_CLOEXEC);
  if (wake_fd < 0) {
    int error = errno;
    close(fd);
    return absl::ErrnoToStatus(error, "eventfd");
  }
  return std::unique_ptr<UnixSocketListener>(
      new UnixSocketListener(fd, wake_fd, path, server, send_buffer_bytes));
}

UnixSocketListener::UnixSocketListener(int fd, int wake_fd, std::string path,
                                       grpc::Server* server,
                                       int send_buffer_bytes)
    : fd_(fd),
      wake_fd_(wake_fd),
      path_(std::move(path)),
      server_(server),
      send_buffer_bytes_(send_buffer_bytes) {
  thread_ = std::thread([this] { Serve(); });
}

UnixSocketListener::~UnixSocketListener() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  thread_.join();
  close(wake_fd_);
  close(fd_);
  unlink(path_.c_str());
}

void UnixSocketListener::Serve() {
  while (true) {
    // Sleeps until a client connects or the destructor wakes it.
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (client < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        VGPU_LOG(WARNING) << "gRPC unix listener: out of file descriptors";
        poll(nullptr, 0, 100);  // do not spin while the table is full
      }
      continue;
    }
    // Beyond net.core.wmem_max only with CAP_NET_ADMIN: try the forced
    // variant first, then take what the unprivileged one grants.
    if (setsockopt(client, SOL_SOCKET, SO_SNDBUFFORCE, &send_buffer_bytes_,
                   sizeof(send_buffer_bytes_)) != 0) {
      setsockopt(client, SOL_SOCKET, SO_SNDBUF, &send_buffer_bytes_,
                 sizeof(send_buffer_bytes_));
    }
    int granted = 0;
    socklen_t length = sizeof(granted);
    getsockopt(client, SOL_SOCKET, SO_SNDBUF, &granted, &length);
    granted_ = granted;
    grpc::AddInsecureChannelFromFd(server_, client);  // takes the fd
  }
}

}  // namespace vgpu::server
