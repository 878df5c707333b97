#include "device/virtio/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

#include "common/checked_math.h"
#include "device/virtio/mapping_guard.h"

namespace vgpu::virtio {

absl::StatusOr<std::shared_ptr<MemoryMapping>> MemoryMapping::MapFd(
    int fd, uint64_t length) {
  if (length == 0) return absl::InvalidArgumentError("cannot map 0 bytes");
  struct stat st;
  if (fstat(fd, &st) != 0) return absl::ErrnoToStatus(errno, "fstat failed");
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < length) {
    return absl::InvalidArgumentError(
        absl::StrCat("the file is ", st.st_size, " bytes long but ", length,
                     " bytes of it are declared (mmap_offset + size)"));
  }
  void* addr = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("mmap of ", length, " bytes failed"));
  }
  return std::shared_ptr<MemoryMapping>(
      new MemoryMapping(static_cast<uint8_t*>(addr), length, /*owned_fd=*/-1));
}

absl::StatusOr<std::shared_ptr<MemoryMapping>> MemoryMapping::CreateMemfd(
    uint64_t size, const std::string& name) {
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return absl::ErrnoToStatus(errno, "memfd_create failed");
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int saved = errno;
    close(fd);
    return absl::ErrnoToStatus(saved, "ftruncate of memfd failed");
  }
  auto mapped = MapFd(fd, size);
  if (!mapped.ok()) {
    close(fd);
    return mapped.status();
  }
  (*mapped)->owned_fd_ = fd;
  return mapped;
}

MemoryMapping::MemoryMapping(uint8_t* data, uint64_t size, int owned_fd)
    : data_(data),
      size_(size),
      owned_fd_(owned_fd),
      guard_slot_(GuardMapping(data, size)) {}

bool MemoryMapping::lost() const { return MappingLost(guard_slot_); }

MemoryMapping::~MemoryMapping() {
  UnguardMapping(guard_slot_);
  munmap(data_, size_);
  if (owned_fd_ >= 0) close(owned_fd_);
}

namespace {

absl::Status CheckNotLost(const std::vector<HostSegment>& segments) {
  for (const HostSegment& segment : segments) {
    if ((*segment.mapping)->lost()) {
      return absl::DataLossError(
          "guest memory became inaccessible (its file shrank)");
    }
  }
  return absl::OkStatus();
}

}  // namespace

GuestMemory::GuestMemory(std::vector<GuestRegion> regions)
    : regions_(std::move(regions)) {
  for (const GuestRegion& region : regions_) total_size_ += region.size;
}

absl::StatusOr<std::shared_ptr<const GuestMemory>> GuestMemory::Create(
    std::vector<GuestRegion> regions) {
  std::sort(regions.begin(), regions.end(),
            [](const GuestRegion& a, const GuestRegion& b) {
              return a.guest_phys_addr < b.guest_phys_addr;
            });
  uint64_t previous_end = 0;
  for (size_t i = 0; i < regions.size(); ++i) {
    const GuestRegion& region = regions[i];
    if (region.size == 0 || region.mapping == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("region ", i, " is empty"));
    }
    auto end = CheckedAdd64(region.guest_phys_addr, region.size);
    if (!end)
      return absl::InvalidArgumentError(absl::StrCat("region ", i, " wraps"));
    if (i > 0 && region.guest_phys_addr < previous_end) {
      return absl::InvalidArgumentError(
          absl::StrCat("region ", i, " overlaps"));
    }
    if (!RangeInside(region.mapping_offset, region.size,
                     region.mapping->size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("region ", i, " runs past the end of its mapping"));
    }
    if (region.user_addr != 0 && !CheckedAdd64(region.user_addr, region.size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("region ", i, " user address wraps"));
    }
    previous_end = *end;
  }
  return std::shared_ptr<const GuestMemory>(
      new GuestMemory(std::move(regions)));
}

