// A minimal HTTP/1.0 endpoint for Prometheus: GET /metrics answers the text
// from `render`; anything else gets 404. One thread, one request at a time,
// short timeouts: it serves a scraper, not the public.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace vgpu::server {

// Thread-safe (Stop); the serving runs on its own thread.
class MetricsHttpServer {
 public:
  // `address` is host:port (port 0 picks one).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, std::function<std::string()> render);
  ~MetricsHttpServer();
  int port() const { return port_; }

 private:
  MetricsHttpServer(int fd, int wake_fd, int port,
                    std::function<std::string()> render);
  void Serve();

  int fd_;
  int wake_fd_;  // eventfd: stop
  int port_;
  std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace vgpu::server
