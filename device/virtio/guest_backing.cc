#include "device/virtio/guest_backing.h"

#include <algorithm>
#include <cstring>

#include "common/checked_math.h"

namespace vgpu::virtio {

absl::StatusOr<GuestBacking> GuestBacking::Create(
    const GuestMemory& memory, absl::Span<const GuestRange> entries) {
  std::vector<HostSegment> host;
  host.reserve(entries.size());
  for (const GuestRange& entry : entries) {
    if (entry.length == 0) continue;
    if (absl::Status status =
            memory.AppendSegments(entry.addr, entry.length, &host);
        !status.ok()) {
      return status;
    }
  }
  GuestBacking backing;
  backing.segments_.reserve(host.size());
  for (const HostSegment& segment : host) {
    if (std::find(backing.mappings_.begin(), backing.mappings_.end(),
                  *segment.mapping) == backing.mappings_.end()) {
      backing.mappings_.push_back(*segment.mapping);
    }
    // Merge pieces that are adjacent in host memory: Linux's sg entries are
    // often physically contiguous runs.
    if (!backing.segments_.empty()) {
      Segment& last = backing.segments_.back();
      if (last.data + last.size == segment.data) {
        last.size += segment.size;
        backing.size_ += segment.size;
        continue;
      }
    }
    backing.segments_.push_back(
        Segment{segment.data, segment.size, backing.size_});
    backing.size_ += segment.size;
  }
  return backing;
}

size_t GuestBacking::FindSegment(uint64_t offset) const {
  if (hint_ < segments_.size()) {
    const Segment& hinted = segments_[hint_];
    if (offset >= hinted.start && offset - hinted.start < hinted.size)
      return hint_;
    if (hint_ + 1 < segments_.size()) {
      const Segment& next = segments_[hint_ + 1];
      if (offset >= next.start && offset - next.start < next.size)
        return hint_ + 1;
    }
  }
  auto it = std::upper_bound(
      segments_.begin(), segments_.end(), offset,
      [](uint64_t value, const Segment& s) { return value < s.start; });
  return static_cast<size_t>(it - segments_.begin()) - 1;
}

const uint8_t* GuestBacking::ContiguousAt(uint64_t offset,
                                          uint64_t length) const {
  if (offset >= size_ || length > size_ - offset) return nullptr;
  size_t index = FindSegment(offset);
  const Segment& segment = segments_[index];
  hint_ = index;
  uint64_t within = offset - segment.start;
  if (length > segment.size - within) return nullptr;
  return segment.data + within;
}

uint64_t GuestBacking::CopyOut(uint64_t offset, absl::Span<uint8_t> out) const {
  uint8_t* cursor = out.data();
  return ForEachPiece(offset, out.size(),
                      [&cursor](const uint8_t* data, uint64_t size) {
                        std::memcpy(cursor, data, size);
                        cursor += size;
                      });
}

}  // namespace vgpu::virtio
