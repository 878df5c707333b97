// The RFB messages the bridge handles itself, beside libvncserver's (which
// has no server side for them in 0.9.14): QEMU's client message with the
// Extended Key Event, the QEMU Extended Key Event and QEMU LED State
// pseudo-encodings, and the checks on a client's SetDesktopSize.
// Wire formats from the RFB community spec (rfbproto: "QEMU Client
// Message", "QEMU Extended Key Event Message", "QEMU LED State
// Pseudo-encoding", "SetDesktopSize").
//
// Thread rules: none (plain functions).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace vgpu::vnc {

// RFB's integers are big-endian.
inline uint32_t ReadBigEndian32(const uint8_t* bytes) {
  return uint32_t{bytes[0]} << 24 | uint32_t{bytes[1]} << 16 |
         uint32_t{bytes[2]} << 8 | bytes[3];
}
inline void AppendBigEndian32(std::string* out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>(value >> shift));
}

inline constexpr uint8_t kQemuClientMessage = 255;
inline constexpr int32_t kQemuExtendedKeyEncoding = -258;
inline constexpr int32_t kQemuLedStateEncoding = -261;
// After the message type byte: U8 sub-type, U16 down-flag, U32 keysym,
// U32 keycode, big-endian.
inline constexpr size_t kQemuKeyEventBytes = 11;

struct QemuKeyEvent {
  bool down = false;
  uint32_t keysym = 0;  // X keysym; 0 when the client knows only the key
  // XT scancode: one byte, or 0xE0-prefixed keys with the top bit of the
  // low byte set (rfbproto), e.g. 0x1E 'a', 0x9D right Ctrl.
  uint32_t keycode = 0;
};

// `bytes` holds kQemuKeyEventBytes bytes. InvalidArgument for a sub-type
// other than 0 (QEMU's audio sub-type has no meaning here) or a down-flag
// other than 0 and 1.
absl::StatusOr<QemuKeyEvent> ParseQemuKeyEvent(const uint8_t* bytes);

// A FramebufferUpdate of one pseudo-rect: the acknowledgement a client
// waits for before it sends QEMU key events (encoding -258, no payload),
// and the LED state (encoding -261, one byte: bit 0 Scroll Lock, 1 Num
// Lock, 2 Caps Lock).
std::string QemuExtendedKeyAck();
std::string QemuLedStateUpdate(uint8_t leds);

// The answer to a SetDesktopSize before asking the guest: 0 when the
// request may go on, else the ExtendedDesktopSize error code (1 resize
// prohibited, 3 invalid screen layout). One screen only (one RFB server per
// scanout), sizes 16..4095 as virtio-gpu's layout request takes them;
// view-only clients may not resize.
int CheckSetDesktopSize(uint32_t width, uint32_t height, uint32_t screens,
                        bool view_only);

inline constexpr uint32_t kMinDesktopSide = 16;
inline constexpr uint32_t kMaxDesktopSide = 4095;

}  // namespace vgpu::vnc
