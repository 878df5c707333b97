// A 128-byte EDID 1.4 base block describing one virtual monitor whose
// preferred (first detailed) timing is the scanout's mode.
#pragma once

#include <array>
#include <cstdint>

namespace vgpu::gpu {

inline constexpr uint32_t kEdidMaxDimension =
    4095;  // 12-bit fields in a detailed timing

// `width` and `height` in pixels, each in [1, kEdidMaxDimension] (clamped).
// `serial` distinguishes scanouts.
std::array<uint8_t, 128> MakeEdid(uint32_t width, uint32_t height,
                                  uint32_t serial);

// Decodes the preferred mode of an EDID block (for tests and tools).
struct EdidMode {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t pixel_clock_khz = 0;
  uint32_t refresh_hz = 0;
};
EdidMode DecodePreferredMode(const std::array<uint8_t, 128>& edid);

}  // namespace vgpu::gpu
