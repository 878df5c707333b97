#include "server/input/key_translator.h"

#include <xkbcommon/xkbcommon.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include <linux/input-event-codes.h>

namespace vgpu::server {
namespace {

// `c` in UTF-8, for messages (libxkbcommon encodes it); control characters
// and surrogates as '?'.
std::string Utf8(char32_t c) {
  if (c < 0x20 || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) return "?";
  char utf8[8];
  if (xkb_keysym_to_utf8(xkb_utf32_to_keysym(static_cast<uint32_t>(c)), utf8,
                         sizeof(utf8)) <= 0)
    return "?";
  return utf8;
}

}  // namespace

KeyTranslator::KeyTranslator(const input::InputDeviceSpec* keyboard,
                             std::shared_ptr<const Keymap> keymap)
    : keyboard_(keyboard), keymap_(std::move(keymap)) {}

absl::StatusOr<KeyStroke> KeyTranslator::StrokeFor(uint32_t keysym,
                                                   LockState locks) const {
  std::optional<KeyStroke> stroke = keymap_->ForKeysym(keysym, locks);
  if (!stroke) {
    return absl::InvalidArgumentError(
        absl::StrCat("keysym 0x", absl::Hex(keysym), " is on no key of layout ",
                     keymap_->name()));
  }
  return *stroke;
}

void KeyTranslator::Track(uint16_t code, bool down) {
  switch (code) {
    case KEY_LEFTSHIFT:
    case KEY_RIGHTSHIFT:
    case KEY_LEFTCTRL:
    case KEY_RIGHTCTRL:
    case KEY_LEFTALT:
    case KEY_RIGHTALT:  // AltGr
    case KEY_LEFTMETA:
    case KEY_RIGHTMETA:
      if (down) {
        held_.insert(code);
      } else {
        held_.erase(code);
      }
      break;
    default:
      break;
  }
}

void KeyTranslator::Press(const KeyStroke& stroke, uint32_t keysym,
                          LockState locks, std::vector<input::InputEvent>* out,
                          bool release_key) {
  const bool altgr = stroke.altgr || Holds(KEY_RIGHTALT);
  const bool add_shift = stroke.shift && !ShiftHeld();
  // A held Shift that would change what the key types (the viewer's own
  // keyboard already made the keysym what it wants): lifted around it.
  // Shift+Left and the like keep their Shift.
  std::vector<uint16_t> lift;
  if (!stroke.shift && ShiftHeld() &&
      keymap_->KeysymAt(stroke.code, true, altgr, locks) != keysym) {
    for (uint16_t shift : {KEY_LEFTSHIFT, KEY_RIGHTSHIFT}) {
      if (Holds(shift)) lift.push_back(shift);
    }
  }
  const bool add_altgr = stroke.altgr && !Holds(KEY_RIGHTALT);
  for (uint16_t shift : lift) out->push_back({EV_KEY, shift, 0});
  if (add_shift) out->push_back({EV_KEY, KEY_LEFTSHIFT, 1});
  if (add_altgr) out->push_back({EV_KEY, KEY_RIGHTALT, 1});
  out->push_back({EV_KEY, stroke.code, 1});
  if (release_key) out->push_back({EV_KEY, stroke.code, 0});
  if (add_altgr) out->push_back({EV_KEY, KEY_RIGHTALT, 0});
  if (add_shift) out->push_back({EV_KEY, KEY_LEFTSHIFT, 0});
  for (uint16_t shift : lift) out->push_back({EV_KEY, shift, 1});
}

absl::StatusOr<std::vector<input::InputEvent>> KeyTranslator::Translate(
    uint32_t code, uint32_t keysym, bool down, LockState locks) {
  if ((code == 0) == (keysym == 0)) {
    return absl::InvalidArgumentError(
        "a key event needs a code or a keysym (one of them)");
  }
  std::vector<input::InputEvent> out;
  if (code != 0) {
    if (code > 0xffff || !keyboard_->Has(EV_KEY, static_cast<uint16_t>(code))) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown key code ", code,
                       " (evdev KEY_*, 1..248, as in "
                       "linux/input-event-codes.h)"));
    }
    const auto key = static_cast<uint16_t>(code);
    Track(key, down);
    out.push_back({EV_KEY, key, down ? 1 : 0});
    return out;
  }
  if (!down) {
    // The key its down pressed (the layout may have changed since).
    auto it = keysyms_down_.find(keysym);
    if (it != keysyms_down_.end()) {
      Track(it->second, false);
      out.push_back({EV_KEY, it->second, 0});
      keysyms_down_.erase(it);
      return out;
    }
  }
  // With Ctrl, Alt or Meta held the key is a shortcut: Shift added for the
  // guest's CapsLock would make it another (Ctrl+w into Ctrl+Shift+w).
  for (uint16_t mod : {KEY_LEFTCTRL, KEY_RIGHTCTRL, KEY_LEFTALT, KEY_LEFTMETA,
                       KEY_RIGHTMETA}) {
    if (Holds(mod)) locks.caps_lock = false;
  }
  absl::StatusOr<KeyStroke> stroke = StrokeFor(keysym, locks);
  if (!stroke.ok()) return stroke.status();
  if (!down) {
    Track(stroke->code, false);
    out.push_back({EV_KEY, stroke->code, 0});
    return out;
  }
  keysyms_down_[keysym] = stroke->code;
  Press(*stroke, keysym, locks, &out, /*release_key=*/false);
  Track(stroke->code, true);
  return out;
}

absl::StatusOr<std::vector<input::InputEvent>> KeyTranslator::Type(
    char32_t character, LockState locks) {
  std::optional<KeyStroke> stroke = keymap_->ForCharacter(character, locks);
  if (!stroke) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", Utf8(character), "' (U+",
        absl::AsciiStrToUpper(absl::StrCat(
            absl::Hex(static_cast<uint32_t>(character), absl::kZeroPad4))),
        ") is on no key of keyboard layout '", keymap_->name(),
        "' (give the layout the guest uses: vgpu-input --layout)"));
  }
  std::vector<input::InputEvent> out;
  // Text is typed by a translator that holds no keys, so no Shift is ever
  // lifted and the keysym is not needed.
  Press(*stroke, /*keysym=*/0, locks, &out, /*release_key=*/true);
  return out;
}

}  // namespace vgpu::server
