#include "server/encode/damage_map.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace vgpu::server {
namespace {

using Rects = std::vector<gpu::PixelRect>;

uint64_t Area(const Rects& rects) {
  uint64_t area = 0;
  for (const gpu::PixelRect& r : rects) area += uint64_t{r.width} * r.height;
  return area;
}

TEST(DamageMapTest, ACharacterStaysACharacter) {
  DamageMap map;
  EXPECT_TRUE(map.empty());
  map.Add({72, 100, 8, 16});
  EXPECT_FALSE(map.empty());
  EXPECT_EQ(map.Take(1280, 800), (Rects{{72, 100, 8, 16}}));
  EXPECT_TRUE(map.empty());
  EXPECT_TRUE(map.Take(1280, 800).empty());
}

TEST(DamageMapTest, CellsFarApartStaySeparateAndNeighboursMerge) {
  DamageMap map;
  map.Add({10, 10, 8, 16});
  map.Add({1000, 700, 8, 16});
  // A character across a cell boundary is one rect again.
  map.Add({60, 300, 8, 16});
  EXPECT_EQ(map.Take(1280, 800),
            (Rects{{10, 10, 8, 16}, {60, 300, 8, 16}, {1000, 700, 8, 16}}));
}

TEST(DamageMapTest, ALineOfTextAndAWholeScreenAreOneRectEach) {
  DamageMap map;
  map.Add({0, 100, 1280, 16});
  EXPECT_EQ(map.Take(1280, 800), (Rects{{0, 100, 1280, 16}}));
  // The device reports a full-screen change one tile at a time.
  for (uint32_t y = 0; y < 800; y += 64)
    for (uint32_t x = 0; x < 1280; x += 64) map.Add({x, y, 64, 64});
  EXPECT_EQ(map.Take(1280, 800), (Rects{{0, 0, 1280, 800}}));
  map.AddAll();
  EXPECT_EQ(map.Take(300, 200), (Rects{{0, 0, 300, 200}}));
}

TEST(DamageMapTest, TakeClipsToTheScreenAndTouchesSeesOnlyDamage) {
  DamageMap map;
  map.Add({250, 190, 100, 100});
  EXPECT_TRUE(map.Touches({255, 195, 1, 1}));
  EXPECT_FALSE(map.Touches({0, 0, 249, 300}));
  EXPECT_FALSE(map.Touches({0, 0, 0, 0}));
  EXPECT_EQ(map.Take(300, 200), (Rects{{250, 190, 50, 10}}));
  map.Add({0xFFFFFF00u, 0xFFFFFF00u, 0x200, 0x200});  // beyond any screen
  EXPECT_TRUE(map.empty());
  map.AddAll();
  EXPECT_TRUE(map.Touches({5, 5, 1, 1}));
}

// Random damage: what Take returns covers every damaged pixel of the
// screen, nothing outside it, and merging adds at most kMergeSlack pixels a
// cell over the cells' own rects.
TEST(DamageMapTest, RandomDamageIsCoveredAndMergesStayCheap) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    const uint32_t width = 1 + rng() % 700, height = 1 + rng() % 500;
    std::vector<uint8_t> damaged(size_t{width} * height, 0);
    DamageMap map;
    const int adds = 1 + static_cast<int>(rng() % 30);
    for (int i = 0; i < adds; ++i) {
      gpu::PixelRect r{static_cast<uint32_t>(rng() % (width + 50)),
                       static_cast<uint32_t>(rng() % (height + 50)),
                       1 + static_cast<uint32_t>(rng() % 90),
                       1 + static_cast<uint32_t>(rng() % 40)};
      const gpu::PixelRect c = gpu::Intersect(r, {0, 0, width, height});
      map.Add(c);
      for (uint32_t y = c.y; y < c.y + c.height; ++y)
        for (uint32_t x = c.x; x < c.x + c.width; ++x)
          damaged[size_t{y} * width + x] = 1;
    }
    // The cells' own rects, for the bound.
    uint64_t cell_area = 0, cells = 0;
    for (uint32_t cy = 0; cy < height; cy += 64) {
      for (uint32_t cx = 0; cx < width; cx += 64) {
        uint32_t x0 = ~0u, y0 = ~0u, x1 = 0, y1 = 0;
        for (uint32_t y = cy; y < std::min(cy + 64, height); ++y)
          for (uint32_t x = cx; x < std::min(cx + 64, width); ++x)
            if (damaged[size_t{y} * width + x]) {
              x0 = std::min(x0, x), y0 = std::min(y0, y);
              x1 = std::max(x1, x + 1), y1 = std::max(y1, y + 1);
            }
        if (x1 > 0) {
          cell_area += uint64_t{x1 - x0} * (y1 - y0);
          ++cells;
        }
      }
    }
    const Rects taken = map.Take(width, height);
    std::vector<uint8_t> covered(damaged.size(), 0);
    for (const gpu::PixelRect& r : taken) {
      ASSERT_EQ(gpu::Intersect(r, {0, 0, width, height}), r);
      for (uint32_t y = r.y; y < r.y + r.height; ++y)
        for (uint32_t x = r.x; x < r.x + r.width; ++x)
          covered[size_t{y} * width + x] = 1;
    }
    for (size_t i = 0; i < damaged.size(); ++i)
      ASSERT_TRUE(!damaged[i] || covered[i]) << "round " << round;
    EXPECT_LE(Area(taken), cell_area + cells * DamageMap::kMergeSlack)
        << "round " << round;
  }
}

}  // namespace
}  // namespace vgpu::server
