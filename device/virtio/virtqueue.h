// The device side of a virtio split virtqueue (virtio 1.x §2.7) over guest
// memory: descriptor chains (direct and indirect), the used ring, EVENT_IDX
// and notification suppression.
//
// A corrupt queue (descriptor loop, chain too long, index out of range,
// malformed indirect table) makes Pop() fail; the caller must then put the
// device into NEEDS_RESET and stop using the queue. The process lives on.
//
//   while (true) {
//     VGPU_ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, queue.Pop());
//     if (!chain) break;
//     uint32_t written = Handle(*chain);
//     queue.PushUsed(chain->head, written);
//   }
//   if (queue.ShouldNotify()) SignalCallFd();
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "device/virtio/chain_io.h"
#include "device/virtio/guest_memory.h"

namespace vgpu::virtio {

inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;
inline constexpr uint16_t kUsedFlagNoNotify = 1;
inline constexpr uint16_t kMaxQueueSize = 32768;

// struct vring_desc
struct VringDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VringDesc) == 16);

// struct vring_used_elem
struct VringUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VringUsedElem) == 8);

// Byte sizes of the three ring areas for a queue of `size` entries
// (with EVENT_IDX's trailing fields always included).
constexpr uint64_t DescTableBytes(uint16_t size) { return 16ull * size; }
constexpr uint64_t AvailRingBytes(uint16_t size) { return 6ull + 2ull * size; }
constexpr uint64_t UsedRingBytes(uint16_t size) { return 6ull + 8ull * size; }

struct DescriptorChain {
  uint16_t head = 0;
  BufferList readable;
  BufferList writable;
  // Some descriptor's buffer was not guest RAM. The chain is still returned
  // so it gets a reply; its buffers list only what could be mapped.
  bool bad_buffer = false;
};

struct QueueLimits {
  // Most descriptors (direct + indirect) one chain may have.
  uint32_t max_chain_descriptors = 4096;
};

// Thread-compatible; lives on the device thread.
class SplitVirtqueue {
 public:
  // `size` must be a power of two in [1, 32768]. The ring spans must hold
  // DescTableBytes/AvailRingBytes/UsedRingBytes and be aligned 16/2/4.
  static absl::StatusOr<std::unique_ptr<SplitVirtqueue>> Create(
      uint16_t size, absl::Span<uint8_t> desc, absl::Span<uint8_t> avail,
      absl::Span<uint8_t> used, bool event_idx, bool indirect,
      QueueLimits limits = {});

  // Sets the next avail index to read (vhost-user SET_VRING_BASE). The used
  // index is re-read from guest memory.
  void SetBase(uint16_t last_avail_index);
  uint16_t last_avail_index() const { return last_avail_; }
  uint16_t size() const { return size_; }

  // Next available chain, std::nullopt when the ring is drained, or an error
  // when the queue is corrupt.
  absl::StatusOr<std::optional<DescriptorChain>> Pop(const GuestMemory& memory);
  // Returns a chain to the driver with `written` bytes in its writable part.
  void PushUsed(uint16_t head, uint32_t written);

  // Whether the driver wants an interrupt for the used entries pushed since
  // the last call (EVENT_IDX used_event or the NO_INTERRUPT flag).
  bool ShouldNotify();

  // Asks the driver to kick when it adds buffers (publishes avail_event, or
  // clears NO_NOTIFY). Returns true if buffers are already available, in
  // which case the caller must keep draining. DisableNotifications() is the
  // opposite hint, used while draining.
  bool EnableNotifications();
  void DisableNotifications();

 private:
  SplitVirtqueue(uint16_t size, uint8_t* desc, uint8_t* avail, uint8_t* used,
                 bool event_idx, bool indirect, QueueLimits limits);
  uint16_t AvailIndex() const;
  absl::Status WalkTable(const GuestMemory& memory, const uint8_t* table,
                         uint32_t table_size, uint16_t first, bool in_indirect,
                         uint32_t* count, DescriptorChain* chain);

  const uint16_t size_;
  uint8_t* const desc_;
  uint8_t* const avail_;
  uint8_t* const used_;
  const bool event_idx_;
  const bool indirect_;
  const QueueLimits limits_;
  uint16_t last_avail_ = 0;
  uint16_t used_idx_ = 0;
  uint16_t signalled_used_ = 0;  // used index at the last ShouldNotify()
};

}  // namespace vgpu::virtio
