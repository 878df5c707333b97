#include "device/virtio/virtqueue.h"

#include <atomic>
#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vgpu::virtio {
namespace {

static_assert(std::endian::native == std::endian::little,
              "virtio 1.x rings are little-endian; this code assumes a "
              "little-endian host");

// Ring fields are shared with the guest: every access is an atomic of the
// field's own width so the compiler cannot tear or re-read it.
uint16_t LoadAcquire16(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p),
                         __ATOMIC_ACQUIRE);
}
uint16_t LoadRelaxed16(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p),
                         __ATOMIC_RELAXED);
}
void StoreRelease16(uint8_t* p, uint16_t value) {
  __atomic_store_n(reinterpret_cast<uint16_t*>(p), value, __ATOMIC_RELEASE);
}
void StoreRelaxed16(uint8_t* p, uint16_t value) {
  __atomic_store_n(reinterpret_cast<uint16_t*>(p), value, __ATOMIC_RELAXED);
}
void StoreRelaxed32(uint8_t* p, uint32_t value) {
  __atomic_store_n(reinterpret_cast<uint32_t*>(p), value, __ATOMIC_RELAXED);
}

VringDesc LoadDesc(const uint8_t* table, uint32_t index) {
  VringDesc desc;
  std::memcpy(&desc, table + 16ull * index, sizeof(desc));
  return desc;
}

