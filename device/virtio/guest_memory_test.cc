#include "device/virtio/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

#include "device/virtio/mapping_guard.h"

namespace vgpu::virtio {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// Two regions from one memfd as QEMU lays out a >3 GiB guest: low RAM at 0,
// high RAM at 4 GiB, the second at mmap_offset = size of the first.
std::shared_ptr<const GuestMemory> TwoRegions(
    std::shared_ptr<MemoryMapping>* mapping_out = nullptr) {
  auto mapping = MemoryMapping::CreateMemfd(2 * kMiB, "test-ram");
  EXPECT_TRUE(mapping.ok());
  if (mapping_out) *mapping_out = *mapping;
  auto memory = GuestMemory::Create({
      {.guest_phys_addr = 4ull << 30,
       .size = kMiB,
       .mapping = *mapping,
       .mapping_offset = kMiB,
       .user_addr = 0x20000000},
      {.guest_phys_addr = 0,
       .size = kMiB,
       .mapping = *mapping,
       .mapping_offset = 0,
       .user_addr = 0x10000000},
  });
  EXPECT_TRUE(memory.ok()) << memory.status();
  return *memory;
}

TEST(GuestMemoryTest, TranslateHonoursMappingOffset) {
  std::shared_ptr<MemoryMapping> mapping;
  auto memory = TwoRegions(&mapping);
  auto high = memory->Translate(4ull << 30, 16);
  ASSERT_TRUE(high.ok());
  EXPECT_EQ(high->data(), mapping->data() + kMiB);
  auto low = memory->Translate(100, 16);
  ASSERT_TRUE(low.ok());
  EXPECT_EQ(low->data(), mapping->data() + 100);
}

TEST(GuestMemoryTest, TranslateRejectsHolesAndRangesLeavingARegion) {
  auto memory = TwoRegions();
  EXPECT_FALSE(memory->Translate(kMiB, 1).ok());       // the hole
  EXPECT_FALSE(memory->Translate(kMiB - 8, 16).ok());  // runs off low RAM
  EXPECT_FALSE(memory->Translate(std::numeric_limits<uint64_t>::max(), 2).ok());
  EXPECT_TRUE(memory->Translate(kMiB - 16, 16).ok());
}

TEST(GuestMemoryTest, ReadWriteRoundTripAndAllOrNothing) {
  auto memory = TwoRegions();
  const uint8_t data[4] = {1, 2, 3, 4};
  ASSERT_TRUE(memory->Write(4096, data).ok());
  uint8_t back[4] = {};
  ASSERT_TRUE(memory->Read(4096, absl::MakeSpan(back)).ok());
  EXPECT_EQ(std::memcmp(data, back, 4), 0);
  uint8_t big[32] = {};
  EXPECT_FALSE(memory->Read(kMiB - 16, absl::MakeSpan(big)).ok());
}

TEST(GuestMemoryTest, AppendSegmentsRejectsWrapAndNonRam) {
  auto memory = TwoRegions();
  std::vector<HostSegment> segments;
  EXPECT_FALSE(memory
                   ->AppendSegments(std::numeric_limits<uint64_t>::max() - 4,
                                    16, &segments)
                   .ok());
  EXPECT_FALSE(memory->AppendSegments(kMiB - 4096, 8192, &segments).ok());
  EXPECT_TRUE(segments.empty());
  ASSERT_TRUE(memory->AppendSegments(0, kMiB, &segments).ok());
  EXPECT_EQ(segments.size(), 1u);
}

TEST(GuestMemoryTest, AdjacentRegionsAreCrossedBySegments) {
  auto a = MemoryMapping::CreateMemfd(kMiB, "a");
  auto b = MemoryMapping::CreateMemfd(kMiB, "b");
  auto memory = GuestMemory::Create(
      {{.guest_phys_addr = 0, .size = kMiB, .mapping = *a},
       {.guest_phys_addr = kMiB, .size = kMiB, .mapping = *b}});
  ASSERT_TRUE(memory.ok());
  std::vector<HostSegment> segments;
  ASSERT_TRUE((*memory)->AppendSegments(kMiB - 100, 200, &segments).ok());
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_EQ(segments[0].size, 100u);
  EXPECT_EQ(segments[1].data, (*b)->data());
  EXPECT_FALSE((*memory)->Translate(kMiB - 100, 200).ok());
}

TEST(GuestMemoryTest, TranslateUserAddrUsesTheVmmAddressSpace) {
  std::shared_ptr<MemoryMapping> mapping;
  auto memory = TwoRegions(&mapping);
  auto span = memory->TranslateUserAddr(0x20000010, 8);
  ASSERT_TRUE(span.ok());
  EXPECT_EQ(span->data(), mapping->data() + kMiB + 0x10);
  EXPECT_FALSE(memory->TranslateUserAddr(0x20000000 + kMiB - 4, 8).ok());
  EXPECT_FALSE(memory->TranslateUserAddr(0x30000000, 8).ok());
}

TEST(GuestMemoryTest, CreateRejectsOverlapsAndRegionsPastTheirMapping) {
  auto mapping = MemoryMapping::CreateMemfd(kMiB, "m");
  EXPECT_FALSE(
      GuestMemory::Create(
          {{.guest_phys_addr = 0, .size = kMiB, .mapping = *mapping},
           {.guest_phys_addr = 4096, .size = 4096, .mapping = *mapping}})
          .ok());
  EXPECT_FALSE(GuestMemory::Create({{.guest_phys_addr = 0,
                                     .size = kMiB,
                                     .mapping = *mapping,
                                     .mapping_offset = 4096}})
                   .ok());
  EXPECT_FALSE(
      GuestMemory::Create(
          {{.guest_phys_addr = std::numeric_limits<uint64_t>::max() - 10,
            .size = 4096,
            .mapping = *mapping}})
          .ok());
  EXPECT_FALSE(GuestMemory::Create(
                   {{.guest_phys_addr = 0, .size = 0, .mapping = *mapping}})
                   .ok());
}

}  // namespace
}  // namespace vgpu::virtio

