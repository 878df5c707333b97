#include "device/gpu/frame.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

#include "device/gpu/edid.h"
#include "device/gpu/pixel_copy.h"

namespace vgpu::gpu {
namespace {

TEST(FrameTest, IntersectClipsAndHandlesWrap) {
  EXPECT_EQ(Intersect({0, 0, 100, 100}, {50, 50, 100, 100}),
            (PixelRect{50, 50, 50, 50}));
  EXPECT_TRUE(Intersect({0, 0, 10, 10}, {10, 0, 10, 10}).empty());
  EXPECT_EQ(Intersect({0xFFFFFFF0, 0, 0x20, 1}, {0, 0, 0xFFFFFFFF, 1}),
            (PixelRect{0xFFFFFFF0, 0, 0xF, 1}));
}

TEST(FrameTest, BoundingBoxIgnoresEmptyRects) {
  EXPECT_EQ(BoundingBox({10, 10, 5, 5}, {30, 0, 10, 2}),
            (PixelRect{10, 0, 30, 15}));
  EXPECT_EQ(BoundingBox({}, {3, 4, 5, 6}), (PixelRect{3, 4, 5, 6}));
  EXPECT_EQ(BoundingBox({3, 4, 5, 6}, {}), (PixelRect{3, 4, 5, 6}));
}

TEST(FrameTest, CopyOnWriteNeverChangesAPublishedFrame) {
  TileGrid grid(130, 70);
  GridStats stats;
  grid.MutableTile(0, 0, PixelRect{0, 0, 1, 1}, &stats)[0] = 1;
  Frame old_frame(130, 70, 0, 0, grid.Snapshot(), grid.columns(), 1);
  grid.MutableTile(0, 0, PixelRect{0, 0, 1, 1}, &stats)[0] = 2;
  Frame new_frame(130, 70, 0, 0, grid.Snapshot(), grid.columns(), 2);
  EXPECT_EQ(old_frame.PixelAt(0, 0) & 0xFF, 1u);
  EXPECT_EQ(new_frame.PixelAt(0, 0) & 0xFF, 2u);
  EXPECT_EQ(stats.tiles_cloned, 1u);
  EXPECT_EQ(stats.clone_bytes, kTileBytes - 4);  // all but the covered pixel
  EXPECT_EQ(old_frame.GridTile(2, 1), nullptr);  // never written: reads as zero
  EXPECT_EQ(new_frame.PixelAt(129, 69), 0u);
}

TEST(FrameTest, ExclusiveTilesAreWrittenInPlace) {
  TileGrid grid(64, 64);
  GridStats stats;
  uint8_t* first = grid.MutableTile(0, 0, PixelRect{}, &stats);
  uint8_t* second = grid.MutableTile(0, 0, PixelRect{}, &stats);
  EXPECT_EQ(first, second);
  EXPECT_EQ(stats.tiles_allocated, 1u);
}

TEST(FrameTest, ReadPixelsAtAnOriginAcrossTiles) {
  TileGrid grid(200, 100);
  GridStats stats;
  for (uint32_t c = 0; c < grid.columns(); ++c)
    for (uint32_t r = 0; r < grid.rows(); ++r) {
      uint8_t* tile =
          grid.MutableTile(c, r, PixelRect{0, 0, kTileSize, kTileSize}, &stats);
      for (uint32_t i = 0; i < kTileSize * kTileSize; ++i) {
        uint32_t x = c * kTileSize + i % kTileSize,
                 y = r * kTileSize + i / kTileSize;
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

// Random rects (some reaching past the frame) at random origins, with a
// never-written tile, against the grid's coordinates pixel by pixel.
TEST(FrameTest, ReadPixelsMatchesPixelByPixelReads) {
  TileGrid grid(300, 200);
  GridStats stats;
  for (uint32_t c = 0; c < grid.columns(); ++c)
    for (uint32_t r = 0; r < grid.rows(); ++r) {
      if (c == 2 && r == 1) continue;  // stays all-zero (nullptr)
      uint8_t* tile =
          grid.MutableTile(c, r, PixelRect{0, 0, kTileSize, kTileSize}, &stats);
      for (uint32_t i = 0; i < kTileSize * kTileSize; ++i) {
        uint32_t v = (c * kTileSize + i % kTileSize) |
                     ((r * kTileSize + i / kTileSize) << 16);
        std::memcpy(tile + i * 4, &v, 4);
      }
    }
  auto expected = [](uint32_t gx, uint32_t gy) -> uint32_t {
    if (gx / kTileSize == 2 && gy / kTileSize == 1) return 0;
    return gx | (gy << 16);
  };
  uint32_t seed = 12345;
  auto next = [&seed](uint32_t bound) {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 8) % bound;
  };
  for (int round = 0; round < 300; ++round) {
    uint32_t ox = next(100), oy = next(80);
    uint32_t width = 1 + next(300 - ox), height = 1 + next(200 - oy);
    Frame frame(width, height, ox, oy, grid.Snapshot(), grid.columns(), 1);
    PixelRect rect{next(width + 20), next(height + 20), 1 + next(200),
                   1 + next(150)};
    constexpr uint32_t kSentinel = 0xDEADBEEF;
    std::vector<uint32_t> out(size_t{rect.width} * rect.height, kSentinel);
    frame.ReadPixels(rect, reinterpret_cast<uint8_t*>(out.data()),
                     size_t{rect.width} * 4);
    for (uint32_t y = 0; y < rect.height; ++y)
      for (uint32_t x = 0; x < rect.width; ++x) {
        uint64_t fx = uint64_t{rect.x} + x, fy = uint64_t{rect.y} + y;
        uint32_t want = fx < width && fy < height
                            ? expected(static_cast<uint32_t>(fx) + ox,
                                       static_cast<uint32_t>(fy) + oy)
                            : kSentinel;  // outside the frame: untouched
        ASSERT_EQ(out[size_t{y} * rect.width + x], want)
            << "round " << round << " at " << x << "," << y;
      }
  }
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

namespace vgpu::gpu {
namespace {

// Random partial writes with frames kept and dropped at random: every frame
// must keep showing exactly the pixels it had when published, whatever
// copy-on-write path (clone, back-tile reuse, in place) served later writes.
TEST(FrameTest, PublishedFramesNeverChangeUnderRandomWrites) {
  constexpr uint32_t kW = 200, kH = 150;
  TileGrid grid(kW, kH);
  GridStats stats;
  std::vector<uint32_t> model(kW * kH, 0);
  struct Kept {
    std::shared_ptr<Frame> frame;
    std::vector<uint32_t> expected;
  };
  std::vector<Kept> kept;
  uint32_t seed = 12345;
  auto next = [&seed](uint32_t bound) {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 8) % bound;
  };
  for (int step = 0; step < 3000; ++step) {
    PixelRect r{next(kW), next(kH), 0, 0};
    r.width = 1 + next(std::min<uint32_t>(kW - r.x, 90));
    r.height = 1 + next(std::min<uint32_t>(kH - r.y, 90));
    uint32_t value = 0xFF000000u | static_cast<uint32_t>(step);
    for (uint32_t row = r.y / kTileSize;
         row <= (r.y + r.height - 1) / kTileSize; ++row)
      for (uint32_t col = r.x / kTileSize;
           col <= (r.x + r.width - 1) / kTileSize; ++col) {
        PixelRect tile_rect{col * kTileSize, row * kTileSize, kTileSize,
                            kTileSize};
        PixelRect part = Intersect(r, tile_rect);
        PixelRect covered{part.x - tile_rect.x, part.y - tile_rect.y,
                          part.width, part.height};
        uint8_t* pixels = grid.MutableTile(col, row, covered, &stats);
        for (uint32_t y = part.y; y < part.y + part.height; ++y)
          for (uint32_t x = part.x; x < part.x + part.width; ++x)
            std::memcpy(pixels + (y - tile_rect.y) * kTileStride +
                            (x - tile_rect.x) * 4,
                        &value, 4);
      }
    for (uint32_t y = r.y; y < r.y + r.height; ++y)
      for (uint32_t x = r.x; x < r.x + r.width; ++x) model[y * kW + x] = value;
    if (next(3) == 0) {
      kept.push_back({std::make_shared<Frame>(kW, kH, 0, 0, grid.Snapshot(),
                                              grid.columns(), 0),
                      model});
    }
    if (!kept.empty() && next(2) == 0)
      kept.erase(kept.begin() + next(kept.size()));
    for (const Kept& k : kept) {
      uint32_t x = next(kW), y = next(kH);
      ASSERT_EQ(k.frame->PixelAt(x, y), k.expected[y * kW + x])
          << "step " << step;
    }
  }
  for (const Kept& k : kept) {
    std::vector<uint32_t> pixels(kW * kH);
    k.frame->ReadPixels({0, 0, kW, kH},
                        reinterpret_cast<uint8_t*>(pixels.data()), kW * 4);
    EXPECT_EQ(pixels, k.expected);
  }
  Frame current(kW, kH, 0, 0, grid.Snapshot(), grid.columns(), 0);
  std::vector<uint32_t> pixels(kW * kH);
  current.ReadPixels({0, 0, kW, kH}, reinterpret_cast<uint8_t*>(pixels.data()),
                     kW * 4);
  EXPECT_EQ(pixels, model);
  EXPECT_GT(stats.back_tiles_reused, 0u);
  EXPECT_GT(stats.tiles_cloned, 0u);
}

}  // namespace
}  // namespace vgpu::gpu

namespace vgpu::gpu {
namespace {

TEST(FrameTest, WritePixelsCrossesTilesAndKeepsOldFramesIntact) {
  TileGrid grid(200, 150);
  GridStats stats;
  std::vector<uint32_t> first(200 * 150, 0xFF000001u);
  grid.WritePixels({0, 0, 200, 150}, reinterpret_cast<uint8_t*>(first.data()),
                   200 * 4, &stats);
  Frame before(200, 150, 0, 0, grid.Snapshot(), grid.columns(), 1);
  std::vector<uint32_t> patch(30 * 20);
  for (uint32_t i = 0; i < patch.size(); ++i) patch[i] = 0xFF000000u | i;
  grid.WritePixels({50, 60, 30, 20}, reinterpret_cast<uint8_t*>(patch.data()),
                   30 * 4, &stats);
  Frame after(200, 150, 0, 0, grid.Snapshot(), grid.columns(), 2);
  EXPECT_EQ(after.PixelAt(50, 60), 0xFF000000u);
  EXPECT_EQ(after.PixelAt(79, 79), 0xFF000000u | (19 * 30 + 29));
  EXPECT_EQ(after.PixelAt(80, 79), 0xFF000001u);
  EXPECT_EQ(before.PixelAt(79, 79), 0xFF000001u);
}

}  // namespace
}  // namespace vgpu::gpu

namespace vgpu::gpu {
namespace {

// Per 64x64 tile, the smallest rect holding every pixel where the frames
// differ, in row-major tile order (frames with origin 0).
std::vector<PixelRect> DiffByPixels(const Frame& a, const Frame& b) {
  std::vector<PixelRect> rects;
  for (uint32_t ty = 0; ty < a.height(); ty += kTileSize) {
    for (uint32_t tx = 0; tx < a.width(); tx += kTileSize) {
      uint32_t x0 = ~0u, y0 = ~0u, x1 = 0, y1 = 0;
      for (uint32_t y = ty; y < std::min(ty + kTileSize, a.height()); ++y)
        for (uint32_t x = tx; x < std::min(tx + kTileSize, a.width()); ++x)
          if (a.PixelAt(x, y) != b.PixelAt(x, y)) {
            x0 = std::min(x0, x), y0 = std::min(y0, y);
            x1 = std::max(x1, x + 1), y1 = std::max(y1, y + 1);
          }
      if (x1 > 0) rects.push_back({x0, y0, x1 - x0, y1 - y0});
    }
  }
  return rects;
}

// Random writes of identical and changed pixels: one write between frames
// reports exactly the changed part of each tile; several writes report
// every changed pixel, inside what was written. Identical rewrites change
// no tile at all.
TEST(FrameTest, ChangedSinceGivesExactlyTheChangedSubRects) {
  std::mt19937 rng(11);
  for (int round = 0; round < 40; ++round) {
    const uint32_t width = 1 + rng() % 300, height = 1 + rng() % 200;
    TileGrid grid(width, height);
    GridStats stats;
    std::vector<uint32_t> screen(size_t{width} * height, 0);
    auto frame = [&, sequence = uint64_t{0}]() mutable {
      return std::make_shared<const Frame>(width, height, 0, 0, grid.Snapshot(),
                                           grid.columns(), ++sequence);
    };
    FramePtr previous = frame();
    for (int step = 0; step < 25; ++step) {
      const int writes = step % 3 == 0 ? 3 : 1;
      PixelRect written;
      for (int w = 0; w < writes; ++w) {
        PixelRect r{static_cast<uint32_t>(rng() % width),
                    static_cast<uint32_t>(rng() % height), 0, 0};
        r.width = 1 + static_cast<uint32_t>(rng() % (width - r.x));
        r.height = 1 + static_cast<uint32_t>(rng() % (height - r.y));
        // Mostly what is there already, with a few changed pixels (or
        // none: a pure rewrite).
        const int changes = static_cast<int>(rng() % 4);
        std::vector<uint32_t> pixels(size_t{r.width} * r.height);
        for (uint32_t y = 0; y < r.height; ++y)
          for (uint32_t x = 0; x < r.width; ++x)
            pixels[size_t{y} * r.width + x] =
                screen[size_t{r.y + y} * width + r.x + x];
        for (int c = 0; c < changes; ++c)
          pixels[rng() % pixels.size()] = static_cast<uint32_t>(rng());
        grid.WritePixels(r, reinterpret_cast<const uint8_t*>(pixels.data()),
                         size_t{r.width} * 4, &stats);
        for (uint32_t y = 0; y < r.height; ++y)
          for (uint32_t x = 0; x < r.width; ++x)
            screen[size_t{r.y + y} * width + r.x + x] =
                pixels[size_t{y} * r.width + x];
        written = BoundingBox(written, r);
      }
      FramePtr next = frame();
      const std::vector<PixelRect> reported = next->ChangedSince(*previous);
      const std::vector<PixelRect> exact = DiffByPixels(*previous, *next);
      if (writes == 1) {
        ASSERT_EQ(reported, exact) << "round " << round << " step " << step;
      } else {
        for (const PixelRect& r : exact) {
          bool covered = false;
          for (const PixelRect& q : reported) covered |= Intersect(r, q) == r;
          ASSERT_TRUE(covered) << "round " << round << " step " << step;
        }
        for (const PixelRect& q : reported) ASSERT_EQ(Intersect(q, written), q);
      }
      if (exact.empty()) {
        for (uint32_t row = 0; row < grid.rows(); ++row)
          for (uint32_t column = 0; column < grid.columns(); ++column)
            ASSERT_EQ(next->GridTile(column, row),
                      previous->GridTile(column, row));
      }
      for (uint32_t y = 0; y < height; y += 7)
        for (uint32_t x = 0; x < width; x += 5)
          ASSERT_EQ(next->PixelAt(x, y), screen[size_t{y} * width + x]);
      previous = next;
    }
  }
}

TEST(FrameTest, ChangedSinceAFrameOfAnotherShapeIsEverything) {
  TileGrid grid(200, 100);
  Frame a(200, 100, 0, 0, grid.Snapshot(), grid.columns(), 1);
  Frame b(100, 100, 0, 0, grid.Snapshot(), grid.columns(), 2);
  Frame c(100, 100, 50, 0, grid.Snapshot(), grid.columns(), 3);
  EXPECT_EQ(b.ChangedSince(a), (std::vector<PixelRect>{{0, 0, 100, 100}}));
  EXPECT_EQ(c.ChangedSince(b), (std::vector<PixelRect>{{0, 0, 100, 100}}));
  EXPECT_TRUE(b.ChangedSince(b).empty());
}

}  // namespace
}  // namespace vgpu::gpu
