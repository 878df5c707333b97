// Key events as viewers send them (an evdev code, or an X11 keysym) to the
// evdev events the virtio keyboard sends. A keysym becomes a key of the
// layout, with Shift or AltGr pressed around it when the level needs them
// and the viewer is not holding them (QEMU's VNC server does the same with
// its keymaps).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include <linux/input-event-codes.h>

#include "device/input/input_config.h"
#include "device/input/input_event.h"
#include "server/input/keymap.h"

namespace vgpu::server {

// Thread-compatible: one per viewer (a stream, a call).
class KeyTranslator {
 public:
  // `keyboard` is the device's spec (which codes exist); both outlive this.
  KeyTranslator(const input::InputDeviceSpec* keyboard,
                std::shared_ptr<const Keymap> keymap);

  // The layout keysyms are typed in from now on (keys down stay as
  // pressed: their release lifts the key their press went down on).
  void set_keymap(std::shared_ptr<const Keymap> keymap) {
    keymap_ = std::move(keymap);
  }

  // One key going down or up: the events to send, each its own packet. A
  // keysym is typed for the guest's `locks` (CapsLock is not allowed for
  // while the viewer holds Ctrl, Alt or Meta: Ctrl+w stays Ctrl+w); a code
  // is sent as it is.
  // InvalidArgument: a code the keyboard lacks, a keysym the layout cannot
  // type, or both/neither of code and keysym.
  absl::StatusOr<std::vector<input::InputEvent>> Translate(uint32_t code,
                                                           uint32_t keysym,
                                                           bool down,
                                                           LockState locks);
  // Every key was lifted (ReleaseAll): the viewer holds nothing now.
  void Forget() {
    held_.clear();
    keysyms_down_.clear();
  }

  // Typing `character` (down and up), with its modifiers for `locks`.
  absl::StatusOr<std::vector<input::InputEvent>> Type(char32_t character,
                                                      LockState locks);

 private:
  absl::StatusOr<KeyStroke> StrokeFor(uint32_t keysym, LockState locks) const;
  // The events that type `keysym` with `stroke`: Shift or AltGr pressed
  // around it when the viewer does not hold them, a Shift the viewer holds
  // lifted around it when the key would type something else with it.
  void Press(const KeyStroke& stroke, uint32_t keysym, LockState locks,
             std::vector<input::InputEvent>* out, bool release_key);
  // Notes a modifier key going down or up.
  void Track(uint16_t code, bool down);
  bool Holds(uint16_t code) const { return held_.count(code) > 0; }
  bool ShiftHeld() const {
    return Holds(KEY_LEFTSHIFT) || Holds(KEY_RIGHTSHIFT);
  }

  const input::InputDeviceSpec* keyboard_;
  std::shared_ptr<const Keymap> keymap_;
  std::set<uint16_t> held_;  // modifiers the viewer holds, by its own events
  std::map<uint32_t, uint16_t> keysyms_down_;  // keysym -> the code pressed
};

}  // namespace vgpu::server