namespace vgpu::virtio {
namespace {

// A file that backs guest RAM, as the VMM would pass it.
class RamFile {
 public:
  explicit RamFile(uint64_t size) : fd_(memfd_create("ram", MFD_CLOEXEC)) {
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(size)), 0);
  }
  ~RamFile() { close(fd_); }
  int fd() const { return fd_; }

 private:
  int fd_;
};

TEST(GuestMemoryFaultTest, FileShorterThanTheDeclaredRegionIsRefused) {
  RamFile file(2 * kMiB);
  auto mapping = MemoryMapping::MapFd(file.fd(), 64 * kMiB);
  ASSERT_FALSE(mapping.ok());
  EXPECT_NE(mapping.status().message().find("2097152 bytes long"),
            std::string::npos)
      << mapping.status();
  EXPECT_TRUE(MemoryMapping::MapFd(file.fd(), 2 * kMiB).ok());
}

TEST(GuestMemoryFaultTest, FileTruncatedAfterMappingFailsReadsNotProcess) {
  RamFile file(4 * kMiB);
  auto mapping = MemoryMapping::MapFd(file.fd(), 4 * kMiB);
  ASSERT_TRUE(mapping.ok());
  auto memory = GuestMemory::Create(
      {{.guest_phys_addr = 0, .size = 4 * kMiB, .mapping = *mapping}});
  ASSERT_TRUE(memory.ok());
  std::vector<uint8_t> buffer(4096, 0xAB);
  ASSERT_TRUE((*memory)->Write(3 * kMiB, buffer).ok());
  ASSERT_FALSE((*memory)->lost());
  const uint64_t faults = MappingFaultCount();

  ASSERT_EQ(ftruncate(file.fd(), static_cast<off_t>(kMiB)), 0);
  // Past the new end of the file: SIGBUS, absorbed.
  absl::Status read = (*memory)->Read(3 * kMiB, absl::MakeSpan(buffer));
  EXPECT_EQ(read.code(), absl::StatusCode::kDataLoss) << read;
  EXPECT_TRUE((*memory)->lost());
  EXPECT_TRUE((*mapping)->lost());
  EXPECT_EQ(MappingFaultCount(), faults + 1);
  // The whole mapping now reads as zeros, and writes go nowhere harmful.
  EXPECT_EQ(buffer[0], 0);
  EXPECT_EQ((*memory)->Write(0, buffer).code(), absl::StatusCode::kDataLoss);
}

TEST(GuestMemoryFaultTest, FaultsOutsideGuestMemoryStillCrash) {
  EXPECT_DEATH(
      {
        RamFile file(kMiB);
        void* plain =
            mmap(nullptr, 2 * kMiB, PROT_READ, MAP_SHARED, file.fd(), 0);
        auto guarded = MemoryMapping::MapFd(file.fd(), kMiB);  // installs
        // An unguarded mapping of our own: a SIGBUS here is a bug.
        volatile uint8_t byte = static_cast<volatile uint8_t*>(plain)[kMiB + 1];
        (void)byte;
      },
      "");
}

}  // namespace
}  // namespace vgpu::virtio
