#include "server/viewer/lossy_cells.h"

#include "gtest/gtest.h"

namespace vgpu::server {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1000);

TEST(LossyCellsTest, SettledCellsComeOutAsRunsClippedToTheScreen) {
  LossyCells cells;
  cells.Reset(300, 100);  // 5 x 2 cells, the last column 44 px wide
  EXPECT_TRUE(cells.empty());
  EXPECT_EQ(cells.Oldest(), absl::InfiniteFuture());
  cells.Mark({0, 0, 300, 100}, kStart);
  cells.Mark({70, 70, 10, 10}, kStart + absl::Milliseconds(200));  // (1,1)
  EXPECT_EQ(cells.Oldest(), kStart);
  // At kStart + 100 ms: all but cell (1,1) have settled; (3,0) is pending.
  DamageMap pending;
  pending.Add({200, 10, 5, 5});
  std::vector<gpu::PixelRect> settled =
      cells.TakeSettled(kStart + absl::Milliseconds(100), pending);
  std::vector<gpu::PixelRect> want = {
      {0, 0, 192, 64}, {256, 0, 44, 64}, {0, 64, 64, 36}, {128, 64, 172, 36}};
  EXPECT_EQ(settled, want);
  EXPECT_FALSE(cells.empty());
  EXPECT_EQ(cells.Oldest(), kStart);  // (3,0), still held
  cells.Clear({192, 0, 64, 64});
  EXPECT_EQ(cells.Oldest(), kStart + absl::Milliseconds(200));
  settled = cells.TakeSettled(kStart + absl::Seconds(1), DamageMap());
  EXPECT_EQ(settled, (std::vector<gpu::PixelRect>{{64, 64, 64, 36}}));
  EXPECT_TRUE(cells.empty());
  EXPECT_TRUE(
      cells.TakeSettled(kStart + absl::Seconds(2), DamageMap()).empty());
}

TEST(LossyCellsTest, MarksOutsideTheScreenAndEmptyRectsAreIgnored) {
  LossyCells cells;
  cells.Reset(100, 100);
  cells.Mark({100, 0, 50, 50}, kStart);
  cells.Mark({0, 0, 0, 0}, kStart);
  cells.Mark({0xFFFFFFF0u, 0xFFFFFFF0u, 0x20, 0x20}, kStart);
  EXPECT_TRUE(cells.empty());
  cells.Reset(0, 0);  // a disabled scanout
  cells.Mark({0, 0, 10, 10}, kStart);
  EXPECT_TRUE(cells.empty());
}

}  // namespace
}  // namespace vgpu::server
