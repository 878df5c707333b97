#include "clients/vnc/tls_front.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "common/eventually.h"
#include "common/listen_address.h"

namespace vgpu::vnc {
namespace {

// A self-signed certificate for 127.0.0.1 and its key, as PEM files.
struct Credentials {
  std::string cert_file;
  std::string key_file;
};

std::string ToPem(const gnutls_datum_t& datum) {
  return std::string(reinterpret_cast<const char*>(datum.data), datum.size);
}

Credentials MakeCredentials(const std::string& name) {
  gnutls_x509_privkey_t key = nullptr;
  gnutls_x509_crt_t crt = nullptr;
  EXPECT_EQ(gnutls_x509_privkey_init(&key), 0);
  EXPECT_EQ(gnutls_x509_privkey_generate(
                key, GNUTLS_PK_ECDSA,
                GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
            0);
  EXPECT_EQ(gnutls_x509_crt_init(&crt), 0);
  gnutls_x509_crt_set_version(crt, 3);
  const unsigned char serial[] = {1};
  gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
  const time_t now = time(nullptr);
  gnutls_x509_crt_set_activation_time(crt, now - 60);
  gnutls_x509_crt_set_expiration_time(crt, now + 3600);
  EXPECT_EQ(gnutls_x509_crt_set_dn(crt, "CN=127.0.0.1", nullptr), 0);
  EXPECT_EQ(gnutls_x509_crt_set_key(crt, key), 0);
  EXPECT_EQ(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
  gnutls_datum_t pem{};
  Credentials files{.cert_file = ::testing::TempDir() + name + ".crt",
                    .key_file = ::testing::TempDir() + name + ".key"};
  EXPECT_EQ(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem), 0);
  std::ofstream(files.cert_file) << ToPem(pem);
  gnutls_free(pem.data);
  EXPECT_EQ(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &pem), 0);
  std::ofstream(files.key_file) << ToPem(pem);
  gnutls_free(pem.data);
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  return files;
}

// A plain service on loopback that answers every read with the same bytes
// upper-cased, one connection at a time.
class UpperCaseServer {
 public:
  UpperCaseServer() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(
        bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)),
        0);
    EXPECT_EQ(listen(fd_, 8), 0);
    socklen_t length = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] {
      while (true) {
        const int client = accept(fd_, nullptr, nullptr);
        if (client < 0) return;
        char buffer[4096];
        ssize_t n = 0;
        while ((n = read(client, buffer, sizeof(buffer))) > 0) {
          for (ssize_t i = 0; i < n; ++i)
            buffer[i] = static_cast<char>(std::toupper(buffer[i]));
          if (write(client, buffer, static_cast<size_t>(n)) != n) break;
        }
        close(client);
      }
    });
  }
  ~UpperCaseServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// A TLS client (no certificate check: the test's certificate is its own).
class TlsClient {
 public:
  explicit TlsClient(uint16_t port) : fd_(ConnectLoopbackTcp(port)) {
    gnutls_certificate_allocate_credentials(&credentials_);
    gnutls_init(&session_, GNUTLS_CLIENT);
    gnutls_set_default_priority(session_);
    gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, credentials_);
    gnutls_transport_set_int(session_, fd_);
    gnutls_handshake_set_timeout(session_, 10000);
  }
  ~TlsClient() {
    gnutls_deinit(session_);
    gnutls_certificate_free_credentials(credentials_);
    if (fd_ >= 0) close(fd_);
  }
  bool Handshake() {
    int result = 0;
    do {
      result = gnutls_handshake(session_);
    } while (result < 0 && gnutls_error_is_fatal(result) == 0);
    return result >= 0;
  }
  bool Send(const std::string& text) {
    size_t sent = 0;
    while (sent < text.size()) {  // at most a record (16 KiB) at a time
      const ssize_t n =
          gnutls_record_send(session_, text.data() + sent, text.size() - sent);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads until `size` bytes came or the stream ended.
  std::string Receive(size_t size) {
    std::string text;
    char buffer[4096];
    while (text.size() < size) {
      const ssize_t n = gnutls_record_recv(session_, buffer, sizeof(buffer));
      if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) continue;
      if (n <= 0) break;
      text.append(buffer, static_cast<size_t>(n));
    }
    return text;
  }
  gnutls_protocol_t version() const {
    return gnutls_protocol_get_version(session_);
  }

 private:
  int fd_;
  gnutls_certificate_credentials_t credentials_ = nullptr;
  gnutls_session_t session_ = nullptr;
};

