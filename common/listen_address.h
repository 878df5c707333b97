// Listen addresses given on the command line, checked before anything
// listens: `host:port` (IPv4, [IPv6] or a name; port 0..65535, 0 picks
// one) or, where allowed, `unix:/path/to.sock`.
//
// Thread rules: none (plain functions).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vgpu {

struct ListenAddress {
  bool unix_socket = false;
  std::string path;  // unix socket
  std::string host;  // TCP: as given, without brackets
  uint16_t port = 0;
  bool loopback = false;  // every address `host` resolves to is loopback

  // "host:port" ("[v6]:port") or "unix:path", as gRPC takes it.
  std::string ToString() const;
};

// Errors name the flag: "--grpc_listen=127.0.0.1:99999: port must be
// 0..65535". `allow_unix`: whether `unix:` is accepted; `ipv4_only`: for
// listeners that take only a dotted IPv4 host.
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view flag,
                                                 absl::string_view text,
                                                 bool allow_unix,
                                                 bool ipv4_only = false);

// Whether a TCP listener on `address` could bind now: "HOST:PORT is in use",
// "HOST is not an address of this machine", or the system's reason. Binds
// with SO_REUSEADDR and without SO_REUSEPORT, as our listeners do. Port 0
// always passes.
absl::Status CheckTcpListenable(const ListenAddress& address);

// A TCP connection to 127.0.0.1:`port` (blocking, close-on-exec), or -1
// with errno saying why.
int ConnectLoopbackTcp(uint16_t port);

}  // namespace vgpu
