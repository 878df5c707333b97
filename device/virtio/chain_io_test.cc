#include "device/virtio/chain_io.h"

#include <vector>

#include "gtest/gtest.h"

namespace vgpu::virtio {
namespace {

TEST(ChainReaderTest, ReadsAcrossBuffersAndRefusesShortReads) {
  std::vector<uint8_t> a = {1, 2, 3}, b = {4, 5}, c = {6};
  std::vector<absl::Span<uint8_t>> buffers = {
      absl::MakeSpan(a), absl::MakeSpan(b), absl::MakeSpan(c)};
  ChainReader reader(buffers);
  EXPECT_EQ(reader.remaining(), 6u);
  auto first = reader.Read<uint32_t>();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, 0x04030201u);
  EXPECT_FALSE(
      reader.Read<uint32_t>().has_value());  // only 2 left: nothing consumed
  EXPECT_EQ(reader.remaining(), 2u);
  EXPECT_EQ(reader.Skip(10), 2u);
  EXPECT_EQ(reader.remaining(), 0u);
}

TEST(ChainWriterTest, ScattersAndTruncatesAtCapacity) {
  std::vector<uint8_t> a(3, 0), b(2, 0);
  std::vector<absl::Span<uint8_t>> buffers = {absl::MakeSpan(a),
                                              absl::MakeSpan(b)};
  ChainWriter writer(buffers);
  const uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(writer.Write(data), 5u);
  EXPECT_EQ(writer.bytes_written(), 5u);
  EXPECT_EQ(a, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(b, (std::vector<uint8_t>{4, 5}));
  EXPECT_EQ(writer.Write(data), 0u);
}

}  // namespace
}  // namespace vgpu::virtio
