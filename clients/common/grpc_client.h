// What every gRPC client of vgpu-displayd shares: the connection flags,
// TLS files checked before connecting, waiting for a daemon that is still
// starting, and errors a person can act on.
//
// Flags (defined here, so every client has the same ones):
//   --server            ADDRESS: host:port or unix:/path
//   --tls_ca            PEM CA bundle: TLS, trusting these roots
//   --tls_cert/--tls_key  client certificate (mutual TLS); implies TLS
//   --connect_timeout   how long to wait for the daemon to accept (0: once)
//
// Thread rules: call from main, after flag parsing.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include <grpcpp/grpcpp.h>

namespace vgpu::clients {

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::string server;
  bool tls = false;
  bool client_certificate = false;
  // The --connect_timeout wait saw the channel READY.
  bool ready = false;
};

// Reads the TLS files (InvalidArgument naming the flag and the system's
// reason), makes the channel and, if --connect_timeout is set, waits up to
// that long for it to be ready. A channel that is not ready is returned
// anyway: the first call then fails with the reason (DescribeError).
// `cancelled`, if given, is polled while waiting (e.g. Ctrl-C).
absl::StatusOr<Connection> ConnectFromFlags(
    int max_receive_message_bytes,
    const std::function<bool()>& cancelled = nullptr);

// Sets up a call on `connection`: once the channel was seen READY the call
// waits for it (gRPC publishes READY before the picker that uses the new
// connection, so a fail-fast call right then can still fail with the old
// "No such file or directory"); otherwise it fails fast with the reason.
// Give the call a deadline, or a way to cancel it, when the daemon may go
// away.
void PrepareCall(const Connection& connection, grpc::ClientContext* context);

// The call's message plus, where it helps, what to do: the daemon is not
// running, it wants TLS, it wants a client certificate, the CA is wrong.
std::string DescribeError(const grpc::Status& status,
                          const Connection& connection);

// gRPC prints its own internal errors (TLS handshakes, ...) to stderr; the
// clients say what went wrong themselves. GRPC_VERBOSITY in the
// environment brings them back.
void QuietGrpcLogs();

}  // namespace vgpu::clients
