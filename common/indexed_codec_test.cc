#include "common/indexed_codec.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace vgpu {
namespace {

std::vector<uint8_t> Image(uint32_t width, uint32_t height, uint32_t colours,
                           uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> palette(colours);
  for (uint32_t& c : palette) c = rng() & 0x00FFFFFF;
  std::vector<uint8_t> pixels(size_t{width} * height * 4);
  for (size_t i = 0; i < size_t{width} * height; ++i) {
    uint32_t c = palette[rng() % colours] | 0xFF000000u;  // X is not kept
    std::memcpy(&pixels[i * 4], &c, 4);
  }
  return pixels;
}

TEST(IndexedCodecTest, RoundTripsAnyNumberOfColoursAndAnyWidth) {
  for (uint32_t colours : {1u, 2u, 3u, 4u, 5u, 16u, 17u, 200u, 256u, 3000u}) {
    for (uint32_t width : {1u, 7u, 8u, 13u, 64u}) {
      const uint32_t height = 1 + colours % 9;
      std::vector<uint8_t> in = Image(width, height, colours, colours + width);
      absl::StatusOr<std::string> data =
          EncodeIndexed(in.data(), width, height);
      ASSERT_TRUE(data.ok());
      std::vector<uint8_t> out(in.size(), 0xAA);
      ASSERT_TRUE(DecodeIndexed(*data, width, height, out.data()).ok())
          << colours << " colours, width " << width;
      for (size_t i = 3; i < in.size(); i += 4) in[i] = 0;
      EXPECT_EQ(out, in) << colours << " colours, width " << width;
      // Few colours are a palette; many are zstd.
      EXPECT_EQ((*data)[0] == 0, colours > 256 && width * height > 256)
          << colours << " colours, width " << width;
    }
  }
}

TEST(IndexedCodecTest, AGlyphIsAFewBytes) {
  // An 8x16 character: two colours, one bit a pixel, 2 + 6 + 16 bytes.
  std::vector<uint8_t> glyph = Image(8, 16, 2, 1);
  absl::StatusOr<std::string> data = EncodeIndexed(glyph.data(), 8, 16);
  ASSERT_TRUE(data.ok());
  EXPECT_LE(data->size(), 24u);
  // A line of text compresses further.
  std::vector<uint8_t> line(1280 * 16 * 4);
  for (size_t i = 0; i < line.size() / 4; ++i)
    std::memcpy(&line[i * 4], &glyph[(i % 128) * 4], 4);
  data = EncodeIndexed(line.data(), 1280, 16);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ((*data)[0], 2);  // palette, zstd indices
  EXPECT_LT(data->size(), 1280u * 16 / 8);
}

TEST(IndexedCodecTest, MalformedDataIsDataLossNeverACrash) {
  std::vector<uint8_t> out(20 * 20 * 4);  // the largest image tried below
  EXPECT_FALSE(DecodeIndexed("", 16, 16, out.data()).ok());
  EXPECT_FALSE(DecodeIndexed(std::string("\x07", 1), 16, 16, out.data()).ok());
  EXPECT_FALSE(
      DecodeIndexed(std::string("\x01\x05", 2), 16, 16, out.data()).ok());
  // Three colours (two bits each) and an index of 3.
  std::string bad("\x01\x02", 2);
  bad.append(9, '\0');
  bad.append(16 * 16 / 4, '\xFF');
  EXPECT_FALSE(DecodeIndexed(bad, 16, 16, out.data()).ok());
  std::mt19937 rng(9);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 200, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    (void)DecodeIndexed(junk, 1 + rng() % 20, 1 + rng() % 20, out.data());
  }
}

}  // namespace
}  // namespace vgpu
