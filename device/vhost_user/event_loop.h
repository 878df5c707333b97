// The device thread's loop: every vhost-user device of one VM (each on its
// own socket, VhostUserServer) runs on it, with their queue kicks and the
// tasks other threads post to it. A small epoll loop: fds with callbacks,
// posted tasks, a thread-safe Stop(). Whichever thread calls Run() is the
// device thread (vgpu-displayd: its main thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

#include "device/vhost_user/message.h"

namespace vgpu::vhost_user {

// Lives on one thread, except Stop(), Post() and OnLoopThread(), which are
// thread-safe. Before Run() the thread setting things up may Watch.
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
  // Whether the calling thread may touch what lives on the loop: it is the
  // thread in Run(), or none is (set-up, tear-down, tests that RunOnce).
  bool OnLoopThread() const;

 private:
  EventLoop(Fd epoll, Fd wakeup)
      : epoll_(std::move(epoll)), wakeup_(std::move(wakeup)) {}
  Fd epoll_;
  Fd wakeup_;
  std::map<int, std::shared_ptr<Handler>> handlers_;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
  bool stop_ = false;
  std::atomic<std::thread::id> owner_{};  // Run()'s thread while it runs
};

}  // namespace vgpu::vhost_user
