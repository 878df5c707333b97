// A minimal HTTP/1.0 endpoint for Prometheus: GET /metrics answers the text
// from `render`; anything else gets 404. One thread, one request at a time,
// short timeouts: it serves a scraper, not the public.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

#include "server/accept_loop.h"

namespace vgpu::server {

// Serves on its own thread until destroyed.
class MetricsHttpServer {
 public:
  // `address` is host:port (port 0 picks one).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, std::function<std::string()> render);
  int port() const { return port_; }

 private:
  MetricsHttpServer(int port, std::function<std::string()> render)
      : port_(port), render_(std::move(render)) {}
  // Answers one request on `client` and closes it.
  void Serve(int client);

  const int port_;
  const std::function<std::string()> render_;
  std::unique_ptr<AcceptLoop> accept_loop_;  // last: stops first
};

}  // namespace vgpu::server
