#include "device/virtio/guest_backing.h"

#include <cstring>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace vgpu::virtio {
namespace {

class GuestBackingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto mapping = MemoryMapping::CreateMemfd(1 << 20, "ram");
    ASSERT_TRUE(mapping.ok());
    mapping_ = *mapping;
    auto memory = GuestMemory::Create(
        {{.guest_phys_addr = 0, .size = 1 << 20, .mapping = mapping_}});
    ASSERT_TRUE(memory.ok());
    memory_ = *memory;
    for (uint32_t i = 0; i < (1u << 20); ++i)
      mapping_->data()[i] = static_cast<uint8_t>(i * 7);
  }
  std::shared_ptr<MemoryMapping> mapping_;
  std::shared_ptr<const GuestMemory> memory_;
};

TEST_F(GuestBackingTest, ScatteredEntriesReadAsOneStream) {
  // Three entries out of order in guest memory.
  std::vector<GuestRange> entries = {{8192, 100}, {4096, 50}, {65536, 10}};
  auto backing = GuestBacking::Create(*memory_, entries);
  ASSERT_TRUE(backing.ok());
  EXPECT_EQ(backing->size(), 160u);
  std::vector<uint8_t> out(160);
  EXPECT_EQ(backing->CopyOut(0, absl::MakeSpan(out)), 160u);
  EXPECT_EQ(std::memcmp(out.data(), mapping_->data() + 8192, 100), 0);
  EXPECT_EQ(std::memcmp(out.data() + 100, mapping_->data() + 4096, 50), 0);
  EXPECT_EQ(std::memcmp(out.data() + 150, mapping_->data() + 65536, 10), 0);
}

TEST_F(GuestBackingTest, CopyOutStopsAtTheEnd) {
  std::vector<GuestRange> entries = {{0, 64}};
  auto backing = GuestBacking::Create(*memory_, entries);
  ASSERT_TRUE(backing.ok());
  std::vector<uint8_t> out(32);
  EXPECT_EQ(backing->CopyOut(48, absl::MakeSpan(out)), 16u);
  EXPECT_EQ(backing->CopyOut(64, absl::MakeSpan(out)), 0u);
  EXPECT_EQ(backing->CopyOut(~0ull - 4, absl::MakeSpan(out)), 0u);
}

TEST_F(GuestBackingTest, AdjacentEntriesMergeIntoOneSegment) {
  std::vector<GuestRange> entries = {{0, 4096}, {4096, 4096}, {8192, 4096}};
  auto backing = GuestBacking::Create(*memory_, entries);
  ASSERT_TRUE(backing.ok());
  EXPECT_EQ(backing->segment_count(), 1u);
  EXPECT_TRUE(backing->contiguous());
}

TEST_F(GuestBackingTest, EntriesOutsideRamOrWrappingFailWhole) {
  std::vector<GuestRange> outside = {{0, 64}, {2 << 20, 64}};
  EXPECT_FALSE(GuestBacking::Create(*memory_, outside).ok());
  std::vector<GuestRange> wrapping = {{~0ull - 10, 64}};
  EXPECT_FALSE(GuestBacking::Create(*memory_, wrapping).ok());
  std::vector<GuestRange> straddling = {{(1 << 20) - 10, 64}};
  EXPECT_FALSE(GuestBacking::Create(*memory_, straddling).ok());
}

TEST_F(GuestBackingTest, ZeroLengthEntriesAreSkipped) {
  std::vector<GuestRange> entries = {{4096, 0}, {8192, 16}};
  auto backing = GuestBacking::Create(*memory_, entries);
  ASSERT_TRUE(backing.ok());
  EXPECT_EQ(backing->size(), 16u);
}

TEST_F(GuestBackingTest, BackingKeepsItsMappingAliveAfterTheTableIsReplaced) {
  std::vector<GuestRange> entries = {{4096, 16}};
  auto backing = GuestBacking::Create(*memory_, entries);
  ASSERT_TRUE(backing.ok());
  std::weak_ptr<MemoryMapping> weak = mapping_;
  memory_.reset();
  mapping_.reset();
  EXPECT_FALSE(weak.expired());
  uint8_t out[16];
  EXPECT_EQ(backing->CopyOut(0, absl::MakeSpan(out)), 16u);
  *backing = GuestBacking();
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace vgpu::virtio
