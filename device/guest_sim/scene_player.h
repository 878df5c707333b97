// Plays a synthetic scene as the Linux driver would present it: draws into
// the guest framebuffer, then TRANSFER_TO_HOST_2D + RESOURCE_FLUSH per damage
// rect, and UPDATE_CURSOR / MOVE_CURSOR for the cursor. Drives any
// SimulatedGuest: in-process, or over vhost-user (the daemon's --demo,
// vgpu-synth-guest).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

#include "device/guest_sim/scenes.h"
#include "device/guest_sim/simulated_guest.h"

namespace vgpu::synth {

struct ScenePlayerOptions {
  std::string scene = "console";
  uint32_t width = 1280;
  uint32_t height = 800;
  // Present from a guest blob (SET_SCANOUT_BLOB, fenced flushes), as Linux
  // does when the device offers RESOURCE_BLOB; otherwise a 2D resource.
  bool use_blob = false;
  // Every `mode_every` frames (0: never) the guest changes resolution the
  // way a DRM modeset does: a new framebuffer resource of the next size in
  // `modes` (cycling; empty means 800x600, 640x480, 1024x768, then
  // width x height again), SET_SCANOUT(_BLOB) to it, a flush of all of it,
  // then UNREF of the old one.
  uint64_t mode_every = 0;
  std::vector<std::pair<uint32_t, uint32_t>> modes;
};

// Thread-compatible.
class ScenePlayer {
 public:
  // Drives `guest` (in-process or over vhost-user), which must outlive it.
  // Probes the display as Linux does (GET_EDID, GET_DISPLAY_INFO), then
  // creates the framebuffer resource and puts it on scanout 0.
  static absl::StatusOr<std::unique_ptr<ScenePlayer>> Create(
      ScenePlayerOptions options, guest_sim::SimulatedGuest* guest);

  // Draws and presents frame number `index`.
  absl::Status Tick(uint64_t index);
  // Hands one input packet (evdev events up to SYN_REPORT) to the scene and
  // presents what it drew at once, moving the cursor if the pointer moved.
  absl::Status Input(absl::Span<const input::InputEvent> packet);
  // The keyboard LEDs the scene's console has lit.
  uint32_t leds() const { return scene_->leds(); }

  uint64_t damage_pixels() const { return damage_pixels_; }
  uint32_t width() const { return width_; }
  uint32_t height() const { return height_; }

 private:
  ScenePlayer() = default;
  // A framebuffer resource of width x height over the framebuffer pages,
  // shown on scanout 0.
  absl::Status ShowFramebuffer(uint32_t id, uint32_t width, uint32_t height);
  absl::Status ChangeMode(uint32_t width, uint32_t height);
  absl::Status Present(const std::vector<Damage>& damage);
  absl::Status ShowCursor(const CursorPoint& at);

  ScenePlayerOptions options_;
  guest_sim::SimulatedGuest* guest_ = nullptr;
  std::unique_ptr<Scene> scene_;
  uint32_t* pixels_ = nullptr;  // the framebuffer, in guest RAM
  uint64_t framebuffer_gpa_ = 0;
  uint32_t framebuffer_id_ = 0;
  uint32_t width_ = 0;
  uint32_t height_ = 0;
  uint64_t modes_shown_ = 0;
  bool cursor_shown_ = false;
  std::optional<CursorPoint> cursor_;  // where it was last shown
  uint64_t index_ = 0;                 // of the last Tick
  uint64_t damage_pixels_ = 0;
};

}  // namespace vgpu::synth
