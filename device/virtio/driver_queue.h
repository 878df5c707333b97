// The driver (guest) side of a split virtqueue, for the synthetic guest,
// tests, fuzzers and benchmarks: it lays out rings in guest memory, posts
// descriptor chains (optionally through an indirect table) and reaps used
// entries, as the Linux virtio driver does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

#include "device/virtio/guest_memory.h"
#include "device/virtio/virtqueue.h"

namespace vgpu::virtio {

// A buffer in guest-physical space.
struct GuestBuffer {
  uint64_t addr = 0;
  uint32_t length = 0;
};

// Hands out guest-physical ranges from one region, bump style.
// Thread-compatible.
class GuestAllocator {
 public:
  GuestAllocator(uint64_t base, uint64_t size)
      : next_(base), end_(base + size) {}
  // `alignment` must be a power of two.
  absl::StatusOr<uint64_t> Allocate(uint64_t size, uint64_t alignment = 16);
  uint64_t next() const { return next_; }

 private:
  uint64_t next_;
  uint64_t end_;
};

struct UsedEntry {
  uint16_t head;
  uint32_t written;
};

struct DriverQueueLayout {
  uint64_t desc_gpa;
  uint64_t avail_gpa;
  uint64_t used_gpa;
};

// Thread-compatible; plays the guest driver.
class DriverQueue {
 public:
  // Allocates the rings (and, with `indirect_tables` > 0, that many indirect
  // tables of `size` entries) from `allocator`.
  static absl::StatusOr<std::unique_ptr<DriverQueue>> Create(
      std::shared_ptr<const GuestMemory> memory, GuestAllocator& allocator,
      uint16_t size, bool event_idx, uint32_t indirect_tables = 0);

  const DriverQueueLayout& layout() const { return layout_; }
  uint16_t size() const { return size_; }
  uint16_t free_descriptors() const { return num_free_; }

  // Posts one chain and publishes it in the avail ring. With `indirect`, the
  // chain is written to an indirect table and uses one ring descriptor.
  absl::StatusOr<uint16_t> Add(absl::Span<const GuestBuffer> readable,
                               absl::Span<const GuestBuffer> writable,
                               bool indirect = false);
  // Whether the device has returned an entry not yet reaped.
  bool HasUsed() const;
  // Reaps the next used entry, freeing its descriptors.
  std::optional<UsedEntry> PopUsed();
  // Whether the device asked to be kicked for what was added since the last
  // call (EVENT_IDX avail_event or the NO_NOTIFY flag).
  bool NeedsKick();
  // Asks for an interrupt after the next used entry (EVENT_IDX used_event).
  void RequestInterrupt();

  // Raw ring access for tests that corrupt queues on purpose.
  absl::Span<uint8_t> desc_table() const { return desc_; }
  absl::Span<uint8_t> avail_ring() const { return avail_; }
  absl::Span<uint8_t> used_ring() const { return used_; }
  uint16_t avail_index() const { return avail_idx_; }
  void PublishAvailIndex(uint16_t index);

 private:
  DriverQueue(std::shared_ptr<const GuestMemory> memory, uint16_t size,
              bool event_idx);
  void WriteDesc(absl::Span<uint8_t> table, uint16_t index,
                 const VringDesc& desc);

  std::shared_ptr<const GuestMemory> memory_;
  uint16_t size_;
  bool event_idx_;
  DriverQueueLayout layout_{};
  absl::Span<uint8_t> desc_, avail_, used_;
  std::vector<uint16_t> free_list_;
  uint16_t num_free_ = 0;
  // Per head: descriptors it used and, if indirect, its table slot.
  std::vector<uint16_t> chain_length_;
  std::vector<int32_t> chain_table_;
  std::vector<uint64_t> indirect_gpas_;
  std::vector<uint32_t> free_tables_;
  uint16_t avail_idx_ = 0;
  uint16_t kicked_avail_ = 0;
  uint16_t last_used_ = 0;
};

}  // namespace vgpu::virtio
