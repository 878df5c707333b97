// The vhost-user back-end, for any virtio device: one front-end connection
// (QEMU, or our synthetic guest) driving a VhostUserDevice. Handles the
// control messages (features, protocol features, the memory table, rings,
// config, reset), maps the guest memory table, runs the device's queues off
// their kick eventfds and signals their call eventfds; the device's own
// requests (GPU_SET_SOCKET) go to the device.
//
// Lives on the device thread; the EventLoop delivers socket and kick events.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"

#include "device/vhost_user/device.h"
#include "device/vhost_user/event_loop.h"
#include "device/vhost_user/message.h"

namespace vgpu::vhost_user {

struct BackendStats {
  uint64_t messages = 0;
  uint64_t kicks = 0;
  uint64_t calls = 0;
  uint64_t device_resets = 0;
};

// Queues a device may have.
inline constexpr uint32_t kMaxQueues = 8;

class VhostUserBackend : public QueueKicker {
 public:
  // `device` outlives the backend; it has 1..kMaxQueues queues.
  VhostUserBackend(VhostUserDevice* device, EventLoop* loop, Fd socket);
  ~VhostUserBackend() override;
  VhostUserBackend(const VhostUserBackend&) = delete;
  VhostUserBackend& operator=(const VhostUserBackend&) = delete;

  // Starts watching the socket. `on_close(reason)` is called when the
  // connection ends; the owner then destroys the backend.
  absl::Status Start(std::function<void(const absl::Status&)> on_close);

  const BackendStats& stats() const { return stats_; }

  // QueueKicker. A fault in guest memory found here closes the connection
  // at the next socket message or kick (it cannot close from inside the
  // device's call).
  void Kick(uint32_t index) override { ProcessQueue(index); }

 private:
  struct Queue {
    uint16_t size = 0;
    VringAddr addr{};
    bool has_addr = false;
    uint16_t base = 0;
    bool enabled = false;
    bool running = false;  // as last told to the device
    Fd kick, call, err;
    std::unique_ptr<virtio::SplitVirtqueue> ring;  // non-null while started
  };

  void OnSocket(uint32_t events);
  absl::Status Handle(Message& message);
  absl::Status Reply(const Message& request, absl::Span<const uint8_t> payload);
  template <typename T>
  absl::Status ReplyWith(const Message& request, const T& body) {
    return Reply(request,
                 absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&body),
                                     sizeof(T)));
  }
  absl::Status SetMemTable(Message& message);
  absl::Status StartQueue(uint32_t index);
  void StopQueue(uint32_t index);
  // Tells the device whether queue `index` runs, when that changed.
  void UpdateRunning(uint32_t index);
  absl::StatusOr<std::unique_ptr<virtio::SplitVirtqueue>> MapRing(
      const Queue& queue) const;
  void OnKick(uint32_t index);
  // Runs the device over a queue. If guest memory faulted meanwhile (its
  // file shrank), sets lost_memory_: the caller closes the connection once
  // it is safe to (Close may destroy *this).
  void ProcessQueue(uint32_t index);
  void Close(const absl::Status& reason);
  bool protocol_negotiated() const {
    return features_ & kFeatureProtocolFeatures;
  }

  // A queue index in a message, against the device's queues.
  absl::Status CheckQueueIndex(const Message& message, uint32_t index) const;

  VhostUserDevice* device_;
  const uint32_t num_queues_;
  EventLoop* loop_;
  Fd socket_;
  std::function<void(const absl::Status&)> on_close_;
  bool closed_ = false;
  absl::Status lost_memory_;
  uint64_t features_ = 0;
  uint64_t protocol_features_ = 0;
  std::array<Queue, kMaxQueues> queues_;
  BackendStats stats_;
};

}  // namespace vgpu::vhost_user
