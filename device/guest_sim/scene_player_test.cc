#include "device/guest_sim/scene_player.h"

#include "gtest/gtest.h"

namespace vgpu::synth {
namespace {

// The demo guest's pixels reach the device's frame unchanged.
TEST(ScenePlayerTest, SceneReachesTheScanout) {
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

namespace vgpu::synth {
namespace {

TEST(ScenePlayerTest, BlobFramebufferWithFencedFlushes) {
  ScenePlayerOptions options;
  options.scene = "video";
  options.width = 256;
  options.height = 128;
  options.use_blob = true;
  guest_sim::SimulatedGuestOptions sim;
  sim.device.displays = {{256, 128, true}};
  auto guest = guest_sim::SimulatedGuest::Create(sim);
  ASSERT_TRUE(guest.ok());
  auto player = ScenePlayer::Create(options, guest->get());
  ASSERT_TRUE(player.ok()) << player.status();
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE((*player)->Tick(i).ok());
  const gpu::DeviceStats& stats = (*guest)->device().stats();
  EXPECT_EQ(stats.transfer_bytes_copied, 0u);  // blobs are read at flush
  EXPECT_EQ(stats.flush_bytes_copied, 3u * 256 * 128 * 4);
  ASSERT_NE((*guest)->sink().latest, nullptr);
  // Frame 2 of the video scene at (0, 0): r = t, g = t, b = 2t with t = 64.
  EXPECT_EQ((*guest)->sink().latest->PixelAt(0, 0), 0xFF404080u);
}

}  // namespace
}  // namespace vgpu::synth
