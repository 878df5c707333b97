// Synthetic screen content, as a guest would draw it: console text (small
// damage), scrolling, full-screen video-like frames and cursor motion.
// Scenes draw XRGB8888 pixels (B,G,R,X bytes) and report what changed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include "device/input/input_event.h"

namespace vgpu::synth {

struct Damage {
  uint32_t x = 0;
  uint32_t y = 0;
  uint32_t width = 0;
  uint32_t height = 0;
};

struct CursorPoint {
  uint32_t x = 0;
  uint32_t y = 0;
};

// Thread-compatible.
class Scene {
 public:
  virtual ~Scene() = default;
  // Draws frame `index` into `pixels` (width * height, rows width apart) and
  // appends the rects that changed since frame index - 1.
  virtual void Render(uint64_t index, uint32_t* pixels,
                      std::vector<Damage>* damage) = 0;
  // Where the cursor is in frame `index`, for scenes that move one.
  virtual std::optional<CursorPoint> CursorAt(uint64_t) const {
    return std::nullopt;
  }
  // An event from the guest's keyboard or pointer (evdev; absolute axes run
  // 0..input::kTabletAxisMax). Draws what it changes into `pixels` and
  // appends the damage. Scenes that take no input ignore it.
  virtual void Input(const input::InputEvent& event, uint32_t* pixels,
                     std::vector<Damage>* damage) {
    (void)event;
    (void)pixels;
    (void)damage;
  }
  // The keyboard LEDs the scene's console has lit (bit LED_CAPSL, ...).
  virtual uint32_t leds() const { return 0; }
};

// "demo" (what the built-in demo guest shows: a title bar with a frame
// counter, colour bars, a boot log typed and scrolled), "console" (one
// character per frame), "scroll", "video" or "cursor".
absl::StatusOr<std::unique_ptr<Scene>> MakeScene(const std::string& name,
                                                 uint32_t width,
                                                 uint32_t height);
const std::vector<std::string>& SceneNames();

// A 64x64 arrow cursor, B,G,R,A bytes.
std::vector<uint32_t> CursorArrow();

}  // namespace vgpu::synth
