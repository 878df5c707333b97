// A TLS front for a plain service on loopback: accepts TLS connections
// (GnuTLS, TLS 1.2 and 1.3) on a TCP address and relays each one's
// plaintext to a port on 127.0.0.1. The web console puts one before its
// civetweb port for HTTPS and wss: Debian's civetweb 1.15 loads OpenSSL at
// run time and calls SSL_get_peer_certificate, which OpenSSL 3 no longer
// exports, so its own TLS crashes on the first request.
//
// Thread rules: Start and the destructor on one thread. An accept thread,
// and a relay thread per connection, so a client that stops reading stalls
// only its own connection. stats() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace vgpu::vnc {

struct TlsFrontOptions {
  std::string host = "127.0.0.1";  // IPv4 literal to listen on
  uint16_t port = 0;               // 0: any free port
  // PEM files: the certificate chain (server certificate first) and its
  // private key.
  std::string cert_file = {};
  std::string key_file = {};
  uint16_t backend_port = 0;  // the plain service, on 127.0.0.1
  // Connections at once (handshaking or relaying); more are closed at once.
  uint32_t max_connections = 32;
  // A client that has not finished its handshake by then is dropped, as is
  // one that starts a TLS record and does not finish it by then.
  absl::Duration handshake_timeout = absl::Seconds(10);
};

struct TlsFrontStats {
  std::atomic<uint64_t> connections{0};  // handshakes that succeeded
  std::atomic<uint64_t> failed_handshakes{0};
  std::atomic<uint64_t> refused{0};  // over max_connections
  std::atomic<uint32_t> open{0};     // now
};

class TlsFront {
 public:
  // InvalidArgument for a bad host or certificate/key files that cannot be
  // loaded or do not match (the message says which); Unavailable when the
  // port cannot be had.
  static absl::StatusOr<std::unique_ptr<TlsFront>> Start(
      const TlsFrontOptions& options);
  ~TlsFront();  // closes every connection

  uint16_t port() const;
  const TlsFrontStats& stats() const;

  struct Impl;

 private:
  explicit TlsFront(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vgpu::vnc
