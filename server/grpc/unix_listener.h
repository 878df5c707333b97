// Serves a grpc::Server on a unix socket that this class accepts itself, so
// each connection gets a large send buffer. gRPC's own unix listener keeps
// the kernel default (about 208 KiB): a full-screen raw update (8 MiB at
// 1080p) then crosses in some forty sender/receiver wake-ups, which made it
// three times slower than over loopback TCP. Insecure only (local peers).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include <grpcpp/server.h>

#include "common/unix_socket.h"
#include "server/accept_loop.h"

namespace vgpu::server {

class UnixSocketListener {
 public:
  // Listens on `path` through OwnedUnixSocket (a stale socket there is
  // replaced; a live one, or any other file, is an error) and hands each
  // accepted connection to `server`, which must outlive this object.
  static absl::StatusOr<std::unique_ptr<UnixSocketListener>> Start(
      const std::string& path, grpc::Server* server,
      int send_buffer_bytes = 4 << 20);
  // The same on a socket claimed already (so that a bad path is found
  // before the gRPC server starts).
  static absl::StatusOr<std::unique_ptr<UnixSocketListener>> Start(
      std::unique_ptr<OwnedUnixSocket> socket, grpc::Server* server,
      int send_buffer_bytes = 4 << 20);
  // Stops accepting and removes the socket file. Connections already
  // handed over belong to the server.
  ~UnixSocketListener();

  const std::string& path() const { return socket_->path(); }
  // The send buffer the kernel granted the last connection (bytes).
  int granted_send_buffer() const { return granted_.load(); }

 private:
  UnixSocketListener(std::unique_ptr<OwnedUnixSocket> socket,
                     grpc::Server* server, int send_buffer_bytes)
      : socket_(std::move(socket)),
        server_(server),
        send_buffer_bytes_(send_buffer_bytes) {}
  // Gives an accepted connection its send buffer and hands it to gRPC.
  void Serve(int client);

  std::unique_ptr<OwnedUnixSocket> socket_;
  grpc::Server* const server_;
  const int send_buffer_bytes_;
  std::atomic<int> granted_{0};
  std::unique_ptr<AcceptLoop> accept_loop_;  // last: stops first
};

}  // namespace vgpu::server
