// Guest RAM as the device sees it: a table of regions, each a window into a
// host mapping (a memfd or file shared with the VMM), with bounds-checked
// translation, copy-in and copy-out.
//
//   auto mapping = MemoryMapping::CreateMemfd(64 << 20, "guest-ram");
//   auto memory = GuestMemory::Create({{.guest_phys_addr = 0, .size = 64 << 20,
//                                       .mapping = *mapping}});
//   VGPU_RETURN_IF_ERROR((*memory)->Read(gpa, absl::MakeSpan(buffer)));
//
// Guest memory is shared with a running guest that may change it at any
// time: callers copy what they need out before validating it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vgpu::virtio {

// Thread-safe (immutable after creation). Owns one mmap and, if it made it,
// the file descriptor behind it.
class MemoryMapping {
 public:
  // Maps [0, length) of `fd` shared and read-write. Does not take `fd`.
  // A regular file (memfd, tmpfs, hugetlbfs) shorter than `length` is
  // refused: touching a page past its end would raise SIGBUS. The mapping
  // is guarded against the file shrinking later (mapping_guard.h).
  static absl::StatusOr<std::shared_ptr<MemoryMapping>> MapFd(int fd,
                                                              uint64_t length);
  // Creates a sealed-size memfd of `size` bytes and maps it. The mapping owns
  // the fd, which can be passed to another process (the VMM side of a test).
  static absl::StatusOr<std::shared_ptr<MemoryMapping>> CreateMemfd(
      uint64_t size, const std::string& name);
  ~MemoryMapping();
  MemoryMapping(const MemoryMapping&) = delete;
  MemoryMapping& operator=(const MemoryMapping&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  // The memfd made by CreateMemfd, or -1.
  int fd() const { return owned_fd_; }
  // True once an access faulted (the file behind it shrank): the mapping
  // now reads as zeros and no longer reaches the guest.
  bool lost() const;

 private:
  MemoryMapping(uint8_t* data, uint64_t size, int owned_fd);
  uint8_t* data_;
  uint64_t size_;
  int owned_fd_;
  int guard_slot_;
};

struct GuestRegion {
  uint64_t guest_phys_addr = 0;
  uint64_t size = 0;
  std::shared_ptr<MemoryMapping> mapping;
  // Where the region starts inside the mapping (vhost-user mmap_offset).
  uint64_t mapping_offset = 0;
  // The VMM's virtual address of the region start (vhost-user ring
  // addresses are given in this space). 0 when unused.
  uint64_t user_addr = 0;
};

// A contiguous run of host memory that backs part of a guest range, with the
// mapping that keeps it alive.
struct HostSegment {
  uint8_t* data = nullptr;
  uint64_t size = 0;
  const std::shared_ptr<MemoryMapping>* mapping = nullptr;
};

// Thread-safe (immutable). Replaced whole when the VMM sends a new table.
class GuestMemory {
 public:
  // Validates that regions are non-empty, do not overlap, do not wrap, and
  // lie inside their mappings.
  static absl::StatusOr<std::shared_ptr<const GuestMemory>> Create(
      std::vector<GuestRegion> regions);

  // Host view of [gpa, gpa + length) when it lies inside one region.
  absl::StatusOr<absl::Span<uint8_t>> Translate(uint64_t gpa,
                                                uint64_t length) const;
  // Host view of [user_addr, user_addr + length) in the VMM's address space.
  absl::StatusOr<absl::Span<uint8_t>> TranslateUserAddr(uint64_t user_addr,
                                                        uint64_t length) const;
  // Splits [gpa, gpa + length) into host segments, crossing adjacent regions.
  // Fails, appending nothing, if any byte is not guest RAM or the range wraps.
  absl::Status AppendSegments(uint64_t gpa, uint64_t length,
                              std::vector<HostSegment>* segments) const;

  // Copy out of / into guest memory; all-or-nothing. DataLoss when the
  // memory became inaccessible during the copy (see MemoryMapping::lost).
  absl::Status Read(uint64_t gpa, absl::Span<uint8_t> out) const;
  absl::Status Write(uint64_t gpa, absl::Span<const uint8_t> in) const;

  const std::vector<GuestRegion>& regions() const { return regions_; }
  // Whether any region's mapping faulted.
  bool lost() const;
  // Sum of region sizes.
  uint64_t total_size() const { return total_size_; }

 private:
  explicit GuestMemory(std::vector<GuestRegion> regions);
  const GuestRegion* FindRegion(uint64_t gpa) const;

  std::vector<GuestRegion> regions_;  // sorted by guest_phys_addr
  uint64_t total_size_ = 0;
};

}  // namespace vgpu::virtio
