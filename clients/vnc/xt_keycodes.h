// XT (scan code set 1) key numbers as the QEMU Extended Key Event carries
// them (RFB message 255/0: a one-byte code as is, an E0-prefixed one as
// 0x80 | code; noVNC, TigerVNC and gtk-vnc send these) to Linux evdev key
// codes. Codes 0x01..0x53 and 0x56..0x58 are the evdev codes themselves;
// the rest come from the table in xt_keycodes.cc (after keycodemapdb's
// "XT" and "Linux" columns, as QEMU maps them).
#pragma once

#include <cstdint>
#include <optional>

namespace vgpu::vnc {

// nullopt for a number no key of a PC keyboard sends.
std::optional<uint16_t> XtToEvdev(uint32_t xt);

}  // namespace vgpu::vnc
