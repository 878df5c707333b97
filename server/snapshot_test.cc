#include "server/snapshot.h"

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "device/gpu/test_frames.h"

namespace vgpu::server {
namespace {

// The snapshot file is a P6 PPM of the frame, R,G,B per pixel.
TEST(SnapshotTest, APpmShowsTheFrame) {
  std::vector<uint32_t> pixels(size_t{320} * 200, 0xFF000000u);
  pixels[0] = 0xFFFF8040u;
  pixels[size_t{199} * 320 + 319] = 0xFF102030u;
  gpu::FramePtr frame = gpu::FrameOfPixels(pixels, 320, 200, 1);
  const std::string path = ::testing::TempDir() + "/snapshot-test.ppm";
  ASSERT_TRUE(WritePpm(*frame, path).ok());
  std::ifstream in(path, std::ios::binary);
  std::string magic;
  uint32_t w = 0, h = 0, max = 0;
  in >> magic >> w >> h >> max;
  in.get();
  EXPECT_EQ(magic, "P6");
  EXPECT_EQ(w, 320u);
  EXPECT_EQ(h, 200u);
  EXPECT_EQ(max, 255u);
  std::string rgb(size_t{320} * 200 * 3, '\0');
  in.read(rgb.data(), static_cast<std::streamsize>(rgb.size()));
  ASSERT_TRUE(in.good());
  EXPECT_EQ(rgb.substr(0, 3), "\xFF\x80\x40");
  EXPECT_EQ(rgb.substr(rgb.size() - 3), std::string("\x10\x20\x30"));
  EXPECT_EQ(rgb[3], '\0');
  std::remove(path.c_str());
}

TEST(SnapshotTest, AnUnwritableFolderIsAnError) {
  std::vector<uint32_t> pixels(16, 0xFF000000u);
  gpu::FramePtr frame = gpu::FrameOfPixels(pixels, 4, 4, 1);
  EXPECT_FALSE(WritePpm(*frame, "/nonexistent-folder/shot.ppm").ok());
}

}  // namespace
}  // namespace vgpu::server
