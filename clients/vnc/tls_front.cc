#include "clients/vnc/tls_front.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

#include "common/listen_address.h"
#include "common/log.h"
#include "common/mutex.h"

namespace vgpu::vnc {
namespace {

// Versions a current browser speaks; nothing older.
constexpr char kPriorities[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";

struct Connection {
  int fd = -1;       // the client's socket
  int backend = -1;  // to the plain service
  std::string peer;
  std::thread thread;
  bool done = false;  // under Impl::mu: its thread has closed both
};

std::string Peer(const sockaddr_in& address) {
  char text[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &address.sin_addr, text, sizeof(text));
  return absl::StrCat(text, ":", ntohs(address.sin_port));
}

void NoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool SendAll(gnutls_session_t session, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = gnutls_record_send(session, data, size);
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

int ConnectBackend(uint16_t port) {
  const int fd = ConnectLoopbackTcp(port);
  if (fd >= 0) NoDelay(fd);
  return fd;
}

}  // namespace

struct TlsFront::Impl {
  TlsFrontOptions options;
  gnutls_certificate_credentials_t credentials = nullptr;
  gnutls_priority_t priority = nullptr;
  int listen_fd = -1;
  int stop_fd = -1;  // an eventfd, readable once stopping
  uint16_t port = 0;
  TlsFrontStats stats;
  std::thread acceptor;
  Mutex mu;
  std::list<std::unique_ptr<Connection>> connections VGPU_GUARDED_BY(mu);

  ~Impl() {
    if (listen_fd >= 0) close(listen_fd);
    if (stop_fd >= 0) close(stop_fd);
    if (priority != nullptr) gnutls_priority_deinit(priority);
    if (credentials != nullptr)
      gnutls_certificate_free_credentials(credentials);
  }

  // Carries bytes both ways until either side ends or the front stops.
  void Relay(gnutls_session_t session, const Connection& c) const {
    std::vector<char> buffer(16384);
    pollfd fds[3] = {
        {c.fd, POLLIN, 0}, {c.backend, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    while (true) {
      // Records already decrypted do not show in poll().
      const bool pending = gnutls_record_check_pending(session) > 0;
      short from_client = 0, from_backend = 0;
      if (!pending) {
        if (poll(fds, 3, -1) < 0) {
          if (errno == EINTR) continue;
          return;
        }
        if (fds[2].revents != 0) return;
        from_client = fds[0].revents;
        from_backend = fds[1].revents;
      }
      if (pending || from_client != 0) {
        const ssize_t n =
            gnutls_record_recv(session, buffer.data(), buffer.size());
        if (n == 0) return;  // close_notify
        if (n < 0) {
          // A record begun and not finished in time ends the connection
          // (else the thread would wait in it for good, deaf to the
          // service's side and to Stop).
          if (n != GNUTLS_E_TIMEDOUT &&
              gnutls_error_is_fatal(static_cast<int>(n)) == 0) {
            continue;
          }
          VGPU_LOG(DEBUG) << "TLS front: " << c.peer << ": "
                          << gnutls_strerror(static_cast<int>(n));
          return;
        }
        if (!WriteAll(c.backend, buffer.data(), static_cast<size_t>(n))) return;
      }
      if (from_backend != 0) {
        const ssize_t n = read(c.backend, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          gnutls_bye(session, GNUTLS_SHUT_WR);
          return;
        }
        if (!SendAll(session, buffer.data(), static_cast<size_t>(n))) return;
      }
    }
  }

  // A connection's thread: the handshake, then the relay.
  void Serve(Connection* c) {
    gnutls_session_t session = nullptr;
    int result = gnutls_init(&session, GNUTLS_SERVER | GNUTLS_NO_SIGNAL);
    const auto limit_ms = static_cast<unsigned>(
        absl::ToInt64Milliseconds(options.handshake_timeout));
    if (result >= 0) {
      gnutls_priority_set(session, priority);
      gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, credentials);
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_IGNORE);
      gnutls_transport_set_int(session, c->fd);
      gnutls_handshake_set_timeout(session, limit_ms);
      do {
        result = gnutls_handshake(session);
      } while (result < 0 && gnutls_error_is_fatal(result) == 0);
      // Reads start only once poll() saw bytes: this bounds the wait for
      // the rest of a record.
      gnutls_record_set_timeout(session, limit_ms);
    }
    if (result < 0) {
      stats.failed_handshakes.fetch_add(1, std::memory_order_relaxed);
      VGPU_LOG(INFO) << "TLS front: handshake with " << c->peer
                     << " failed: " << gnutls_strerror(result);
    } else {
      stats.connections.fetch_add(1, std::memory_order_relaxed);
      const int backend = ConnectBackend(options.backend_port);
      if (backend < 0) {
        VGPU_LOG(ERROR) << "TLS front: cannot reach 127.0.0.1:"
                        << options.backend_port << ": " << std::strerror(errno);
      } else {
        {
          MutexLock lock(&mu);
          c->backend = backend;
        }
        Relay(session, *c);
      }
    }
    if (session != nullptr) gnutls_deinit(session);
    MutexLock lock(&mu);
    close(c->fd);
    if (c->backend >= 0) close(c->backend);
    c->done = true;
    stats.open.fetch_sub(1, std::memory_order_relaxed);
  }

  // Joins the threads of connections that ended.
  void Reap() {
    std::list<std::unique_ptr<Connection>> ended;
    {
      MutexLock lock(&mu);
      for (auto it = connections.begin(); it != connections.end();) {
        if ((*it)->done) {
          ended.push_back(std::move(*it));
          it = connections.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& c : ended) c->thread.join();
  }

  void Accept() {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    while (true) {
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        VGPU_LOG(ERROR) << "TLS front: poll: " << std::strerror(errno);
        return;
      }
      if (fds[1].revents != 0) return;
      sockaddr_in address{};
      socklen_t length = sizeof(address);
      const int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&address),
                             &length, SOCK_CLOEXEC);
      Reap();
      if (fd < 0) {
        // Out of descriptors: the client waits in the backlog meanwhile.
        if (errno == EMFILE || errno == ENFILE) poll(nullptr, 0, 100);
        continue;
      }
      if (stats.open.load() >= options.max_connections) {
        stats.refused.fetch_add(1, std::memory_order_relaxed);
        VGPU_LOG(WARNING) << "TLS front: refused " << Peer(address)
                          << ": already " << options.max_connections
                          << " connections";
        close(fd);
        continue;
      }
      NoDelay(fd);
      auto c = std::make_unique<Connection>();
      c->fd = fd;
      c->peer = Peer(address);
      stats.open.fetch_add(1, std::memory_order_relaxed);
      MutexLock lock(&mu);
      Connection* raw = c.get();
      connections.push_back(std::move(c));
      raw->thread = std::thread([this, raw] { Serve(raw); });
    }
  }
};

absl::StatusOr<std::unique_ptr<TlsFront>> TlsFront::Start(
    const TlsFrontOptions& options) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(options.port);
  if (inet_pton(AF_INET, options.host.c_str(), &address.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS host '", options.host, "' is not an IPv4 address"));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (gnutls_certificate_allocate_credentials(&impl->credentials) < 0)
    return absl::InternalError("gnutls_certificate_allocate_credentials");
  // Also checks that the key belongs to the certificate.
  if (const int r = gnutls_certificate_set_x509_key_file2(
          impl->credentials, options.cert_file.c_str(),
          options.key_file.c_str(), GNUTLS_X509_FMT_PEM, nullptr, 0);
      r < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot use the certificate ", options.cert_file, " with the key ",
        options.key_file, ": ", gnutls_strerror(r)));
  }
  if (gnutls_priority_init(&impl->priority, kPriorities, nullptr) < 0)
    return absl::InternalError("gnutls_priority_init");
  impl->stop_fd = eventfd(0, EFD_CLOEXEC);
  impl->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (impl->stop_fd < 0 || impl->listen_fd < 0)
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  setsockopt(impl->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(impl->listen_fd, reinterpret_cast<const sockaddr*>(&address),
           sizeof(address)) != 0 ||
      listen(impl->listen_fd, 64) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ",
                                               options.host, ":", options.port,
                                               ": ", std::strerror(errno)));
  }
  socklen_t length = sizeof(address);
  getsockname(impl->listen_fd, reinterpret_cast<sockaddr*>(&address), &length);
  impl->port = ntohs(address.sin_port);
  Impl* raw = impl.get();
  impl->acceptor = std::thread([raw] { raw->Accept(); });
  return std::unique_ptr<TlsFront>(new TlsFront(std::move(impl)));
}

TlsFront::TlsFront(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TlsFront::~TlsFront() {
  const uint64_t stop = 1;
  if (write(impl_->stop_fd, &stop, sizeof(stop)) != sizeof(stop)) {
    VGPU_LOG(ERROR) << "TLS front: cannot stop: " << std::strerror(errno);
  }
  impl_->acceptor.join();
  {
    // Unblocks relays that wait in a read or a write.
    MutexLock lock(&impl_->mu);
    for (const auto& c : impl_->connections) {
      if (c->done) continue;
      shutdown(c->fd, SHUT_RDWR);
      if (c->backend >= 0) shutdown(c->backend, SHUT_RDWR);
    }
  }
  std::list<std::unique_ptr<Connection>> connections;
  {
    MutexLock lock(&impl_->mu);
    connections.swap(impl_->connections);
  }
  for (auto& c : connections) c->thread.join();
}

uint16_t TlsFront::port() const { return impl_->port; }

const TlsFrontStats& TlsFront::stats() const { return impl_->stats; }

}  // namespace vgpu::vnc
