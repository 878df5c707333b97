#include "common/checked_math.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace vgpu {
namespace {

TEST(CheckedMathTest, AddWithinRangeReturnsSum) {
  EXPECT_EQ(CheckedAdd<uint32_t>(0xFFFFFFF0u, 0xFu), 0xFFFFFFFFu);
}

TEST(CheckedMathTest, AddWrappingUint32ReturnsNullopt) {
  // The classic rect check bypass: x=0xFFFFFFF0, w=0x20.
  EXPECT_EQ(CheckedAdd<uint32_t>(0xFFFFFFF0u, 0x20u), std::nullopt);
}

TEST(CheckedMathTest, AddOfUint32IntoUint64DoesNotWrap) {
  EXPECT_EQ(CheckedAdd<uint64_t>(0xFFFFFFF0u, 0x20u), 0x100000010ull);
}

TEST(CheckedMathTest, MulOverflowingUint64ReturnsNullopt) {
  EXPECT_EQ(CheckedMul64(std::numeric_limits<uint64_t>::max() / 2 + 1, 2),
            std::nullopt);
}

TEST(CheckedMathTest, MulResourceSizeOverflowingUint32IsCaught) {
  // QEMU's CREATE_2D overflow: width 0x40000000 * 4 bytes * height 4.
  EXPECT_EQ(CheckedMul<uint32_t>(0x40000000u * 4ull, 4u), std::nullopt);
  EXPECT_EQ(CheckedMul64(0x40000000ull * 4, 4), 0x400000000ull);
}

TEST(CheckedMathTest, SubBelowZeroReturnsNullopt) {
  EXPECT_EQ(CheckedSub<uint64_t>(3u, 4u), std::nullopt);
  EXPECT_EQ(CheckedSub<uint64_t>(4u, 3u), 1u);
}

TEST(CheckedMathTest, RangeInsideHandlesEdgesAndWrap) {
  EXPECT_TRUE(RangeInside(0, 16, 16));
  EXPECT_TRUE(RangeInside(16, 0, 16));
  EXPECT_FALSE(RangeInside(1, 16, 16));
  EXPECT_FALSE(RangeInside(17, 0, 16));
  EXPECT_FALSE(RangeInside(8, std::numeric_limits<uint64_t>::max(), 16));
}

}  // namespace
}  // namespace vgpu
