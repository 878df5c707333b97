// A small epoll loop for the device thread: fds with callbacks, and a
// thread-safe Stop().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"

#include "device/vhost_user/message.h"

namespace vgpu::vhost_user {

// Lives on one thread, except Stop() and Post(), which are thread-safe.
class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();

  // Watches `fd` for `events` (EPOLLIN, ...); replaces an existing watch.
  absl::Status Watch(int fd, uint32_t events, Handler handler);
  void Unwatch(int fd);
  // Runs until Stop(). Handlers may watch and unwatch fds, including their own.
  void Run();
  // Dispatches what is ready within `timeout_ms` (-1: wait). For tests.
  void RunOnce(int timeout_ms);
  void Stop();
  bool stopped() const;
  // Runs `task` on the loop thread after the events being dispatched.
  void Post(std::function<void()> task);

 private:
  EventLoop(Fd epoll, Fd wakeup)
      : epoll_(std::move(epoll)), wakeup_(std::move(wakeup)) {}
  Fd epoll_;
  Fd wakeup_;
  std::map<int, std::shared_ptr<Handler>> handlers_;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
  bool stop_ = false;
};

}  // namespace vgpu::vhost_user
