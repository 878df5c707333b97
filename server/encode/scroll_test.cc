#include "server/encode/scroll.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace vgpu::server {
namespace {

// A frame of `pixels` (width x height, B,G,R,X as uint32).
gpu::FramePtr MakeFrame(const std::vector<uint32_t>& pixels, uint32_t width,
                        uint32_t height) {
  gpu::TileGrid grid(width, height);
  gpu::GridStats stats;
  grid.WritePixels({0, 0, width, height},
                   reinterpret_cast<const uint8_t*>(pixels.data()),
                   size_t{width} * 4, &stats);
  return std::make_shared<const gpu::Frame>(width, height, 0, 0,
                                            grid.Snapshot(), grid.columns(), 1);
}

// Text-like rows: a few distinct colours, every row different.
std::vector<uint32_t> Lines(uint32_t width, uint32_t height, uint32_t seed) {
  std::vector<uint32_t> pixels(size_t{width} * height);
  std::mt19937 rng(seed);
  for (uint32_t y = 0; y < height; ++y)
    for (uint32_t x = 0; x < width; ++x)
      pixels[size_t{y} * width + x] = rng() % 3 == 0 ? 0xFFFFFFFF : 0xFF102030;
  return pixels;
}

TEST(ScrollTest, AConsoleScrolledUpIsOneCopyOfWhatStayed) {
  const uint32_t w = 320, h = 200;
  std::vector<uint32_t> before = Lines(w, h, 1);
  std::vector<uint32_t> after(before.begin() + 16 * w, before.end());
  std::vector<uint32_t> fresh = Lines(w, 16, 2);
  after.insert(after.end(), fresh.begin(), fresh.end());
  auto copies = FindVerticalCopies(*MakeFrame(before, w, h),
                                   *MakeFrame(after, w, h), {0, 0, w, h});
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0], (VerticalCopy{{0, 0, w, h - 16}, 16}));
}

TEST(ScrollTest, ChangesThatAreNoMoveGiveNoCopy) {
  const uint32_t w = 256, h = 128;
  auto a = MakeFrame(Lines(w, h, 3), w, h);
  auto b = MakeFrame(Lines(w, h, 4), w, h);
  EXPECT_TRUE(FindVerticalCopies(*a, *b, {0, 0, w, h}).empty());
  EXPECT_TRUE(FindVerticalCopies(*a, *a, {0, 0, w, h}).empty());  // no change
}

// Random scrolls of part of the screen, with fresh rows and a few stray
// changes: every copy found reproduces its rows exactly, and a scroll of
// more than a few rows is found.
TEST(ScrollTest, RandomScrollsAreFoundAndExact) {
  std::mt19937 rng(5);
  for (int round = 0; round < 100; ++round) {
    const uint32_t w = 64 + rng() % 300, h = 64 + rng() % 200;
    std::vector<uint32_t> before = Lines(w, h, rng());
    const uint32_t top = rng() % (h / 4), bottom = h - rng() % (h / 4);
    const uint32_t span = bottom - top;
    const int32_t dy =
        static_cast<int32_t>(1 + rng() % (span / 3)) * (rng() % 2 ? 1 : -1);
    std::vector<uint32_t> after = before;
    std::vector<uint32_t> fresh = Lines(w, h, rng());
    for (uint32_t y = top; y < bottom; ++y) {
      const int64_t from = int64_t{y} + dy;
      for (uint32_t x = 0; x < w; ++x) {
        after[size_t{y} * w + x] = from >= top && from < bottom
                                       ? before[size_t(from) * w + x]
                                       : fresh[size_t{y} * w + x];
      }
    }
    after[size_t{rng() % h} * w + rng() % w] ^= 0x00FFFFFF;  // a stray change
    auto old_frame = MakeFrame(before, w, h);
    auto new_frame = MakeFrame(after, w, h);
    auto copies = FindVerticalCopies(*old_frame, *new_frame, {0, 0, w, h});
    for (const VerticalCopy& c : copies) {
      for (uint32_t y = 0; y < c.rect.height; ++y)
        for (uint32_t x = 0; x < c.rect.width; ++x)
          ASSERT_EQ(new_frame->PixelAt(c.rect.x + x, c.rect.y + y),
                    old_frame->PixelAt(c.rect.x + x, c.src_y + y))
              << "round " << round;
    }
    if (span - static_cast<uint32_t>(std::abs(dy)) >= 3 * kMinCopyRows) {
      ASSERT_FALSE(copies.empty()) << "round " << round << " dy " << dy;
      EXPECT_EQ(int64_t{copies[0].src_y} - copies[0].rect.y, dy);
    }
  }
}

TEST(ScrollTest, SubtractRectsLeavesWhatIsOutsideTheHoles) {
  auto left = SubtractRects({{0, 0, 100, 100}}, {{0, 20, 100, 50}});
  EXPECT_EQ(left,
            (std::vector<gpu::PixelRect>{{0, 0, 100, 20}, {0, 70, 100, 30}}));
  left = SubtractRects({{10, 10, 10, 10}}, {{12, 12, 2, 2}});
  uint64_t area = 0;
  for (const auto& r : left) area += uint64_t{r.width} * r.height;
  EXPECT_EQ(area, 100u - 4);
  EXPECT_TRUE(SubtractRects({{0, 0, 5, 5}}, {{0, 0, 10, 10}}).empty());
}

}  // namespace
}  // namespace vgpu::server
