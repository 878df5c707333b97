// Accepts connections on a listening socket on a thread of its own, asleep
// until one arrives (no polling: an idle server wakes nothing), and hands
// each to a callback. What the gRPC unix listener and the metrics endpoint
// share.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace vgpu::server {

class AcceptLoop {
 public:
  // Takes `listen_fd` (closed on failure too). `accept_flags` go to
  // accept4; `serve` runs on the loop's thread and owns the fd it gets.
  // `name` is for log lines.
  static absl::StatusOr<std::unique_ptr<AcceptLoop>> Start(
      int listen_fd, int accept_flags, std::string name,
      std::function<void(int client)> serve);
  // Stops accepting, joins the thread, closes the listening socket.
  ~AcceptLoop();

 private:
  AcceptLoop(int listen_fd, int wake_fd, int accept_flags, std::string name,
             std::function<void(int)> serve);
  void Run();

  const int listen_fd_;
  const int wake_fd_;  // eventfd: stop
  const int accept_flags_;
  const std::string name_;
  const std::function<void(int)> serve_;
  std::thread thread_;
};

}  // namespace vgpu::server
