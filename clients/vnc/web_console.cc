#include "clients/vnc/web_console.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

#include "clients/vnc/tls_front.h"
#include "common/log.h"

namespace vgpu::vnc {

struct WebConsole::Impl {
  mg_context* context = nullptr;
  std::map<uint32_t, VncScreen*> screens;
  std::string rewrite;  // civetweb keeps pointers to option strings
  // Host header values of this console ("127.0.0.1:6080", and
  // "localhost:6080" on loopback); set before any websocket comes.
  std::vector<std::string> hosts;
  std::string origin_scheme = "http://";
  // Off loopback the console's names are not known here (an address of the
  // machine, a DNS name in the certificate, a port the browser leaves out):
  // a websocket must then come from a page of the host it was sent to.
  bool any_name = false;
  std::unique_ptr<TlsFront> tls_front;  // HTTPS: before civetweb's port
};

namespace {

// One browser's websocket: its bytes go to `fd`, the screen's come back
// from it on `reader`.
struct Relay {
  int fd = -1;
  std::thread reader;
};

constexpr absl::string_view kPrefix = "/vnc/";

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The scanout a websocket URI names, or nullptr.
VncScreen* ScreenFor(const mg_connection* connection, WebConsole::Impl* impl) {
  const mg_request_info* request = mg_get_request_info(connection);
  absl::string_view uri(request->local_uri != nullptr ? request->local_uri
                                                      : "");
  if (uri.substr(0, kPrefix.size()) != kPrefix) return nullptr;
  uint32_t scanout = 0;
  if (!absl::SimpleAtoi(uri.substr(kPrefix.size()), &scanout)) return nullptr;
  auto it = impl->screens.find(scanout);
  return it == impl->screens.end() ? nullptr : it->second;
}

// Browsers send any page's websocket to any address, with the page's
// Origin: only our own page may connect (and only under a name of ours, so
// DNS rebinding fails too).
bool FromOurPage(const mg_connection* connection, WebConsole::Impl* impl) {
  const char* host = mg_get_header(connection, "Host");
  const char* origin = mg_get_header(connection, "Origin");
  if (host == nullptr || origin == nullptr) return false;
  if (impl->any_name)
    return absl::string_view(origin) == absl::StrCat(impl->origin_scheme, host);
  for (const std::string& ours : impl->hosts) {
    if (ours == host) {
      return absl::string_view(origin) ==
             absl::StrCat(impl->origin_scheme, ours);
    }
  }
  return false;
}

int OnConnect(const mg_connection* connection, void* data) {
  auto* impl = static_cast<WebConsole::Impl*>(data);
  if (!FromOurPage(connection, impl)) {
    const char* origin = mg_get_header(connection, "Origin");
    VGPU_LOG(WARNING) << "web console: refused a websocket from origin "
                      << (origin != nullptr ? origin : "(none)");
    return 1;  // refuses the upgrade
  }
  return ScreenFor(connection, impl) == nullptr ? 1 : 0;
}

void OnReady(mg_connection* connection, void* data) {
  VncScreen* screen =
      ScreenFor(connection, static_cast<WebConsole::Impl*>(data));
  int pair[2];
  if (screen == nullptr ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    mg_websocket_write(connection, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "", 0);
    return;
  }
  const int buffer = 1 << 20;
  setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
  setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
  if (absl::Status added = screen->AddClient(pair[1]); !added.ok()) {
    VGPU_LOG(WARNING) << "web console: " << added.message();
    close(pair[0]);
    mg_websocket_write(connection, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "", 0);
    return;
  }
  auto* relay = new Relay;
  relay->fd = pair[0];
  relay->reader = std::thread([connection, fd = relay->fd] {
    std::vector<char> bytes(256 << 10);
    while (true) {
      const ssize_t n = read(fd, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (mg_websocket_write(connection, MG_WEBSOCKET_OPCODE_BINARY,
                             bytes.data(), static_cast<size_t>(n)) <= 0) {
        break;
      }
    }
    // The screen dropped the client (or the browser went): end the
    // websocket too.
    mg_websocket_write(connection, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "", 0);
  });
  mg_set_user_connection_data(connection, relay);
}

int OnData(mg_connection* connection, int flags, char* data, size_t length,
           void*) {
  auto* relay = static_cast<Relay*>(mg_get_user_connection_data(connection));
  if (relay == nullptr) return 0;
  switch (flags & 0x0F) {
    case MG_WEBSOCKET_OPCODE_BINARY:
    case MG_WEBSOCKET_OPCODE_CONTINUATION:
      break;
    case MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE:
      return 0;
    default:  // ping, pong (civetweb answers pings itself), text
      return 1;
  }
  while (length > 0) {
    const ssize_t n = write(relay->fd, data, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    data += n;
    length -= static_cast<size_t>(n);
  }
  return 1;
}

void OnClose(const mg_connection* connection, void*) {
  auto* relay = static_cast<Relay*>(mg_get_user_connection_data(connection));
  if (relay == nullptr) return;
  // The screen sees the end of its client; the reader's read ends.
  shutdown(relay->fd, SHUT_RDWR);
  relay->reader.join();
  close(relay->fd);
  delete relay;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WebConsole>> WebConsole::Start(
    const WebConsoleOptions& options,
    const std::map<uint32_t, VncScreen*>& screens) {
  in_addr ipv4{};
  if (inet_pton(AF_INET, options.host.c_str(), &ipv4) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "web console host '", options.host, "' is not an IPv4 address"));
  }
  if (!IsDirectory(options.page_dir)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the console page folder ", options.page_dir, " is missing"));
  }
  if (!IsDirectory(options.novnc_dir + "/core")) {
    return absl::InvalidArgumentError(
        absl::StrCat("noVNC is not in ", options.novnc_dir,
                     " (Debian: apt-get install novnc)"));
  }
  const bool tls = !options.tls_cert_file.empty();
  if (tls != !options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "HTTPS needs both a certificate and its key");
  }
  auto console = std::unique_ptr<WebConsole>(new WebConsole());
  console->impl_ = std::make_unique<Impl>();
  console->tls_ = tls;
  Impl* impl = console->impl_.get();
  impl->screens = screens;
  // civetweb puts the rest of the URI right after the folder.
  impl->rewrite = absl::StrCat("/novnc/=", options.novnc_dir, "/");
  // With TLS, civetweb serves the front only.
  const std::string ports = tls ? std::string("127.0.0.1:0")
                                : absl::StrCat(options.host, ":", options.port);
  const std::string threads = absl::StrCat(options.max_connections);
  // tcp_nodelay: a key's echo is a small frame, which Nagle held for the
  // browser's delayed ACK (40 ms a key).
  const char* civet_options[] = {"listening_ports",
                                 ports.c_str(),
                                 "document_root",
                                 options.page_dir.c_str(),
                                 "url_rewrite_patterns",
                                 impl->rewrite.c_str(),
                                 "enable_directory_listing",
                                 "no",
                                 "num_threads",
                                 threads.c_str(),
                                 "enable_websocket_ping_pong",
                                 "yes",
                                 "tcp_nodelay",
                                 "1",
                                 nullptr};
  mg_init_library(0);
  mg_callbacks callbacks{};
  // civetweb prints its own errors; ours say what happened.
  callbacks.log_message = [](const mg_connection*, const char* message) {
    VGPU_LOG(DEBUG) << "civetweb: " << message;
    return 1;
  };
  impl->context = mg_start(&callbacks, impl, civet_options);
  if (impl->context == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve the web console on ", ports, " (in use?)"));
  }
  mg_server_port listening{};
  if (mg_get_server_ports(impl->context, 1, &listening) == 1)
    console->port_ = static_cast<uint16_t>(listening.port);
  if (tls) {
    absl::StatusOr<std::unique_ptr<TlsFront>> front =
        TlsFront::Start({.host = options.host,
                         .port = options.port,
                         .cert_file = options.tls_cert_file,
                         .key_file = options.tls_key_file,
                         .backend_port = console->port_,
                         .max_connections = options.max_connections});
    if (!front.ok()) return front.status();
    impl->tls_front = std::move(*front);
    console->port_ = impl->tls_front->port();
    impl->origin_scheme = "https://";
  }
  impl->hosts.push_back(absl::StrCat(options.host, ":", console->port_));
  impl->any_name = (ntohl(ipv4.s_addr) >> 24) != 127;
  if (options.host == "127.0.0.1")
    impl->hosts.push_back(absl::StrCat("localhost:", console->port_));
  mg_set_websocket_handler(impl->context, "/vnc/", OnConnect, OnReady, OnData,
                           OnClose, impl);
  return console;
}

WebConsole::~WebConsole() {
  if (impl_ == nullptr) return;
  impl_->tls_front.reset();  // its connections end first
  if (impl_->context != nullptr) mg_stop(impl_->context);
}

}  // namespace vgpu::vnc
