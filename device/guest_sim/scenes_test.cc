#include "device/guest_sim/scenes.h"

#include <vector>

#include "gtest/gtest.h"

namespace vgpu::synth {
namespace {

// Whatever a scene reports as damage must cover every pixel it changed.
TEST(ScenesTest, DamageCoversEveryChangedPixel) {
  constexpr uint32_t kW = 320, kH = 200;
  for (const std::string& name : SceneNames()) {
    auto scene = MakeScene(name, kW, kH);
    ASSERT_TRUE(scene.ok()) << name;
    std::vector<uint32_t> pixels(kW * kH, 0), before;
    for (uint64_t index = 0; index < 50; ++index) {
      before = pixels;
      std::vector<Damage> damage;
      (*scene)->Render(index, pixels.data(), &damage);
      std::vector<bool> covered(kW * kH, false);
      for (const Damage& d : damage) {
        ASSERT_LE(d.x + d.width, kW);
        ASSERT_LE(d.y + d.height, kH);
        for (uint32_t y = d.y; y < d.y + d.height; ++y) {
          for (uint32_t x = d.x; x < d.x + d.width; ++x)
            covered[y * kW + x] = true;
        }
      }
      for (uint32_t i = 0; i < kW * kH; ++i) {
        if (pixels[i] != before[i]) {
          ASSERT_TRUE(covered[i]) << name << " frame " << index;
        }
      }
    }
  }
}

TEST(ScenesTest, ConsoleDamageIsOneCell) {
  auto scene = MakeScene("console", 640, 480);
  std::vector<uint32_t> pixels(640 * 480);
  std::vector<Damage> damage;
  (*scene)->Render(0, pixels.data(), &damage);
  damage.clear();
  (*scene)->Render(1, pixels.data(), &damage);
  ASSERT_EQ(damage.size(), 1u);
  EXPECT_EQ(damage[0].width, 8u);
  EXPECT_EQ(damage[0].height, 16u);
}

TEST(ScenesTest, UnknownSceneIsAClearError) {
  auto scene = MakeScene("nope", 640, 480);
  EXPECT_FALSE(scene.ok());
  EXPECT_NE(scene.status().message().find("console"), std::string::npos);
}

}  // namespace
}  // namespace vgpu::synth
