// The browser console: one HTTP or HTTPS port (civetweb, Debian's
// libcivetweb) that serves our console page, noVNC's files (Debian's novnc
// package) under /novnc/, and a websocket per scanout at /vnc/<scanout>
// whose bytes are relayed to that scanout's VncScreen as one more RFB
// client (so passwords, view-only and the client limit apply to browsers
// too). With a certificate, a TlsFront (GnuTLS) serves HTTPS and wss on the
// port and civetweb listens on a loopback port of its own, where websockets
// are refused (their Host is not the console's).
//
// Thread rules: Start and the destructor on one thread. civetweb's worker
// threads run the handlers (one per open websocket) and a relay thread per
// websocket carries the screen's bytes to the browser; the TLS front has
// its own (tls_front.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

#include "clients/vnc/vnc_screen.h"

namespace vgpu::vnc {

struct WebConsoleOptions {
  std::string host = "127.0.0.1";  // IPv4 literal (civetweb as Debian builds
                                   // it has no IPv6)
  uint16_t port = 6080;            // 0: any free port
  std::string page_dir;            // our console page
  std::string novnc_dir = "/usr/share/novnc";
  uint32_t max_connections = 32;  // websockets and page loads at once
  // Both set: HTTPS, and the websockets are wss (PEM files: the
  // certificate chain and its private key).
  std::string tls_cert_file = {};
  std::string tls_key_file = {};
};

class WebConsole {
 public:
  // `screens`: scanout number -> its screen; they must outlive the console.
  // InvalidArgument for a missing directory (naming the package to
  // install) or a certificate and key that cannot be loaded or do not
  // match; Unavailable when the port cannot be had.
  static absl::StatusOr<std::unique_ptr<WebConsole>> Start(
      const WebConsoleOptions& options,
      const std::map<uint32_t, VncScreen*>& screens);
  ~WebConsole();  // closes every websocket and stops serving

  uint16_t port() const { return port_; }
  bool tls() const { return tls_; }

  struct Impl;

 private:
  WebConsole() = default;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  bool tls_ = false;
};

}  // namespace vgpu::vnc
