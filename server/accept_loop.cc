#include "server/accept_loop.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"

namespace vgpu::server {

absl::StatusOr<std::unique_ptr<AcceptLoop>> AcceptLoop::Start(
    int listen_fd, int accept_flags, std::string name,
    std::function<void(int client)> serve) {
  int wake_fd = eventfd(0, EFD_CLOEXEC);
  if (wake_fd < 0) {
    int error = errno;
    close(listen_fd);
    return absl::ErrnoToStatus(error, "eventfd");
  }
  return std::unique_ptr<AcceptLoop>(new AcceptLoop(
      listen_fd, wake_fd, accept_flags, std::move(name), std::move(serve)));
}

AcceptLoop::AcceptLoop(int listen_fd, int wake_fd, int accept_flags,
                       std::string name, std::function<void(int)> serve)
    : listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      accept_flags_(accept_flags),
      name_(std::move(name)),
      serve_(std::move(serve)) {
  thread_ = std::thread([this] { Run(); });
}

AcceptLoop::~AcceptLoop() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  thread_.join();
  close(wake_fd_);
  close(listen_fd_);
}

void AcceptLoop::Run() {
  while (true) {
    // Sleeps until a client connects or the destructor wakes it.
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    int client = accept4(listen_fd_, nullptr, nullptr, accept_flags_);
    if (client < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        VGPU_LOG(WARNING) << name_ << ": out of file descriptors";
        poll(nullptr, 0, 100);  // do not spin while the table is full
      }
      continue;
    }
    serve_(client);
  }
}

}  // namespace vgpu::server
