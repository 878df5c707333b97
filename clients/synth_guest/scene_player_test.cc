#include "clients/synth_guest/scene_player.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

#include "server/snapshot.h"

namespace vgpu::synth {
namespace {

// The demo guest's pixels reach the device's frame unchanged, and the
// snapshot file shows them.
TEST(ScenePlayerTest, SceneReachesTheScanoutAndSnapshot) {
  ScenePlayerOptions options;
  options.scene = "cursor";
  options.width = 320;
  options.height = 200;
  guest_sim::SimulatedGuestOptions sim;
  sim.device.displays = {{320, 200, true}};
  auto guest = guest_sim::SimulatedGuest::Create(sim);
  ASSERT_TRUE(guest.ok());
  auto demo = ScenePlayer::Create(options, guest->get());
  ASSERT_TRUE(demo.ok()) << demo.status();
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE((*demo)->Tick(i).ok());
  gpu::FramePtr frame = (*guest)->sink().latest;
  ASSERT_NE(frame, nullptr);
  EXPECT_EQ(frame->PixelAt(0, 0) & 0xFFFFFF,
            0xFFFFFFu);  // first colour bar: white
  EXPECT_EQ(frame->PixelAt(319, 0) & 0xFFFFFF, 0x000000u);    // last: black
  EXPECT_EQ(frame->PixelAt(220, 100) & 0xFFFFFF, 0xFF0000u);  // sixth bar: red
  ASSERT_FALSE((*guest)->sink().cursors.empty());
  EXPECT_NE((*guest)->sink().cursors.front().image, nullptr);

  std::string path = ::testing::TempDir() + "/demo.ppm";
  ASSERT_TRUE(server::WritePpm(*frame, path).ok());
  std::ifstream in(path, std::ios::binary);
  std::string magic;
  uint32_t w = 0, h = 0, max = 0;
  in >> magic >> w >> h >> max;
  in.get();
  EXPECT_EQ(magic, "P6");
  EXPECT_EQ(w, 320u);
  EXPECT_EQ(h, 200u);
  char rgb[3];
  in.read(rgb, 3);
  EXPECT_EQ(static_cast<uint8_t>(rgb[0]), 0xFF);
  std::remove(path.c_str());
}

TEST(ScenePlayerTest, UnknownSceneIsRefused) {
  ScenePlayerOptions options;
  options.scene = "teapot";
  auto guest = guest_sim::SimulatedGuest::Create({});
  ASSERT_TRUE(guest.ok());
  EXPECT_FALSE(ScenePlayer::Create(options, guest->get()).ok());
}

}  // namespace
}  // namespace vgpu::synth
