// One evdev event (<linux/input-event-codes.h>: EV_KEY, KEY_A, ...), as
// viewers send it and virtio-input carries it.
#pragma once

#include <cstdint>

namespace vgpu::input {

// Host order (virtio_input_event on the wire is little endian).
struct InputEvent {
  uint16_t type = 0;
  uint16_t code = 0;
  int32_t value = 0;
  bool operator==(const InputEvent& other) const {
    return type == other.type && code == other.code && value == other.value;
  }
};

}  // namespace vgpu::input
