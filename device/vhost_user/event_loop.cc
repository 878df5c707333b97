#include "device/vhost_user/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"

namespace vgpu::vhost_user {

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  Fd epoll(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return absl::ErrnoToStatus(errno, "epoll_create1");
  Fd wakeup(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wakeup.valid()) return absl::ErrnoToStatus(errno, "eventfd");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wakeup.get();
  if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wakeup.get(), &event) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl");
  }
  return std::unique_ptr<EventLoop>(
      new EventLoop(std::move(epoll), std::move(wakeup)));
}

absl::Status EventLoop::Watch(int fd, uint32_t events, Handler handler) {
  VGPU_DCHECK(OnLoopThread());
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  bool exists = handlers_.contains(fd);
  if (epoll_ctl(epoll_.get(), exists ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd,
                &event) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl");
  }
  handlers_[fd] = std::make_shared<Handler>(std::move(handler));
  return absl::OkStatus();
}

void EventLoop::Unwatch(int fd) {
  VGPU_DCHECK(OnLoopThread());
  if (handlers_.erase(fd) > 0)
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::RunOnce(int timeout_ms) {
  epoll_event events[16];
  int n = epoll_wait(epoll_.get(), events, 16, timeout_ms);
  for (int i = 0; i < n; ++i) {
    int fd = events[i].data.fd;
    if (fd == wakeup_.get()) {
      uint64_t value;
      while (read(wakeup_.get(), &value, sizeof(value)) == sizeof(value)) {
      }
      continue;
    }
    // A handler earlier in this batch may have unwatched (and closed) fd.
    auto it = handlers_.find(fd);
    if (it == handlers_.end()) continue;
    std::shared_ptr<Handler> handler = it->second;  // survives its own Unwatch
    (*handler)(events[i].events);
  }
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) task();
}

void EventLoop::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(task));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wakeup_.get(), &one, sizeof(one));
}

void EventLoop::Run() {
  owner_ = std::this_thread::get_id();
  while (!stopped()) RunOnce(-1);
  owner_ = std::thread::id();
}

bool EventLoop::OnLoopThread() const {
  const std::thread::id owner = owner_.load();
  return owner == std::thread::id() || owner == std::this_thread::get_id();
}

void EventLoop::Stop() {
  __atomic_store_n(&stop_, true, __ATOMIC_RELEASE);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wakeup_.get(), &one, sizeof(one));
}

bool EventLoop::stopped() const {
  return __atomic_load_n(&stop_, __ATOMIC_ACQUIRE);
}

}  // namespace vgpu::vhost_user