const GuestRegion* GuestMemory::FindRegion(uint64_t gpa) const {
  auto it = std::upper_bound(regions_.begin(), regions_.end(), gpa,
                             [](uint64_t value, const GuestRegion& region) {
                               return value < region.guest_phys_addr;
                             });
  if (it == regions_.begin()) return nullptr;
  const GuestRegion& region = *(it - 1);
  if (gpa - region.guest_phys_addr >= region.size) return nullptr;
  return &region;
}

absl::StatusOr<absl::Span<uint8_t>> GuestMemory::Translate(
    uint64_t gpa, uint64_t length) const {
  const GuestRegion* region = FindRegion(gpa);
  if (region == nullptr) {
    return absl::OutOfRangeError(
        absl::StrCat("guest address 0x", absl::Hex(gpa), " is not RAM"));
  }
  uint64_t offset = gpa - region->guest_phys_addr;
  if (!RangeInside(offset, length, region->size)) {
    return absl::OutOfRangeError(absl::StrCat(
        "guest range 0x", absl::Hex(gpa), "+", length, " leaves its region"));
  }
  return absl::MakeSpan(
      region->mapping->data() + region->mapping_offset + offset, length);
}

absl::StatusOr<absl::Span<uint8_t>> GuestMemory::TranslateUserAddr(
    uint64_t user_addr, uint64_t length) const {
  for (const GuestRegion& region : regions_) {
    if (region.user_addr == 0 || user_addr < region.user_addr) continue;
    uint64_t offset = user_addr - region.user_addr;
    if (offset >= region.size) continue;
    if (!RangeInside(offset, length, region.size)) break;
    return absl::MakeSpan(
        region.mapping->data() + region.mapping_offset + offset, length);
  }
  return absl::OutOfRangeError(absl::StrCat("VMM address 0x",
                                            absl::Hex(user_addr), "+", length,
                                            " is not guest RAM"));
}

absl::Status GuestMemory::AppendSegments(
    uint64_t gpa, uint64_t length, std::vector<HostSegment>* segments) const {
  if (!CheckedAdd64(gpa, length)) {
    return absl::OutOfRangeError(
        absl::StrCat("guest range 0x", absl::Hex(gpa), "+", length, " wraps"));
  }
  size_t original_size = segments->size();
  while (length > 0) {
    const GuestRegion* region = FindRegion(gpa);
    if (region == nullptr) {
      segments->resize(original_size);
      return absl::OutOfRangeError(
          absl::StrCat("guest address 0x", absl::Hex(gpa), " is not RAM"));
    }
    uint64_t offset = gpa - region->guest_phys_addr;
    uint64_t piece = std::min(length, region->size - offset);
    segments->push_back(
        HostSegment{region->mapping->data() + region->mapping_offset + offset,
                    piece, &region->mapping});
    gpa += piece;
    length -= piece;
  }
  return absl::OkStatus();
}

absl::Status GuestMemory::Read(uint64_t gpa, absl::Span<uint8_t> out) const {
  std::vector<HostSegment> segments;
  if (absl::Status status = AppendSegments(gpa, out.size(), &segments);
      !status.ok()) {
    return status;
  }
  uint8_t* cursor = out.data();
  for (const HostSegment& segment : segments) {
    std::memcpy(cursor, segment.data, segment.size);
    cursor += segment.size;
  }
  return CheckNotLost(segments);
}

absl::Status GuestMemory::Write(uint64_t gpa,
                                absl::Span<const uint8_t> in) const {
  std::vector<HostSegment> segments;
  if (absl::Status status = AppendSegments(gpa, in.size(), &segments);
      !status.ok()) {
    return status;
  }
  const uint8_t* cursor = in.data();
  for (const HostSegment& segment : segments) {
    std::memcpy(segment.data, cursor, segment.size);
    cursor += segment.size;
  }
  return CheckNotLost(segments);
}

bool GuestMemory::lost() const {
  for (const GuestRegion& region : regions_) {
    if (region.mapping->lost()) return true;
  }
  return false;
}

}  // namespace vgpu::virtio
