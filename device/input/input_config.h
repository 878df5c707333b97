// What a virtio-input device says about itself: its config space (virtio
// 1.2 §5.8.4, `struct virtio_input_config`, 136 bytes), answered as the
// Linux driver (drivers/virtio/virtio_input.c) and QEMU 10's
// vhost-user-input (whole-config GET_CONFIG/SET_CONFIG at offset 0) query
// it: the driver writes `select` and `subsel`, then reads `size` and the
// union. Unknown pairs read size 0, as the spec requires.
//
// Event codes are Linux evdev's (<linux/input-event-codes.h>).
#pragma once

#include <linux/virtio_input.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace vgpu::input {

enum class InputKind { kKeyboard, kTablet, kMouse };
absl::string_view KindName(InputKind kind);  // "keyboard", ...

// The tablet's absolute axes run 0..kTabletAxisMax (as QEMU's virtio
// tablet); viewers' scanout pixels are scaled to it.
inline constexpr int32_t kTabletAxisMax = 32767;
// REL_WHEEL_HI_RES units per wheel notch (Linux input-event-codes.h).
inline constexpr int32_t kHiResPerNotch = 120;

using Bitmap = std::array<uint8_t, 128>;  // bit k in byte k/8, as on the wire

// Immutable once a driver probed it (Linux never probes again).
struct InputDeviceSpec {
  InputKind kind = InputKind::kKeyboard;
  std::string name;    // ID_NAME (at most 128 bytes are sent)
  std::string serial;  // ID_SERIAL
  virtio_input_devids ids{};
  Bitmap properties{};               // PROP_BITS (INPUT_PROP_*)
  std::map<uint8_t, Bitmap> events;  // EV_BITS: EV_* type -> its codes
  std::map<uint8_t, virtio_input_absinfo> axes;  // ABS_INFO: ABS_* -> range

  // Whether the device advertises `code` of event `type` (EV_SYN always).
  bool Has(uint16_t type, uint16_t code) const;
};

// A 105-key keyboard with the usual media keys (every evdev key code from
// KEY_ESC to KEY_MICMUTE), its LEDs, and EV_REP so the guest repeats held
// keys itself.
InputDeviceSpec KeyboardSpec(std::string serial);
// An absolute pointer: ABS_X/ABS_Y over 0..kTabletAxisMax, five buttons,
// vertical and horizontal wheels (notches and hi-res).
InputDeviceSpec TabletSpec(std::string serial);
// A relative mouse: REL_X/REL_Y, five buttons, the wheels.
InputDeviceSpec MouseSpec(std::string serial);
InputDeviceSpec SpecFor(InputKind kind, std::string serial);

// The config space the driver sees. Thread-compatible (the device
// thread's).
class InputConfigSpace {
 public:
  // `spec` outlives this.
  explicit InputConfigSpace(const InputDeviceSpec* spec);

  // Bytes at `offset` of the current entry; past 136 bytes reads zeros.
  void Read(uint32_t offset, absl::Span<uint8_t> out) const;
  // The driver may write only `select` (byte 0) and `subsel` (byte 1); other
  // bytes are ignored. QEMU writes the whole 136 bytes each time.
  void Write(uint32_t offset, absl::Span<const uint8_t> in);
  void Reset();

 private:
  void Select(uint8_t select, uint8_t subsel);

  const InputDeviceSpec* spec_;
  virtio_input_config current_{};
};

}  // namespace vgpu::input
