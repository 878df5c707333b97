#include "device/vhost_user/message.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace vgpu::vhost_user {

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = other.Release();
  }
  return *this;
}

void Fd::Reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

namespace {

// Reads exactly out.size() bytes (the payload follows the header).
absl::Status ReadExactly(int fd, absl::Span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = recv(fd, out.data() + done, out.size() - done, 0);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n == 0) {
      return absl::DataLossError("peer closed the socket inside a message");
    } else if (errno != EINTR) {
      return absl::ErrnoToStatus(errno, "recv");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Message> ReadMessage(int socket_fd, const ReadLimits& limits) {
  Message message;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{&message.header, sizeof(Header)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return absl::ErrnoToStatus(errno, "recvmsg");
  // Take ownership of any fds first, so every error path closes them.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      message.fds.emplace_back(fd);
    }
  }
  if (n == 0) return absl::UnavailableError("peer closed the connection");
  if (msg.msg_flags & MSG_CTRUNC)
    return absl::DataLossError("too many file descriptors");
  if (static_cast<size_t>(n) < sizeof(Header)) {
    absl::Status rest = ReadExactly(
        socket_fd,
        absl::MakeSpan(reinterpret_cast<uint8_t*>(&message.header) + n,
                       sizeof(Header) - static_cast<size_t>(n)));
    if (!rest.ok()) return rest;
  }
  if (limits.require_version &&
      (message.header.flags & kFlagVersionMask) != kVersion) {
    return absl::DataLossError(
        absl::StrCat("message version ",
                     message.header.flags & kFlagVersionMask, " is not 1"));
  }
  if (message.header.size > limits.max_payload) {
    return absl::DataLossError(
        absl::StrCat("payload of ", message.header.size, " bytes"));
  }
  message.payload.resize(message.header.size);
  absl::Status status = ReadExactly(socket_fd, absl::MakeSpan(message.payload));
  if (!status.ok()) return status;
  return message;
}

absl::Status WriteMessage(int socket_fd, const Header& header,
                          absl::Span<const uint8_t> payload,
                          absl::Span<const int> fds) {
  if (fds.size() > kMaxFds) return absl::InvalidArgumentError("too many fds");
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  iovec iov[2] = {{const_cast<Header*>(&header), sizeof(Header)},
                  {const_cast<uint8_t*>(payload.data()), payload.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  size_t total = sizeof(Header) + payload.size();
  ssize_t n;
  do {
    n = sendmsg(socket_fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return absl::ErrnoToStatus(errno, "sendmsg");
  size_t sent = static_cast<size_t>(n);
  // Finish a partial write without fds (they went with the first bytes).
  while (sent < total) {
    const uint8_t* base;
    size_t left;
    if (sent < sizeof(Header)) {
      base = reinterpret_cast<const uint8_t*>(&header) + sent;
      left = sizeof(Header) - sent;
    } else {
      base = payload.data() + (sent - sizeof(Header));
      left = total - sent;
    }
    ssize_t m = send(socket_fd, base, left, MSG_NOSIGNAL);
    if (m < 0 && errno == EINTR) continue;
    if (m < 0) return absl::ErrnoToStatus(errno, "send");
    sent += static_cast<size_t>(m);
  }
  return absl::OkStatus();
}

}  // namespace vgpu::vhost_user
