#include "server/input/key_translator.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include <linux/input-event-codes.h>

namespace vgpu::server {
namespace {

// `c` in UTF-8, for messages; control characters and surrogates as '?'.
std::string Utf8(char32_t c) {
  std::string out;
  if (c < 0x20 || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) return "?";
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  }
  return out;
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

void KeyTranslator::Press(const KeyStroke& stroke,
                          std::vector<input::InputEvent>* out,
                          bool release_key) {
  const bool add_shift = stroke.shift && !shift_held_;
  const bool add_altgr = stroke.altgr && !altgr_held_;
  if (add_shift) out->push_back({EV_KEY, KEY_LEFTSHIFT, 1});
  if (add_altgr) out->push_back({EV_KEY, KEY_RIGHTALT, 1});
  out->push_back({EV_KEY, stroke.code, 1});
  if (release_key) out->push_back({EV_KEY, stroke.code, 0});
  if (add_altgr) out->push_back({EV_KEY, KEY_RIGHTALT, 0});
  if (add_shift) out->push_back({EV_KEY, KEY_LEFTSHIFT, 0});
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
    if (key == KEY_LEFTSHIFT || key == KEY_RIGHTSHIFT) shift_held_ = down;
    if (key == KEY_RIGHTALT) altgr_held_ = down;
    out.push_back({EV_KEY, key, down ? 1 : 0});
    return out;
  }
  // The viewer's own modifiers, sent as keysyms (VNC clients do).
  if (keysym == 0xffe1 || keysym == 0xffe2) shift_held_ = down;  // Shift_L/R
  if (keysym == 0xfe03) altgr_held_ = down;  // ISO_Level3_Shift (AltGr)
  if (!down) {
    // The key its down pressed (the layout may have changed since).
    auto it = keysyms_down_.find(keysym);
    if (it != keysyms_down_.end()) {
      out.push_back({EV_KEY, it->second, 0});
      keysyms_down_.erase(it);
      return out;
    }
  }
  absl::StatusOr<KeyStroke> stroke = StrokeFor(keysym, locks);
  if (!stroke.ok()) return stroke.status();
  if (!down) {
    out.push_back({EV_KEY, stroke->code, 0});
    return out;
  }
  keysyms_down_[keysym] = stroke->code;
  Press(*stroke, &out, /*release_key=*/false);
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
  Press(*stroke, &out, /*release_key=*/true);
  return out;
}

}  // namespace vgpu::server
