#include "device/virtio/driver_queue.h"

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vgpu::virtio {

absl::StatusOr<uint64_t> GuestAllocator::Allocate(uint64_t size,
                                                  uint64_t alignment) {
  uint64_t start = (next_ + alignment - 1) & ~(alignment - 1);
  if (start < next_ || start > end_ || size > end_ - start) {
    return absl::ResourceExhaustedError(
        absl::StrCat("guest allocator out of space for ", size));
  }
  next_ = start + size;
  return start;
}

DriverQueue::DriverQueue(std::shared_ptr<const GuestMemory> memory,
                         uint16_t size, bool event_idx)
    : memory_(std::move(memory)),
      size_(size),
      event_idx_(event_idx),
      chain_length_(size, 0),
      chain_table_(size, -1) {}

absl::StatusOr<std::unique_ptr<DriverQueue>> DriverQueue::Create(
    std::shared_ptr<const GuestMemory> memory, GuestAllocator& allocator,
    uint16_t size, bool event_idx, uint32_t indirect_tables) {
  std::unique_ptr<DriverQueue> queue(
      new DriverQueue(std::move(memory), size, event_idx));
  absl::StatusOr<uint64_t> desc = allocator.Allocate(DescTableBytes(size), 16);
  absl::StatusOr<uint64_t> avail = allocator.Allocate(AvailRingBytes(size), 2);
  absl::StatusOr<uint64_t> used = allocator.Allocate(UsedRingBytes(size), 4);
  if (!desc.ok()) return desc.status();
  if (!avail.ok()) return avail.status();
  if (!used.ok()) return used.status();
  queue->layout_ = {*desc, *avail, *used};
  auto desc_span = queue->memory_->Translate(*desc, DescTableBytes(size));
  auto avail_span = queue->memory_->Translate(*avail, AvailRingBytes(size));
  auto used_span = queue->memory_->Translate(*used, UsedRingBytes(size));
  if (!desc_span.ok() || !avail_span.ok() || !used_span.ok()) {
    return absl::InvalidArgumentError(
        "ring memory is not inside one guest region");
  }
  queue->desc_ = *desc_span;
  queue->avail_ = *avail_span;
  queue->used_ = *used_span;
  std::memset(queue->desc_.data(), 0, queue->desc_.size());
  std::memset(queue->avail_.data(), 0, queue->avail_.size());
  std::memset(queue->used_.data(), 0, queue->used_.size());
  for (uint16_t i = 0; i < size; ++i)
    queue->free_list_.push_back(static_cast<uint16_t>(size - 1 - i));
  queue->num_free_ = size;
  for (uint32_t t = 0; t < indirect_tables; ++t) {
    absl::StatusOr<uint64_t> table =
        allocator.Allocate(DescTableBytes(size), 16);
    if (!table.ok()) return table.status();
    queue->indirect_gpas_.push_back(*table);
    queue->free_tables_.push_back(t);
  }
  return queue;
}

void DriverQueue::WriteDesc(absl::Span<uint8_t> table, uint16_t index,
                            const VringDesc& desc) {
  std::memcpy(table.data() + size_t{16} * index, &desc, sizeof(desc));
}

absl::StatusOr<uint16_t> DriverQueue::Add(
    absl::Span<const GuestBuffer> readable,
    absl::Span<const GuestBuffer> writable, bool indirect) {
  size_t total = readable.size() + writable.size();
  if (total == 0 || total > size_)
    return absl::InvalidArgumentError("bad chain length");
  auto flags_for = [&](size_t i) {
    uint16_t flags = i < readable.size() ? 0 : kDescFlagWrite;
    if (i + 1 < total) flags |= kDescFlagNext;
    return flags;
  };
  auto buffer_at = [&](size_t i) {
    return i < readable.size() ? readable[i] : writable[i - readable.size()];
  };
  uint16_t head;
  if (indirect) {
    if (free_tables_.empty() || num_free_ == 0) {
      return absl::ResourceExhaustedError("no free indirect table");
    }
    uint32_t slot = free_tables_.back();
    free_tables_.pop_back();
    absl::StatusOr<absl::Span<uint8_t>> table =
        memory_->Translate(indirect_gpas_[slot], DescTableBytes(size_));
    if (!table.ok()) return table.status();
    for (size_t i = 0; i < total; ++i) {
      GuestBuffer buffer = buffer_at(i);
      WriteDesc(*table, static_cast<uint16_t>(i),
                VringDesc{buffer.addr, buffer.length, flags_for(i),
                          static_cast<uint16_t>(i + 1)});
    }
    head = free_list_.back();
    free_list_.pop_back();
    --num_free_;
    WriteDesc(desc_, head,
              VringDesc{indirect_gpas_[slot], static_cast<uint32_t>(16 * total),
                        kDescFlagIndirect, 0});
    chain_length_[head] = 1;
    chain_table_[head] = static_cast<int32_t>(slot);
  } else {
    if (num_free_ < total) return absl::ResourceExhaustedError("ring full");
    std::vector<uint16_t> indices(total);
    for (size_t i = 0; i < total; ++i) {
      indices[i] = free_list_.back();
      free_list_.pop_back();
    }
    num_free_ = static_cast<uint16_t>(num_free_ - total);
    for (size_t i = 0; i < total; ++i) {
      GuestBuffer buffer = buffer_at(i);
      uint16_t next = i + 1 < total ? indices[i + 1] : 0;
      WriteDesc(desc_, indices[i],
                VringDesc{buffer.addr, buffer.length, flags_for(i), next});
    }
    head = indices[0];
    chain_length_[head] = static_cast<uint16_t>(total);
    chain_table_[head] = -1;
  }
  uint8_t* slot = avail_.data() + 4 + size_t{2} * (avail_idx_ % size_);
  __atomic_store_n(reinterpret_cast<uint16_t*>(slot), head, __ATOMIC_RELAXED);
  PublishAvailIndex(static_cast<uint16_t>(avail_idx_ + 1));
  return head;
}

void DriverQueue::PublishAvailIndex(uint16_t index) {
  avail_idx_ = index;
  __atomic_store_n(reinterpret_cast<uint16_t*>(avail_.data() + 2), index,
                   __ATOMIC_RELEASE);
}

bool DriverQueue::HasUsed() const {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(used_.data() + 2),
                         __ATOMIC_ACQUIRE) != last_used_;
}

