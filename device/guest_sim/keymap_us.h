// The demo guest's console keymap: evdev key codes to the characters a
// US keyboard types (what Linux's default VT keymap gives). The demo guest
// only needs printable ASCII; real guests apply their own layout.
#pragma once

#include <cstdint>

namespace vgpu::guest_sim {

// The ASCII character `code` types with Shift up or down, or 0 for keys
// that type nothing (modifiers, function keys, Enter, Backspace).
char UsKeyToChar(uint16_t code, bool shift);

}  // namespace vgpu::guest_sim
