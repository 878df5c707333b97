// A guest scatter-gather list (RESOURCE_ATTACH_BACKING entries, blob
// entries) resolved to host segments, read as one linear byte range.
//
// Holding a GuestBacking keeps the guest mappings it points into alive even
// if the VMM replaces the memory table; dropping it drops every guest page
// reference it held (the rule DETACH_BACKING and UNREF depend on).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

#include "device/virtio/guest_memory.h"

namespace vgpu::virtio {

struct GuestRange {
  uint64_t addr = 0;
  uint64_t length = 0;
};

// Thread-compatible; lives on the device thread.
class GuestBacking {
 public:
  // Resolves every entry. Fails (and holds nothing) if any entry is not
  // entirely guest RAM or wraps. Zero-length entries are skipped.
  static absl::StatusOr<GuestBacking> Create(
      const GuestMemory& memory, absl::Span<const GuestRange> entries);

  GuestBacking() = default;
  GuestBacking(GuestBacking&&) = default;
  GuestBacking& operator=(GuestBacking&&) = default;

  // Total bytes.
  uint64_t size() const { return size_; }
  size_t segment_count() const { return segments_.size(); }

  // Copies [offset, offset + out.size()) into `out`, stopping at the end of
  // the backing. Returns the bytes copied.
  uint64_t CopyOut(uint64_t offset, absl::Span<uint8_t> out) const;

  // Calls fn(const uint8_t* data, uint64_t size) for the host pieces of
  // [offset, offset + length), clipped to the backing. Returns bytes visited.
  template <typename Fn>
  uint64_t ForEachPiece(uint64_t offset, uint64_t length, Fn&& fn) const;

  // Host pointer to [offset, offset + length) if it lies inside one segment,
  // else nullptr.
  const uint8_t* ContiguousAt(uint64_t offset, uint64_t length) const;

  // Whether the backing is one contiguous host range (then Contiguous()
  // returns it).
  bool contiguous() const { return segments_.size() == 1; }
  const uint8_t* contiguous_data() const {
    return segments_.empty() ? nullptr : segments_[0].data;
  }

 private:
  struct Segment {
    const uint8_t* data;
    uint64_t size;
    uint64_t start;  // offset of this segment in the backing
  };
  size_t FindSegment(uint64_t offset) const;

  std::vector<Segment> segments_;
  std::vector<std::shared_ptr<MemoryMapping>> mappings_;  // keep-alive
  uint64_t size_ = 0;
  // Last segment found; rows are read in order, so this makes lookups O(1).
  mutable size_t hint_ = 0;
};

template <typename Fn>
uint64_t GuestBacking::ForEachPiece(uint64_t offset, uint64_t length,
                                    Fn&& fn) const {
  if (offset >= size_ || length == 0) return 0;
  if (length > size_ - offset) length = size_ - offset;
  uint64_t visited = 0;
  for (size_t i = FindSegment(offset); visited < length; ++i) {
    const Segment& segment = segments_[i];
    uint64_t within = offset + visited - segment.start;
    uint64_t piece = segment.size - within;
    if (piece > length - visited) piece = length - visited;
    fn(segment.data + within, piece);
    visited += piece;
    hint_ = i;
  }
  return visited;
}

}  // namespace vgpu::virtio
