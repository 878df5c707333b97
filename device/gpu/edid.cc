#include "device/gpu/edid.h"

#include <algorithm>
#include <cstring>

namespace vgpu::gpu {
namespace {

// Reduced-blanking style timings: short fixed horizontal blanking and enough
// vertical blanking for ~460 us, as CVT-RB does for flat panels.
constexpr uint32_t kHFront = 48, kHSync = 32, kHBack = 80;
constexpr uint32_t kVFront = 3, kVSync = 6;

void WriteDescriptorText(uint8_t* d, uint8_t tag, const char* text) {
  std::memset(d, 0, 18);
  d[3] = tag;
  size_t n = std::min<size_t>(std::strlen(text), 13);
  // EDID text ends with 0x0A (written below), not NUL.
  std::memcpy(d + 5, text, n);  // NOLINT(bugprone-not-null-terminated-result)
  if (n < 13) {
    d[5 + n] = 0x0A;
    for (size_t i = n + 1; i < 13; ++i) d[5 + i] = 0x20;
  }
}

}  // namespace

std::array<uint8_t, 128> MakeEdid(uint32_t width, uint32_t height,
                                  uint32_t serial) {
  width = std::clamp<uint32_t>(width, 1, kEdidMaxDimension);
  height = std::clamp<uint32_t>(height, 1, kEdidMaxDimension);
  std::array<uint8_t, 128> e{};
  const uint8_t header[8] = {0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00};
  std::memcpy(e.data(), header, 8);
  // Manufacturer "VGD": three 5-bit letters, big-endian.
  uint16_t maker = static_cast<uint16_t>((('V' - '@') << 10) |
                                         (('G' - '@') << 5) | ('D' - '@'));
  e[8] = static_cast<uint8_t>(maker >> 8);
  e[9] = static_cast<uint8_t>(maker);
  e[10] = 0x01;  // product code
  e[11] = 0x00;
  std::memcpy(&e[12], &serial, 4);
  e[16] = 1;   // week
  e[17] = 35;  // 1990 + 35 = 2025
  e[18] = 1;   // EDID 1.4
  e[19] = 4;
  e[20] = 0xA5;  // digital, 8 bits per colour, DisplayPort
  // Physical size in cm for a ~96 dpi panel.
  e[21] =
      static_cast<uint8_t>(std::clamp<uint32_t>(width * 254 / 9600, 1, 255));
  e[22] =
      static_cast<uint8_t>(std::clamp<uint32_t>(height * 254 / 9600, 1, 255));
  e[23] = 120;   // gamma 2.2
  e[24] = 0x06;  // RGB 4:4:4, sRGB default, preferred timing is native
  // sRGB chromaticity.
  const uint8_t chroma[10] = {0xEE, 0x91, 0xA3, 0x54, 0x4C,
                              0x99, 0x26, 0x0F, 0x50, 0x54};
  std::memcpy(&e[25], chroma, 10);
  // No established timings; standard timings unused (0x0101).
  for (size_t i = 38; i < 54; ++i) e[i] = 0x01;

  // Detailed timing descriptor 1: the preferred mode.
  uint32_t h_blank = kHFront + kHSync + kHBack;
  uint32_t v_blank =
      std::max<uint32_t>(kVFront + kVSync + 6, (height * 28 + 999) / 1000 + 8);
  uint64_t total = uint64_t{width + h_blank} * (height + v_blank);
  uint32_t refresh = 60;
  // The clock field is 16 bits of 10 kHz: lower the refresh for huge modes.
  while (refresh > 1 && total * refresh / 10000 > 0xFFFF) --refresh;
  uint32_t clock =
      static_cast<uint32_t>(std::max<uint64_t>(1, total * refresh / 10000));
  uint8_t* d = &e[54];
  d[0] = static_cast<uint8_t>(clock);
  d[1] = static_cast<uint8_t>(clock >> 8);
  d[2] = static_cast<uint8_t>(width);
  d[3] = static_cast<uint8_t>(h_blank);
  d[4] = static_cast<uint8_t>(((width >> 8) << 4) | (h_blank >> 8));
  d[5] = static_cast<uint8_t>(height);
  d[6] = static_cast<uint8_t>(v_blank);
  d[7] = static_cast<uint8_t>(((height >> 8) << 4) | (v_blank >> 8));
  d[8] = static_cast<uint8_t>(kHFront);
  d[9] = static_cast<uint8_t>(kHSync);
  d[10] = static_cast<uint8_t>((kVFront << 4) | kVSync);
  d[11] = static_cast<uint8_t>(((kHFront >> 8) << 6) | ((kHSync >> 8) << 4));
  uint32_t width_mm = e[21] * 10u, height_mm = e[22] * 10u;
  d[12] = static_cast<uint8_t>(width_mm);
  d[13] = static_cast<uint8_t>(height_mm);
  d[14] = static_cast<uint8_t>(((width_mm >> 8) << 4) | (height_mm >> 8));
  d[17] = 0x1E;  // digital separate sync, +hsync +vsync

  // Descriptor 2: range limits (1..255 Hz, 1..255 kHz, max clock 2550 MHz).
  uint8_t* range = &e[72];
  range[3] = 0xFD;
  range[5] = 1;
  range[6] = 255;
  range[7] = 1;
  range[8] = 255;
  range[9] = 255;
  range[10] = 0x00;  // default GTF; the rest is padding
  range[11] = 0x0A;
  for (size_t i = 12; i < 18; ++i) range[i] = 0x20;
  WriteDescriptorText(&e[90], 0xFC, "vgpu-display");
  WriteDescriptorText(&e[108], 0xFF, "virtual");
  e[126] = 0;  // no extensions
  uint8_t sum = 0;
  for (size_t i = 0; i < 127; ++i) sum = static_cast<uint8_t>(sum + e[i]);
  e[127] = static_cast<uint8_t>(0x100 - sum);
  return e;
}

EdidMode DecodePreferredMode(const std::array<uint8_t, 128>& edid) {
  auto byte = [&edid](size_t i) -> uint32_t { return edid[54 + i]; };
  EdidMode mode;
  uint32_t clock = byte(0) | (byte(1) << 8);
  mode.pixel_clock_khz = clock * 10;
  mode.width = byte(2) | ((byte(4) >> 4) << 8);
  uint32_t h_blank = byte(3) | ((byte(4) & 0xF) << 8);
  mode.height = byte(5) | ((byte(7) >> 4) << 8);
  uint32_t v_blank = byte(6) | ((byte(7) & 0xF) << 8);
  uint64_t total = uint64_t{mode.width + h_blank} * (mode.height + v_blank);
  if (total > 0)
    mode.refresh_hz =
        static_cast<uint32_t>((uint64_t{clock} * 10000 + total / 2) / total);
  return mode;
}

}  // namespace vgpu::gpu