// A front for `backend` with a certificate of its own.
absl::StatusOr<std::unique_ptr<TlsFront>> StartFront(
    const std::string& name, const UpperCaseServer& backend,
    TlsFrontOptions options = {}) {
  const Credentials files = MakeCredentials(name);
  options.cert_file = files.cert_file;
  options.key_file = files.key_file;
  options.backend_port = backend.port();
  return TlsFront::Start(options);
}

TEST(TlsFrontTest, RelaysBothWaysOverTls) {
  UpperCaseServer backend;
  auto front = StartFront("relay", backend);
  ASSERT_TRUE(front.ok()) << front.status();
  TlsClient client((*front)->port());
  ASSERT_TRUE(client.Handshake());
  EXPECT_GE(client.version(), GNUTLS_TLS1_2);
  // More than one TLS record (16 KiB) each way.
  std::string text(100000, 'x');
  for (size_t i = 0; i < text.size(); i += 7) text[i] = 'q';
  ASSERT_TRUE(client.Send(text.substr(0, 16384)));
  ASSERT_TRUE(client.Send(text.substr(16384)));
  std::string want = text;
  for (char& c : want) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(client.Receive(want.size()), want);
  EXPECT_EQ((*front)->stats().connections.load(), 1u);
}

// Garbage, silence and too many clients cost a connection each, counted;
// the front serves the next client.
TEST(TlsFrontTest, BadClientsAreDroppedAndOthersServed) {
  UpperCaseServer backend;
  auto front =
      StartFront("bad", backend,
                 {.max_connections = 2, .handshake_timeout = absl::Seconds(2)});
  ASSERT_TRUE(front.ok()) << front.status();
  const TlsFrontStats& stats = (*front)->stats();

  const int garbage = ConnectLoopbackTcp((*front)->port());
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(garbage, http.data(), http.size()),
            static_cast<ssize_t>(http.size()));
  EXPECT_TRUE(Eventually([&] { return stats.failed_handshakes.load() == 1; }));
  close(garbage);
  // The count of open connections drops once its thread has closed it,
  // after the failure was counted.
  ASSERT_TRUE(Eventually([&] { return stats.open.load() == 0; }));

  // Says nothing: dropped at the handshake timeout.
  const int silent = ConnectLoopbackTcp((*front)->port());
  const int silent2 = ConnectLoopbackTcp((*front)->port());
  EXPECT_TRUE(Eventually([&] { return stats.open.load() == 2; }));
  // Over the limit while both wait.
  const int third = ConnectLoopbackTcp((*front)->port());
  EXPECT_TRUE(Eventually([&] { return stats.refused.load() == 1; }));
  char byte = 0;
  EXPECT_EQ(read(third, &byte, 1), 0);  // closed at once
  close(third);
  EXPECT_TRUE(Eventually([&] { return stats.failed_handshakes.load() == 3; }));
  EXPECT_EQ(read(silent, &byte, 1), 0);
  close(silent);
  close(silent2);

  TlsClient client((*front)->port());
  ASSERT_TRUE(client.Handshake());
  ASSERT_TRUE(client.Send("still here"));
  EXPECT_EQ(client.Receive(10), "STILL HERE");
}

TEST(TlsFrontTest, RefusesFilesThatCannotServe) {
  const Credentials one = MakeCredentials("one");
  const Credentials two = MakeCredentials("two");
  auto missing = TlsFront::Start(
      {.cert_file = "/nonexistent/cert.pem", .key_file = one.key_file});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("/nonexistent/cert.pem"),
            std::string::npos)
      << missing.status();
  auto mismatched =
      TlsFront::Start({.cert_file = one.cert_file, .key_file = two.key_file});
  EXPECT_EQ(mismatched.status().code(), absl::StatusCode::kInvalidArgument)
      << mismatched.status();
  auto bad_host = TlsFront::Start({.host = "localhost",
                                   .cert_file = one.cert_file,
                                   .key_file = one.key_file});
  EXPECT_EQ(bad_host.status().code(), absl::StatusCode::kInvalidArgument);
}

// A front that goes away while a client is connected ends that connection.
TEST(TlsFrontTest, StoppingEndsOpenConnections) {
  UpperCaseServer backend;
  auto front = StartFront("stop", backend);
  ASSERT_TRUE(front.ok()) << front.status();
  TlsClient client((*front)->port());
  ASSERT_TRUE(client.Handshake());
  ASSERT_TRUE(client.Send("a"));
  EXPECT_EQ(client.Receive(1), "A");
  front->reset();
  EXPECT_EQ(client.Receive(1), "");
}

}  // namespace
}  // namespace vgpu::vnc
