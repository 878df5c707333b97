#include "server/grpc/unix_listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include <grpcpp/server_posix.h>

#include "common/status_macros.h"

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
  std::unique_ptr<UnixSocketListener> listener(
      new UnixSocketListener(path, server, send_buffer_bytes));
  VGPU_ASSIGN_OR_RETURN(
      listener->accept_loop_,
      AcceptLoop::Start(
          fd, SOCK_CLOEXEC | SOCK_NONBLOCK, "gRPC unix listener",
          [raw = listener.get()](int client) { raw->Serve(client); }));
  return listener;
}

UnixSocketListener::~UnixSocketListener() {
  accept_loop_.reset();
  unlink(path_.c_str());
}

void UnixSocketListener::Serve(int client) {
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

}  // namespace vgpu::server
