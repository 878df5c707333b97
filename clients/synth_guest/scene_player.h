// Plays a synthetic scene as the Linux driver would present it: draws into
// the guest framebuffer, then TRANSFER_TO_HOST_2D + RESOURCE_FLUSH per damage
// rect, and UPDATE_CURSOR / MOVE_CURSOR for the cursor. Drives any
// SimulatedGuest: in-process, or over vhost-user (the daemon's --demo,
// vgpu-synth-guest).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include "clients/synth_guest/scenes.h"
#include "device/guest_sim/simulated_guest.h"

namespace vgpu::synth {

struct ScenePlayerOptions {
  std::string scene = "console";
  uint32_t width = 1280;
  uint32_t height = 800;
  // Present from a guest blob (SET_SCANOUT_BLOB, fenced flushes), as Linux
  // does when the device offers RESOURCE_BLOB; otherwise a 2D resource.
  bool use_blob = false;
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

  uint64_t damage_pixels() const { return damage_pixels_; }

 private:
  ScenePlayer() = default;

  ScenePlayerOptions options_;
  guest_sim::SimulatedGuest* guest_ = nullptr;
  std::unique_ptr<Scene> scene_;
  uint32_t* pixels_ = nullptr;  // the framebuffer, in guest RAM
  uint64_t framebuffer_gpa_ = 0;
  bool cursor_shown_ = false;
  uint64_t damage_pixels_ = 0;
};

}  // namespace vgpu::synth
