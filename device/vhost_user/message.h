// Reading and writing vhost-user messages on a unix stream socket, with file
// descriptors passed as SCM_RIGHTS on the header's sendmsg.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

#include "device/vhost_user/protocol.h"

namespace vgpu::vhost_user {

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.Release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset();

 private:
  int fd_ = -1;
};

struct Message {
  Header header{};
  std::vector<uint8_t> payload;
  std::vector<Fd> fds;

  // The payload as struct T when it is exactly (or, with `at_least`, at
  // least) sizeof(T) bytes.
  template <typename T>
  bool PayloadAs(T* out, bool at_least = false) const {
    static_assert(std::is_trivially_copyable_v<T>);
    if (payload.size() < sizeof(T) ||
        (!at_least && payload.size() != sizeof(T)))
      return false;
    std::memcpy(out, payload.data(), sizeof(T));
    return true;
  }
};

struct ReadLimits {
  // vhost-user messages carry version 1 in their flags; the display
  // protocol carries none.
  bool require_version = true;
  uint32_t max_payload = kMaxPayload;
};

// Reads one message. kUnavailable when the peer closed the socket cleanly
// before a header; kDataLoss for anything malformed (short reads, bad
// version, oversized payload, too many fds).
absl::StatusOr<Message> ReadMessage(int socket_fd,
                                    const ReadLimits& limits = {});

// Sends header + payload (+ fds) in one sendmsg (retrying partial writes
// of the payload). Never raises SIGPIPE.
absl::Status WriteMessage(int socket_fd, const Header& header,
                          absl::Span<const uint8_t> payload,
                          absl::Span<const int> fds = {});

template <typename T>
absl::Status WriteStruct(int socket_fd, uint32_t request, uint32_t flags,
                         const T& body, absl::Span<const int> fds = {}) {
  static_assert(std::is_trivially_copyable_v<T>);
  Header header{request, flags, sizeof(T)};
  return WriteMessage(
      socket_fd, header,
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&body), sizeof(T)),
      fds);
}

}  // namespace vgpu::vhost_user
