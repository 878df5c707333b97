#include "server/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#include "common/status_macros.h"

namespace vgpu::server {

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, std::function<std::string()> render) {
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError("metrics address must be host:port");
  }
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(static_cast<uint16_t>(port));
  std::string host = address.substr(0, colon);
  if (inet_pton(AF_INET, host.c_str(), &in.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        "metrics host must be an IPv4 address, e.g. 127.0.0.1");
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof(in)) != 0 ||
      listen(fd, 8) != 0) {
    int error = errno;
    if (fd >= 0) close(fd);
    return absl::ErrnoToStatus(error,
                               absl::StrCat("cannot listen on ", address));
  }
  socklen_t length = sizeof(in);
  getsockname(fd, reinterpret_cast<sockaddr*>(&in), &length);
  std::unique_ptr<MetricsHttpServer> server(
      new MetricsHttpServer(ntohs(in.sin_port), std::move(render)));
  VGPU_ASSIGN_OR_RETURN(server->accept_loop_,
                        AcceptLoop::Start(fd, SOCK_CLOEXEC, "metrics endpoint",
                                          [raw = server.get()](int client) {
                                            raw->Serve(client);
                                          }));
  return server;
}

void MetricsHttpServer::Serve(int client) {
  timeval timeout{2, 0};
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  char request[1024];
  ssize_t n = recv(client, request, sizeof(request) - 1, 0);
  std::string response;
  if (n > 0 && std::strncmp(request, "GET /metrics", 12) == 0) {
    std::string body = render_();
    response = absl::StrCat(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n",
        "Content-Length: ", body.size(), "\r\n\r\n", body);
  } else {
    response = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  }
  size_t sent = 0;
  while (sent < response.size()) {
    ssize_t m = send(client, response.data() + sent, response.size() - sent,
                     MSG_NOSIGNAL);
    if (m <= 0) break;
    sent += static_cast<size_t>(m);
  }
  // Close gracefully: a close with unread request bytes would reset the
  // connection under the client before it reads the answer.
  shutdown(client, SHUT_WR);
  timeval drain{0, 200000};
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &drain, sizeof(drain));
  char sink[256];
  while (recv(client, sink, sizeof(sink), 0) > 0) {
  }
  close(client);
}

}  // namespace vgpu::server
