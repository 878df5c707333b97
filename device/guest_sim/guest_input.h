// The synthetic guest's keyboard, tablet and mouse: virtio-input drivers
// (VirtioInputDriver) on the back-end's input sockets whose packets go to
// the scene being played, as a guest's console takes them, and whose
// console LEDs go back on the keyboard's status queue. The daemon's demo
// guest and vgpu-synth-guest use it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "device/guest_sim/input_driver.h"
#include "device/guest_sim/scene_player.h"

namespace vgpu::synth {

struct GuestInputOptions {
  // vhost-user sockets of the back-end's input devices; empty: none.
  std::string keyboard_socket;
  std::string tablet_socket;
  std::string mouse_socket;
  const std::atomic<bool>* cancel = nullptr;
};

// Thread-compatible.
class GuestInput {
 public:
  static absl::StatusOr<std::unique_ptr<GuestInput>> Connect(
      const GuestInputOptions& options);

  // Until `until`: every packet that arrives goes to `player` at once, and
  // an LED change of its console to the keyboard. Returns the packets
  // handled.
  absl::StatusOr<uint64_t> Serve(absl::Time until, ScenePlayer* player);

 private:
  GuestInput() = default;
  absl::StatusOr<uint64_t> TakePackets(ScenePlayer* player);

  const std::atomic<bool>* cancel_ = nullptr;
  std::unique_ptr<guest_sim::VirtioInputDriver> keyboard_, tablet_, mouse_;
  uint32_t leds_ = 0;  // as last told to the keyboard
};

}  // namespace vgpu::synth
