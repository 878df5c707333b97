// Byte-order conversion between the 4-byte pixel layouts the display
// service offers (B,G,R,X and R,G,B,X).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vgpu {

// Swaps bytes 0 and 2 of each 4-byte pixel in place: BGRX <-> RGBX.
inline void SwapRedAndBlue(uint8_t* pixels, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    uint32_t p;
    std::memcpy(&p, pixels + i * 4, 4);
    p = (p & 0xFF00FF00u) | (p & 0xFFu) << 16 | (p >> 16 & 0xFFu);
    std::memcpy(pixels + i * 4, &p, 4);
  }
}

}  // namespace vgpu
