// Key names as people write them in scripts ("ctrl+alt+delete", "enter",
// "f2", "a") to Linux evdev key codes, for vgpu-input --key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vgpu::clients {

// One key: a name (case-insensitive: a..z, 0..9, f1..f24, enter, esc, tab,
// space, backspace, delete, insert, home, end, pageup, pagedown, up, down,
// left, right, ctrl, shift, alt, altgr, super, capslock, ..., see
// key_names.cc) or an evdev code as a number ("30"). InvalidArgument
// otherwise.
absl::StatusOr<uint16_t> KeyCode(absl::string_view name);
// "ctrl+alt+delete": the keys pressed together, in order.
absl::StatusOr<std::vector<uint16_t>> KeyCombo(absl::string_view combo);

}  // namespace vgpu::clients