bool Aligned(const uint8_t* p, uintptr_t alignment) {
  return (reinterpret_cast<uintptr_t>(p) & (alignment - 1)) == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SplitVirtqueue>> SplitVirtqueue::Create(
    uint16_t size, absl::Span<uint8_t> desc, absl::Span<uint8_t> avail,
    absl::Span<uint8_t> used, bool event_idx, bool indirect,
    QueueLimits limits) {
  if (size == 0 || size > kMaxQueueSize || (size & (size - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue size ", size, " is not a power of 2"));
  }
  if (desc.size() < DescTableBytes(size) ||
      avail.size() < AvailRingBytes(size) ||
      used.size() < UsedRingBytes(size)) {
    return absl::InvalidArgumentError(
        "ring areas are too small for the queue size");
  }
  if (!Aligned(desc.data(), 16) || !Aligned(avail.data(), 2) ||
      !Aligned(used.data(), 4)) {
    return absl::InvalidArgumentError("ring areas are misaligned");
  }
  return std::unique_ptr<SplitVirtqueue>(
      new SplitVirtqueue(size, desc.data(), avail.data(), used.data(),
                         event_idx, indirect, limits));
}

SplitVirtqueue::SplitVirtqueue(uint16_t size, uint8_t* desc, uint8_t* avail,
                               uint8_t* used, bool event_idx, bool indirect,
                               QueueLimits limits)
    : size_(size),
      desc_(desc),
      avail_(avail),
      used_(used),
      event_idx_(event_idx),
      indirect_(indirect),
      limits_(limits) {
  SetBase(0);
}

void SplitVirtqueue::SetBase(uint16_t last_avail_index) {
  last_avail_ = last_avail_index;
  used_idx_ = LoadAcquire16(used_ + 2);
  signalled_used_ = used_idx_;
}

uint16_t SplitVirtqueue::AvailIndex() const {
  return LoadAcquire16(avail_ + 2);
}

absl::StatusOr<std::optional<DescriptorChain>> SplitVirtqueue::Pop(
    const GuestMemory& memory) {
  uint16_t avail_idx = AvailIndex();
  uint16_t pending = static_cast<uint16_t>(avail_idx - last_avail_);
  if (pending == 0) return std::nullopt;
  if (pending > size_) {
    return absl::DataLossError(absl::StrCat("avail index ", avail_idx, " is ",
                                            pending, " ahead of ", last_avail_,
                                            " in a queue of ", size_));
  }
  uint16_t head = LoadRelaxed16(avail_ + 4 + size_t{2} * (last_avail_ % size_));
  if (head >= size_) {
    return absl::DataLossError(
        absl::StrCat("avail ring head ", head, " out of range"));
  }
  DescriptorChain chain;
  chain.head = head;
  uint32_t count = 0;
  if (absl::Status status =
          WalkTable(memory, desc_, size_, head, false, &count, &chain);
      !status.ok()) {
    return status;
  }
  ++last_avail_;
  return chain;
}

absl::Status SplitVirtqueue::WalkTable(const GuestMemory& memory,
                                       const uint8_t* table,
                                       uint32_t table_size, uint16_t first,
                                       bool in_indirect, uint32_t* count,
                                       DescriptorChain* chain) {
  uint32_t index = first;
  // A chain inside one table can have at most table_size descriptors; more
  // means a loop.
  for (uint32_t in_table = 0;; ++in_table) {
    if (in_table >= table_size)
      return absl::DataLossError("descriptor chain loops");
    if (++*count > limits_.max_chain_descriptors) {
      return absl::DataLossError("descriptor chain is too long");
    }
    VringDesc desc = LoadDesc(table, index);
    if (desc.flags & kDescFlagIndirect) {
      if (!indirect_)
        return absl::DataLossError("indirect descriptor not negotiated");
      if (in_indirect) return absl::DataLossError("nested indirect descriptor");
      if (desc.flags & kDescFlagNext)
        return absl::DataLossError("indirect descriptor with NEXT");
      if (desc.len == 0 || desc.len % 16 != 0) {
        return absl::DataLossError(
            absl::StrCat("indirect table length ", desc.len));
      }
      absl::StatusOr<absl::Span<uint8_t>> indirect_table =
          memory.Translate(desc.addr, desc.len);
      if (!indirect_table.ok()) return indirect_table.status();
      // Copy the table out: the guest may rewrite it while we walk it.
      absl::InlinedVector<uint8_t, 512> copy(indirect_table->begin(),
                                             indirect_table->end());
      uint32_t entries = desc.len / 16;
      return WalkTable(memory, copy.data(), entries, 0, true, count, chain);
    }
    bool writable = desc.flags & kDescFlagWrite;
    if (!writable && !chain->writable.empty()) {
      return absl::DataLossError(
          "device-readable descriptor after a writable one");
    }
    if (desc.len > 0) {
      absl::StatusOr<absl::Span<uint8_t>> buffer =
          memory.Translate(desc.addr, desc.len);
      if (buffer.ok()) {
        (writable ? chain->writable : chain->readable).push_back(*buffer);
      } else {
        // Buffers spanning two RAM regions are split; anything else is not RAM
        // (CVE-2024-3446: never treat device MMIO as a DMA buffer).
        std::vector<HostSegment> segments;
        if (memory.AppendSegments(desc.addr, desc.len, &segments).ok()) {
          for (const HostSegment& segment : segments) {
            (writable ? chain->writable : chain->readable)
                .push_back(absl::MakeSpan(segment.data, segment.size));
          }
        } else {
          chain->bad_buffer = true;
        }
      }
    }
    if (!(desc.flags & kDescFlagNext)) return absl::OkStatus();
    if (desc.next >= table_size) {
      return absl::DataLossError(
          absl::StrCat("descriptor next ", desc.next, " out of range"));
    }
    index = desc.next;
  }
}

void SplitVirtqueue::PushUsed(uint16_t head, uint32_t written) {
  uint8_t* elem = used_ + 4 + size_t{8} * (used_idx_ % size_);
  StoreRelaxed32(elem, head);
  StoreRelaxed32(elem + 4, written);
  ++used_idx_;
  StoreRelease16(used_ + 2, used_idx_);
}

bool SplitVirtqueue::ShouldNotify() {
  // Order the used index store before reading the driver's suppression state.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint16_t old_used = signalled_used_;
  uint16_t new_used = used_idx_;
  signalled_used_ = new_used;
  if (old_used == new_used) return false;
  if (event_idx_) {
    uint16_t used_event = LoadRelaxed16(avail_ + 4 + size_t{2} * size_);
    return static_cast<uint16_t>(new_used - used_event - 1) <
           static_cast<uint16_t>(new_used - old_used);
  }
  return !(LoadRelaxed16(avail_) & kAvailFlagNoInterrupt);
}

bool SplitVirtqueue::EnableNotifications() {
  if (event_idx_) {
    StoreRelaxed16(used_ + 4 + size_t{8} * size_, last_avail_);
  } else {
    StoreRelaxed16(used_, static_cast<uint16_t>(LoadRelaxed16(used_) &
                                                ~kUsedFlagNoNotify));
  }
  // Publish the hint before re-reading avail.idx, or a kick can be missed.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return AvailIndex() != last_avail_;
}

void SplitVirtqueue::DisableNotifications() {
  if (!event_idx_) {
    StoreRelaxed16(
        used_, static_cast<uint16_t>(LoadRelaxed16(used_) | kUsedFlagNoNotify));
  }
}

}  // namespace vgpu::virtio
