// Which key a character or an X11 keysym is on, for a keyboard layout: the
// reverse of what the guest's keymap does. Built with libxkbcommon from
// Debian's xkb-data (rules evdev, model pc105), so every layout X and
// Wayland know is here. Codes are Linux evdev key codes (XKB keycode - 8),
// limited to the keys the virtio keyboard has (KEY_ESC..KEY_MICMUTE).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include "common/mutex.h"

namespace vgpu::server {

// The guest's lock state, which changes what a key types (its LEDs).
struct LockState {
  bool caps_lock = false;
  bool num_lock = false;
};

// A key and the modifiers held to reach the wanted level.
struct KeyStroke {
  uint16_t code = 0;   // evdev KEY_*
  bool shift = false;  // level 2: hold Shift
  bool altgr = false;  // level 3: hold AltGr (KEY_RIGHTALT)
};

// Immutable once made: thread-safe.
class Keymap {
 public:
  // `layout` and `variant` as XKB names them ("us", "de" "nodeadkeys",
  // "fr"). InvalidArgument for a layout xkb-data does not have;
  // FailedPrecondition when xkb-data is missing.
  static absl::StatusOr<std::unique_ptr<const Keymap>> Create(
      const std::string& layout, const std::string& variant = "");

  const std::string& name() const { return name_; }
  // The key for an X11 keysym (<X11/keysymdef.h>) while the guest's locks
  // are `locks`, nullopt if no key of the layout types it. Fewest modifiers
  // win (none, Shift, AltGr, both), then the lowest key code. With CapsLock
  // on, a letter needs Shift for its lower case (QEMU's VNC server toggles
  // the guest's CapsLock instead, ui/vnc.c do_key_event; adding Shift
  // leaves the guest's lock as its user set it). A keysym no modifier reaches
  // under `locks` (a keypad digit with NumLock off) gets the key that types
  // it under other locks: the guest's locks are never toggled.
  std::optional<KeyStroke> ForKeysym(uint32_t keysym,
                                     LockState locks = {}) const;
  // The key for a Unicode character; '\n' is Return, '\t' Tab, '\b'
  // BackSpace, 0x1b Escape.
  std::optional<KeyStroke> ForCharacter(char32_t character,
                                        LockState locks = {}) const;
  // What key `code` types with Shift and AltGr as given, under `locks`
  // (XKB_KEY_NoSymbol, 0, for nothing or a code past KEY_MICMUTE).
  uint32_t KeysymAt(uint16_t code, bool shift, bool altgr,
                    LockState locks = {}) const;

 private:
  Keymap() = default;
  static size_t Index(LockState locks) {
    return (locks.caps_lock ? 1 : 0) | (locks.num_lock ? 2 : 0);
  }
  std::string name_;
  std::map<uint32_t, KeyStroke> by_keysym_[4];  // by Index(locks)
  // by_key_[Index(locks)][held * kKeys + code], held: 1 Shift | 2 AltGr.
  static constexpr size_t kKeys = 256;
  std::vector<uint32_t> by_key_[4];
};

// Compiled layouts, kept: compiling one takes milliseconds. Thread-safe.
class KeymapCache {
 public:
  absl::StatusOr<std::shared_ptr<const Keymap>> Get(const std::string& layout,
                                                    const std::string& variant);

 private:
  Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const Keymap>>
      keymaps_ VGPU_GUARDED_BY(mu_);
};

}  // namespace vgpu::server
