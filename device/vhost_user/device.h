// What a virtio device is to the vhost-user back-end (VhostUserBackend):
// its feature bits, queues, config space and reset. The back-end does the
// transport (vhost-user messages, the memory table, the rings, kick, call
// and error eventfds); a device does only what is its own. virtio-gpu's
// (GpuVhostDevice) adds the display socket of GPU_SET_SOCKET.
//
// Thread rules: the device thread's (VhostUserBackend calls it from there).
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

#include "device/vhost_user/message.h"
#include "device/virtio/guest_memory.h"
#include "device/virtio/virtqueue.h"

namespace vgpu::vhost_user {

// The back-end's side, for a device with work that comes without a kick
// (input events from viewers). Device thread only.
class QueueKicker {
 public:
  virtual ~QueueKicker() = default;
  // Runs the device's ProcessQueue on queue `index` as a kick would (nothing
  // while the queue is stopped) and signals the guest if it asks to be.
  virtual void Kick(uint32_t index) = 0;
};

class VhostUserDevice {
 public:
  virtual ~VhostUserDevice() = default;

  // Queues the device has (GET_QUEUE_NUM; at most kMaxQueues).
  virtual uint32_t num_queues() const = 0;
  // The device's own feature bits, offered besides the transport's
  // (VERSION_1, INDIRECT_DESC, EVENT_IDX, PROTOCOL_FEATURES).
  virtual uint64_t OfferedFeatures() const = 0;
  // What the driver accepted (all bits, the transport's included).
  virtual void SetDriverFeatures(uint64_t features) = 0;
  // The guest's RAM from SET_MEM_TABLE (null: none); queues are mapped in
  // guest_memory().
  virtual void SetGuestMemory(
      std::shared_ptr<const virtio::GuestMemory> memory) = 0;
  virtual const std::shared_ptr<const virtio::GuestMemory>& guest_memory()
      const = 0;
  // Config space, bytes at `offset` (GET_CONFIG / SET_CONFIG).
  virtual void ReadConfig(uint32_t offset, absl::Span<uint8_t> out) const = 0;
  virtual void WriteConfig(uint32_t offset, absl::Span<const uint8_t> in) = 0;
  // Takes what the driver made available on queue `index`: true when the
  // used ring changed (the back-end then signals the call eventfd). An
  // error means the guest broke the queue: the device stops until reset.
  virtual absl::StatusOr<bool> ProcessQueue(uint32_t index,
                                            virtio::SplitVirtqueue& ring) = 0;
  // Stopped after a broken queue, until Reset().
  virtual bool needs_reset() const = 0;
  // Back to the state after power-on (guest memory and features kept).
  virtual void Reset() = 0;
  // Queue `index` is about to start at avail index `base`. virtio-gpu reads
  // a control queue restarting from 0 while it holds resources as a guest
  // that reset without telling (true: reset it; the back-end counts it).
  virtual bool ResetsOnQueueStart(uint32_t index, uint16_t base) const {
    (void)index;
    (void)base;
    return false;
  }
  // A request outside vhost-user's generic set, the device's own (GPU:
  // GPU_SET_SOCKET). NotFound: not one of its requests; another error: the
  // message was malformed (the connection is dropped).
  virtual absl::Status HandleRequest(Message& message) {
    (void)message;
    return absl::NotFoundError("not a request of this device");
  }
  // The front-end went away: drop what belonged to the connection.
  virtual void Disconnected() {}
  // A front-end connected (`kicker` is valid until the next call) or went
  // away (null).
  virtual void SetKicker(QueueKicker* kicker) { (void)kicker; }
  // Queue `index` runs (mapped, kicked, enabled) or stopped.
  virtual void QueueRunning(uint32_t index, bool running) {
    (void)index;
    (void)running;
  }
};

}  // namespace vgpu::vhost_user
