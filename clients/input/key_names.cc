#include "clients/input/key_names.h"

#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include <linux/input-event-codes.h>

namespace vgpu::clients {
namespace {

const std::map<std::string, uint16_t>& Names() {
  static const auto* names = new std::map<std::string, uint16_t>{
      {"esc", KEY_ESC},
      {"escape", KEY_ESC},
      {"minus", KEY_MINUS},
      {"equal", KEY_EQUAL},
      {"backspace", KEY_BACKSPACE},
      {"tab", KEY_TAB},
      {"leftbrace", KEY_LEFTBRACE},
      {"rightbrace", KEY_RIGHTBRACE},
      {"enter", KEY_ENTER},
      {"return", KEY_ENTER},
      {"ctrl", KEY_LEFTCTRL},
      {"control", KEY_LEFTCTRL},
      {"leftctrl", KEY_LEFTCTRL},
      {"rightctrl", KEY_RIGHTCTRL},
      {"semicolon", KEY_SEMICOLON},
      {"apostrophe", KEY_APOSTROPHE},
      {"grave", KEY_GRAVE},
      {"shift", KEY_LEFTSHIFT},
      {"leftshift", KEY_LEFTSHIFT},
      {"rightshift", KEY_RIGHTSHIFT},
      {"backslash", KEY_BACKSLASH},
      {"comma", KEY_COMMA},
      {"dot", KEY_DOT},
      {"period", KEY_DOT},
      {"slash", KEY_SLASH},
      {"kpasterisk", KEY_KPASTERISK},
      {"alt", KEY_LEFTALT},
      {"leftalt", KEY_LEFTALT},
      {"rightalt", KEY_RIGHTALT},
      {"altgr", KEY_RIGHTALT},
      {"space", KEY_SPACE},
      {"capslock", KEY_CAPSLOCK},
      {"numlock", KEY_NUMLOCK},
      {"scrolllock", KEY_SCROLLLOCK},
      {"kpenter", KEY_KPENTER},
      {"sysrq", KEY_SYSRQ},
      {"printscreen", KEY_SYSRQ},
      {"print", KEY_SYSRQ},
      {"home", KEY_HOME},
      {"up", KEY_UP},
      {"pageup", KEY_PAGEUP},
      {"pgup", KEY_PAGEUP},
      {"left", KEY_LEFT},
      {"right", KEY_RIGHT},
      {"end", KEY_END},
      {"down", KEY_DOWN},
      {"pagedown", KEY_PAGEDOWN},
      {"pgdn", KEY_PAGEDOWN},
      {"insert", KEY_INSERT},
      {"delete", KEY_DELETE},
      {"del", KEY_DELETE},
      {"mute", KEY_MUTE},
      {"volumedown", KEY_VOLUMEDOWN},
      {"volumeup", KEY_VOLUMEUP},
      {"power", KEY_POWER},
      {"pause", KEY_PAUSE},
      {"super", KEY_LEFTMETA},
      {"meta", KEY_LEFTMETA},
      {"win", KEY_LEFTMETA},
      {"leftmeta", KEY_LEFTMETA},
      {"rightmeta", KEY_RIGHTMETA},
      {"menu", KEY_COMPOSE},
      {"compose", KEY_COMPOSE},
      {"102nd", KEY_102ND},
      {"playpause", KEY_PLAYPAUSE},
      {"nextsong", KEY_NEXTSONG},
      {"previoussong", KEY_PREVIOUSSONG},
  };
  return *names;
}

}  // namespace

absl::StatusOr<uint16_t> KeyCode(absl::string_view name) {
  const std::string key =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
  if (key.size() == 1) {
    // Letters and digits by their place on a US keyboard's rows.
    static constexpr char kRows[] = "qwertyuiopasdfghjklzxcvbnm";
    static constexpr uint16_t kRowCodes[] = {
        KEY_Q, KEY_W, KEY_E, KEY_R, KEY_T, KEY_Y, KEY_U, KEY_I, KEY_O,
        KEY_P, KEY_A, KEY_S, KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K,
        KEY_L, KEY_Z, KEY_X, KEY_C, KEY_V, KEY_B, KEY_N, KEY_M};
    for (size_t i = 0; i + 1 < sizeof(kRows); ++i) {
      if (kRows[i] == key[0]) return kRowCodes[i];
    }
    if (key[0] == '0') return KEY_0;
    if (key[0] >= '1' && key[0] <= '9')
      return static_cast<uint16_t>(KEY_1 + (key[0] - '1'));
  }
  if (key.size() >= 2 && key[0] == 'f') {
    uint32_t n = 0;
    if (absl::SimpleAtoi(key.substr(1), &n) && n >= 1 && n <= 24) {
      if (n <= 10) return static_cast<uint16_t>(KEY_F1 + (n - 1));
      if (n <= 12) return static_cast<uint16_t>(KEY_F11 + (n - 11));
      return static_cast<uint16_t>(KEY_F13 + (n - 13));
    }
  }
  auto it = Names().find(key);
  if (it != Names().end()) return it->second;
  uint32_t code = 0;
  if (key.size() > 1 && absl::SimpleAtoi(key, &code) && code >= 1 &&
      code <= KEY_MICMUTE) {
    return static_cast<uint16_t>(code);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown key '", name,
      "' (a..z, 0..9, f1..f24, enter, esc, tab, space, backspace, delete, "
      "home, end, pageup, pagedown, up, down, left, right, ctrl, shift, alt, "
      "altgr, super, capslock, ... or an evdev code such as 30)"));
}

absl::StatusOr<std::vector<uint16_t>> KeyCombo(absl::string_view combo) {
  std::vector<uint16_t> keys;
  for (absl::string_view part : absl::StrSplit(combo, '+')) {
    absl::StatusOr<uint16_t> code = KeyCode(part);
    if (!code.ok()) return code.status();
    keys.push_back(*code);
  }
  return keys;
}

}  // namespace vgpu::clients
