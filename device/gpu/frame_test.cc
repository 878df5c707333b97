#include "device/gpu/frame.h"

#include <vector>

#include "device/gpu/edid.h"
#include "device/gpu/pixel_copy.h"
#include "gtest/gtest.h"

namespace vgpu::gpu {
namespace {

TEST(FrameTest, IntersectClipsAndHandlesWrap) {
  EXPECT_EQ(Intersect({0, 0, 100, 100}, {50, 50, 100, 100}), (PixelRect{50, 50, 50, 50}));
  EXPECT_TRUE(Intersect({0, 0, 10, 10}, {10, 0, 10, 10}).empty());
  EXPECT_EQ(Intersect({0xFFFFFFF0, 0, 0x20, 1}, {0, 0, 0xFFFFFFFF, 1}),
            (PixelRect{0xFFFFFFF0, 0, 0xF, 1}));
}

TEST(FrameTest, CopyOnWriteNeverChangesAPublishedFrame) {
  TileGrid grid(130, 70);
  GridStats stats;
  grid.MutableTile(0, 0, false, &stats)[0] = 1;
  Frame old_frame(130, 70, 0, 0, grid.Snapshot(), grid.columns(), 1);
  grid.MutableTile(0, 0, false, &stats)[0] = 2;
  Frame new_frame(130, 70, 0, 0, grid.Snapshot(), grid.columns(), 2);
  EXPECT_EQ(old_frame.PixelAt(0, 0) & 0xFF, 1u);
  EXPECT_EQ(new_frame.PixelAt(0, 0) & 0xFF, 2u);
  EXPECT_EQ(stats.tiles_cloned, 1u);
  EXPECT_EQ(stats.clone_bytes, kTileBytes);
  EXPECT_EQ(old_frame.GridTile(2, 1), nullptr);  // never written: reads as zero
  EXPECT_EQ(new_frame.PixelAt(129, 69), 0u);
}

TEST(FrameTest, ExclusiveTilesAreWrittenInPlace) {
  TileGrid grid(64, 64);
  GridStats stats;
  uint8_t* first = grid.MutableTile(0, 0, false, &stats);
  uint8_t* second = grid.MutableTile(0, 0, false, &stats);
  EXPECT_EQ(first, second);
  EXPECT_EQ(stats.tiles_allocated, 1u);
}

TEST(FrameTest, ReadPixelsAtAnOriginAcrossTiles) {
  TileGrid grid(200, 100);
  GridStats stats;
  for (uint32_t c = 0; c < grid.columns(); ++c)
    for (uint32_t r = 0; r < grid.rows(); ++r) {
      uint8_t* tile = grid.MutableTile(c, r, true, &stats);
      for (uint32_t i = 0; i < kTileSize * kTileSize; ++i) {
        uint32_t x = c * kTileSize + i % kTileSize, y = r * kTileSize + i / kTileSize;
        uint32_t v = x | (y << 16);
        std::memcpy(tile + i * 4, &v, 4);
      }
    }
  Frame frame(100, 50, 30, 20, grid.Snapshot(), grid.columns(), 1);
  EXPECT_EQ(frame.PixelAt(0, 0), 30u | (20u << 16));
  EXPECT_EQ(frame.PixelAt(99, 49), 129u | (69u << 16));
  std::vector<uint32_t> out(3 * 2);
  frame.ReadPixels({33, 43, 3, 2}, reinterpret_cast<uint8_t*>(out.data()), 12);
  EXPECT_EQ(out[0], 63u | (63u << 16));
  EXPECT_EQ(out[1], 64u | (63u << 16));
  EXPECT_EQ(out[5], 65u | (64u << 16));
}

TEST(EdidTest, HugeModesLowerTheRefreshToFitTheClockField) {
  auto edid = MakeEdid(4095, 4095, 1);
  EdidMode mode = DecodePreferredMode(edid);
  EXPECT_EQ(mode.width, 4095u);
  EXPECT_EQ(mode.height, 4095u);
  EXPECT_LT(mode.refresh_hz, 60u);
  EXPECT_GT(mode.refresh_hz, 0u);
  uint8_t sum = 0;
  for (uint8_t b : edid) sum = static_cast<uint8_t>(sum + b);
  EXPECT_EQ(sum, 0);
}

TEST(PixelCopyTest, SourceEndOverflowIsReported) {
  GuestPixels source{nullptr, ~0ull - 10, 4, 2};
  EXPECT_FALSE(SourceEnd(source, 4, 1).has_value());
  source = GuestPixels{nullptr, 0, ~0ull / 2, 2};
  EXPECT_FALSE(SourceEnd(source, 1, 4).has_value());
  source = GuestPixels{nullptr, 100, 400, 2};
  EXPECT_EQ(SourceEnd(source, 100, 2), 100u + 400 + 400);
}

}  // namespace
}  // namespace vgpu::gpu
