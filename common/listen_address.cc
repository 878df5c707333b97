#include "common/listen_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace vgpu {
namespace {

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

absl::StatusOr<AddrInfoPtr> Resolve(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  std::string service = std::to_string(port);
  int error = getaddrinfo(host.empty() ? nullptr : host.c_str(),
                          service.c_str(), &hints, &result);
  if (error != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot resolve '", host, "': ", gai_strerror(error)));
  }
  return AddrInfoPtr(result);
}

bool IsLoopback(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return false;
}

}  // namespace

std::string ListenAddress::ToString() const {
  if (unix_socket) return "unix:" + path;
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view flag,
                                                 absl::string_view text,
                                                 bool allow_unix,
                                                 bool ipv4_only) {
  auto error = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", text, ": ", why));
  };
  ListenAddress address;
  if (absl::StartsWith(text, "unix:")) {
    if (!allow_unix) return error("a unix socket is not supported here");
    address.unix_socket = true;
    address.path = std::string(text.substr(5));
    address.loopback = true;
    if (address.path.empty()) return error("unix: needs a path");
    return address;
  }
  size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) {
    return error(allow_unix ? "expected host:port or unix:/path"
                            : "expected host:port");
  }
  absl::string_view host = text.substr(0, colon);
  absl::string_view port_text = text.substr(colon + 1);
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  } else if (absl::StrContains(host, ':')) {
    return error("an IPv6 host goes in brackets: [::1]:PORT");
  }
  int port = -1;
  if (!absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return error("port must be 0..65535");
  }
  in_addr ipv4{};
  if (ipv4_only && inet_pton(AF_INET, std::string(host).c_str(), &ipv4) != 1) {
    return error("host must be an IPv4 address, e.g. 127.0.0.1");
  }
  address.host = std::string(host);
  address.port = static_cast<uint16_t>(port);
  absl::StatusOr<AddrInfoPtr> resolved = Resolve(address.host, address.port);
  if (!resolved.ok()) return error(resolved.status().message());
  address.loopback = !address.host.empty();
  for (addrinfo* info = resolved->get(); info != nullptr;
       info = info->ai_next) {
    if (!IsLoopback(info->ai_addr)) address.loopback = false;
  }
  return address;
}

absl::Status CheckTcpListenable(const ListenAddress& address) {
  if (address.unix_socket || address.port == 0) return absl::OkStatus();
  absl::StatusOr<AddrInfoPtr> resolved = Resolve(address.host, address.port);
  if (!resolved.ok()) return resolved.status();
  // As gRPC does: usable if some address binds and none is taken (a name
  // may resolve to an IPv6 address this machine does not have).
  bool any_bound = false;
  int last_error = 0;
  for (addrinfo* info = resolved->get(); info != nullptr;
       info = info->ai_next) {
    int fd = socket(info->ai_family, info->ai_socktype | SOCK_CLOEXEC,
                    info->ai_protocol);
    if (fd < 0) continue;  // e.g. IPv6 disabled: the listener skips it too
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (info->ai_family == AF_INET6) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    int bound = bind(fd, info->ai_addr, info->ai_addrlen);
    int error = errno;
    close(fd);
    if (bound == 0) {
      any_bound = true;
      continue;
    }
    if (error == EADDRINUSE) {
      return absl::AlreadyExistsError(
          absl::StrCat(address.ToString(), " is in use"));
    }
    last_error = error;
  }
  if (any_bound || last_error == 0) return absl::OkStatus();
  if (last_error == EADDRNOTAVAIL) {
    return absl::InvalidArgumentError(
        absl::StrCat(address.host, " is not an address of this machine"));
  }
  if (last_error == EACCES) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot listen on ", address.ToString(),
                     ": permission denied (ports below 1024 need privileges)"));
  }
  return absl::ErrnoToStatus(
      last_error, absl::StrCat("cannot listen on ", address.ToString(), ": ",
                               strerror(last_error)));
}

int ConnectLoopbackTcp(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address),
              sizeof(address)) != 0) {
    const int error = errno;
    close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

}  // namespace vgpu
