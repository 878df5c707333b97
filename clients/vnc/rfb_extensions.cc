#include "clients/vnc/rfb_extensions.h"

#include "absl/strings/str_cat.h"

namespace vgpu::vnc {
namespace {

// FramebufferUpdate (type 0, padding, one rect) with an empty rect of
// `encoding` at 0,0.
std::string PseudoRect(int32_t encoding) {
  std::string out = {0, 0, 0, 1};
  out.append(8, '\0');  // x, y, width, height
  AppendBigEndian32(&out, static_cast<uint32_t>(encoding));
  return out;
}

}  // namespace

absl::StatusOr<QemuKeyEvent> ParseQemuKeyEvent(const uint8_t* bytes) {
  if (bytes[0] != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("QEMU client message sub-type ", bytes[0],
                     " (only 0, the extended key event, is served)"));
  }
  const uint16_t down = static_cast<uint16_t>(bytes[1] << 8 | bytes[2]);
  if (down > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("QEMU key event down-flag ", down));
  }
  return QemuKeyEvent{.down = down == 1,
                      .keysym = ReadBigEndian32(bytes + 3),
                      .keycode = ReadBigEndian32(bytes + 7)};
}

std::string QemuExtendedKeyAck() {
  return PseudoRect(kQemuExtendedKeyEncoding);
}

std::string QemuLedStateUpdate(uint8_t leds) {
  std::string out = PseudoRect(kQemuLedStateEncoding);
  out.push_back(static_cast<char>(leds & 0x07));
  return out;
}

int CheckSetDesktopSize(uint32_t width, uint32_t height, uint32_t screens,
                        bool view_only) {
  constexpr int kProhibited = 1, kInvalidLayout = 3;
  if (view_only) return kProhibited;
  if (screens != 1 || width < kMinDesktopSide || height < kMinDesktopSide ||
      width > kMaxDesktopSide || height > kMaxDesktopSide) {
    return kInvalidLayout;
  }
  return 0;
}

}  // namespace vgpu::vnc
