// The front-end (VMM) end of one vhost-user connection, as QEMU drives it:
// requests with optional REPLY_ACK, feature and protocol negotiation, the
// memory table, rings with their kick and call eventfds, config space.
// VhostUserFrontend (virtio-gpu) and VirtioInputDriver (virtio-input) are
// built on it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

#include "device/vhost_user/message.h"
#include "device/vhost_user/protocol.h"
#include "device/virtio/driver_queue.h"
#include "device/virtio/guest_memory.h"

namespace vgpu::guest_sim {

// Thread-compatible.
class VhostUserLink {
 public:
  static constexpr uint32_t kMaxRings = 8;

  // Connects to the back-end's unix socket. While `cancel` (if set) is
  // false, a reply is waited for without end; once it is true, waits end
  // within 100 ms (Cancelled): a back-end that stopped answering (its device
  // thread stopped first) does not hold its front-end forever.
  static absl::StatusOr<std::unique_ptr<VhostUserLink>> Connect(
      const std::string& socket_path,
      const std::atomic<bool>* cancel = nullptr);

  bool connected() const { return socket_.valid(); }
  // The back-end sees the VMM go away.
  void Disconnect() { socket_.Reset(); }

  // Sends a request; with `need_reply` or REPLY_ACK negotiated, waits for
  // the ack (an error if the back-end refused).
  absl::Status Request(uint32_t request, absl::Span<const uint8_t> payload,
                       absl::Span<const int> fds = {}, bool need_reply = false);
  template <typename T>
  absl::Status RequestWith(uint32_t request, const T& body,
                           absl::Span<const int> fds = {}) {
    return Request(
        request,
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&body), sizeof(T)),
        fds);
  }
  // A request with a reply of its own.
  absl::StatusOr<vhost_user::Message> Call(uint32_t request,
                                           absl::Span<const uint8_t> payload);

  // GET_FEATURES, GET/SET_PROTOCOL_FEATURES (what is offered of `wanted`;
  // CONFIG is required), SET_OWNER. Returns the offered virtio features.
  absl::StatusOr<uint64_t> Negotiate(uint64_t wanted_protocol);
  // GET_CONFIG / SET_CONFIG of `size` bytes at `offset`.
  absl::StatusOr<std::vector<uint8_t>> GetConfig(uint32_t offset,
                                                 uint32_t size);
  absl::Status SetConfig(uint32_t offset, absl::Span<const uint8_t> bytes);
  // SET_MEM_TABLE of every region (with REPLY_ACK, as QEMU asks for).
  absl::Status SetMemTable(const virtio::GuestMemory& memory);
  // SET_VRING_NUM/BASE/ADDR/KICK/CALL/ENABLE for ring `index`.
  absl::Status SetupRing(uint32_t index, const virtio::DriverQueue& queue,
                         const virtio::GuestMemory& memory);
  // GET_VRING_BASE: stops ring `index`; returns its next avail index.
  absl::StatusOr<uint32_t> StopRing(uint32_t index);

  // Kicks ring `index` if `queue` asks for it.
  absl::Status Kick(uint32_t index, virtio::DriverQueue& queue);
  // Waits until `queue` (ring `index`) has a used entry, the deadline, or
  // `cancel`; the call eventfd is drained.
  absl::Status WaitUsed(uint32_t index, virtio::DriverQueue& queue,
                        absl::Time deadline,
                        const std::atomic<bool>* cancel = nullptr);
  // The call eventfd of ring `index` (-1 before SetupRing), to poll.
  int call_fd(uint32_t index) const;

 private:
  VhostUserLink(vhost_user::Fd socket, const std::atomic<bool>* cancel)
      : socket_(std::move(socket)), cancel_(cancel) {}
  // The back-end's next message, waiting as Connect says.
  absl::StatusOr<vhost_user::Message> ReadReply(uint32_t request);

  vhost_user::Fd socket_;
  const std::atomic<bool>* const cancel_;
  uint64_t protocol_features_ = 0;
  vhost_user::Fd kick_[kMaxRings], call_[kMaxRings];
};

}  // namespace vgpu::guest_sim
