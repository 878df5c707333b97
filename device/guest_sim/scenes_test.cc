#include "device/guest_sim/scenes.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include <linux/input-event-codes.h>

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

// The demo scene after its first frame, and keys for it.
class DemoKeys {
 public:
  DemoKeys() : pixels_(kW * kH) {
    auto scene = MakeScene("demo", kW, kH);
    EXPECT_TRUE(scene.ok());
    scene_ = *std::move(scene);
    Render();
  }
  void Render() {
    std::vector<Damage> damage;
    scene_->Render(0, pixels_.data(), &damage);
  }
  // `code` pressed and released with `held` down around it.
  void Press(uint16_t code, std::vector<uint16_t> held = {}) {
    for (uint16_t key : held) Send(key, 1);
    Send(code, 1);
    Send(code, 0);
    for (uint16_t key : held) Send(key, 0);
  }
  const std::vector<uint32_t>& pixels() const { return pixels_; }
  // The rows where this picture and `other` differ: [first, last], or
  // {kH, 0} when none.
  std::pair<uint32_t, uint32_t> RowsDiffering(
      const std::vector<uint32_t>& other) const {
    std::pair<uint32_t, uint32_t> rows{kH, 0};
    for (uint32_t y = 0; y < kH; ++y) {
      for (uint32_t x = 0; x < kW; ++x) {
        if (pixels_[y * kW + x] == other[y * kW + x]) continue;
        rows = {std::min(rows.first, y), std::max(rows.second, y)};
        break;
      }
    }
    return rows;
  }
  static constexpr uint32_t kW = 640, kH = 480;

 private:
  void Send(uint16_t code, int32_t value) {
    std::vector<Damage> damage;
    scene_->Input({EV_KEY, code, value}, pixels_.data(), &damage);
  }
  std::unique_ptr<Scene> scene_;
  std::vector<uint32_t> pixels_;
};

// The demo shell's line editing: Ctrl+U erases what was typed, Ctrl+C
// abandons the line ("^C" and a new prompt), and neither types its letter.
TEST(ScenesTest, TheDemoShellTakesCtrlKeys) {
  DemoKeys erased, plain;
  erased.Press(KEY_A);
  erased.Press(KEY_B);
  erased.Press(KEY_U, {KEY_LEFTCTRL});
  erased.Press(KEY_X);
  plain.Press(KEY_X);
  EXPECT_EQ(erased.pixels(), plain.pixels());

  // "ab" then Ctrl+C looks like "ab^C" typed, plus a new prompt below.
  DemoKeys abandoned, typed, ab;
  for (DemoKeys* keys : {&abandoned, &typed, &ab}) {
    keys->Press(KEY_A);
    keys->Press(KEY_B);
  }
  abandoned.Press(KEY_C, {KEY_LEFTCTRL});
  typed.Press(KEY_6, {KEY_LEFTSHIFT});
  typed.Press(KEY_C, {KEY_LEFTSHIFT});
  const auto caret = typed.RowsDiffering(ab.pixels());  // "^C" drawn
  const auto below = abandoned.RowsDiffering(typed.pixels());
  ASSERT_LT(caret.first, DemoKeys::kH);
  ASSERT_LT(below.first, DemoKeys::kH) << "no new prompt after Ctrl+C";
  EXPECT_GT(below.first, caret.second);  // the same "ab^C" line above it
}

TEST(ScenesTest, UnknownSceneIsAClearError) {
  auto scene = MakeScene("nope", 640, 480);
  EXPECT_FALSE(scene.ok());
  EXPECT_NE(scene.status().message().find("console"), std::string::npos);
}

}  // namespace
}  // namespace vgpu::synth
