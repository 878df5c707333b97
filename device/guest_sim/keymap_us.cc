#include "device/guest_sim/keymap_us.h"

#include <linux/input-event-codes.h>

namespace vgpu::guest_sim {
namespace {

// Keys KEY_1 (2) to KEY_SPACE (57), in code order; ' ' where a key types
// nothing (Backspace, Tab, Enter, Ctrl, Shift, ...), except at KEY_SPACE.
constexpr char kPlain[] =
    "1234567890-=  qwertyuiop[]  asdfghjkl;'` \\zxcvbnm,./ *  ";
constexpr char kShifted[] =
    "!@#$%^&*()_+  QWERTYUIOP{}  ASDFGHJKL:\"~ |ZXCVBNM<>? *  ";
static_assert(sizeof(kPlain) == KEY_SPACE - KEY_1 + 2);
static_assert(sizeof(kShifted) == sizeof(kPlain));

}  // namespace

char UsKeyToChar(uint16_t code, bool shift) {
  if (code == KEY_SPACE) return ' ';
  if (code == KEY_102ND) return shift ? '>' : '<';
  if (code < KEY_1 || code > KEY_SPACE) return 0;
  const char c = (shift ? kShifted : kPlain)[code - KEY_1];
  return c == ' ' ? '\0' : c;
}

}  // namespace vgpu::guest_sim