std::optional<UsedEntry> DriverQueue::PopUsed() {
  uint16_t used_idx = __atomic_load_n(
      reinterpret_cast<const uint16_t*>(used_.data() + 2), __ATOMIC_ACQUIRE);
  if (used_idx == last_used_) return std::nullopt;
  const uint8_t* elem = used_.data() + 4 + size_t{8} * (last_used_ % size_);
  VringUsedElem used;
  std::memcpy(&used, elem, sizeof(used));
  ++last_used_;
  uint16_t head = static_cast<uint16_t>(used.id);
  if (head < size_ && chain_length_[head] > 0) {
    // Walk the chain to return its descriptors.
    uint16_t index = head;
    for (uint16_t i = 0; i < chain_length_[head]; ++i) {
      free_list_.push_back(index);
      VringDesc desc;
      std::memcpy(&desc, desc_.data() + size_t{16} * index, sizeof(desc));
      index = desc.next;
    }
    num_free_ = static_cast<uint16_t>(num_free_ + chain_length_[head]);
    if (chain_table_[head] >= 0)
      free_tables_.push_back(static_cast<uint32_t>(chain_table_[head]));
    chain_length_[head] = 0;
    chain_table_[head] = -1;
  }
  return UsedEntry{head, used.len};
}

bool DriverQueue::NeedsKick() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint16_t old_avail = kicked_avail_;
  kicked_avail_ = avail_idx_;
  if (old_avail == avail_idx_) return false;
  if (event_idx_) {
    uint16_t avail_event = __atomic_load_n(
        reinterpret_cast<const uint16_t*>(used_.data() + 4 + size_t{8} * size_),
        __ATOMIC_RELAXED);
    return static_cast<uint16_t>(avail_idx_ - avail_event - 1) <
           static_cast<uint16_t>(avail_idx_ - old_avail);
  }
  uint16_t flags = __atomic_load_n(
      reinterpret_cast<const uint16_t*>(used_.data()), __ATOMIC_RELAXED);
  return !(flags & kUsedFlagNoNotify);
}

void DriverQueue::RequestInterrupt() {
  if (event_idx_) {
    __atomic_store_n(
        reinterpret_cast<uint16_t*>(avail_.data() + 4 + size_t{2} * size_),
        last_used_, __ATOMIC_RELAXED);
  }
}

}  // namespace vgpu::virtio
