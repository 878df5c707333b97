#include "device/input/input_config.h"

#include <linux/input.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include <linux/input-event-codes.h>

namespace vgpu::input {
namespace {

static_assert(sizeof(virtio_input_config) == 136);
static_assert(KEY_MAX / 8 < sizeof(Bitmap));

// Identities on BUS_VIRTUAL; the vendor is the one QEMU's virtio input
// devices report, so guest udev rules treat ours the same.
constexpr uint16_t kVendor = 0x0627;

// `bit` is an evdev code constant (an int), below 8 * 128.
void SetBit(Bitmap& bitmap, int bit) {
  const auto at = static_cast<size_t>(bit);
  bitmap[at / 8] = static_cast<uint8_t>(bitmap[at / 8] | (1u << (at % 8)));
}

bool TestBit(const Bitmap& bitmap, uint16_t bit) {
  return bit / 8 < bitmap.size() && (bitmap[bit / 8] >> (bit % 8)) & 1;
}

InputDeviceSpec Base(InputKind kind, uint16_t product, std::string serial) {
  InputDeviceSpec spec;
  spec.kind = kind;
  spec.name = std::string("vgpu-display ") + std::string(KindName(kind));
  spec.serial = std::move(serial);
  spec.ids = {.bustype = BUS_VIRTUAL,
              .vendor = kVendor,
              .product = product,
              .version = 1};
  return spec;
}

void AddButtons(InputDeviceSpec& spec) {
  for (int button : {BTN_LEFT, BTN_RIGHT, BTN_MIDDLE, BTN_SIDE, BTN_EXTRA}) {
    SetBit(spec.events[EV_KEY], button);
  }
  for (int wheel :
       {REL_WHEEL, REL_HWHEEL, REL_WHEEL_HI_RES, REL_HWHEEL_HI_RES}) {
    SetBit(spec.events[EV_REL], wheel);
  }
}

}  // namespace

absl::string_view KindName(InputKind kind) {
  switch (kind) {
    case InputKind::kKeyboard:
      return "keyboard";
    case InputKind::kTablet:
      return "tablet";
    case InputKind::kMouse:
      return "mouse";
  }
  return "?";
}

bool InputDeviceSpec::Has(uint16_t type, uint16_t code) const {
  if (type == EV_SYN) return true;
  if (type > 0xff) return false;
  auto it = events.find(static_cast<uint8_t>(type));
  return it != events.end() && code < 8 * it->second.size() &&
         TestBit(it->second, code);
}

InputDeviceSpec KeyboardSpec(std::string serial) {
  InputDeviceSpec spec = Base(InputKind::kKeyboard, 1, std::move(serial));
  for (int key = KEY_ESC; key <= KEY_MICMUTE; ++key) {
    SetBit(spec.events[EV_KEY], key);
  }
  for (int led : {LED_NUML, LED_CAPSL, LED_SCROLLL, LED_COMPOSE, LED_KANA}) {
    SetBit(spec.events[EV_LED], led);
  }
  // Any non-empty EV_REP entry makes Linux repeat held keys in the guest.
  SetBit(spec.events[EV_REP], REP_DELAY);
  SetBit(spec.events[EV_REP], REP_PERIOD);
  return spec;
}

InputDeviceSpec TabletSpec(std::string serial) {
  InputDeviceSpec spec = Base(InputKind::kTablet, 3, std::move(serial));
  AddButtons(spec);
  for (int axis : {ABS_X, ABS_Y}) {
    SetBit(spec.events[EV_ABS], axis);
    spec.axes[static_cast<uint8_t>(axis)] = {
        .min = 0, .max = kTabletAxisMax, .fuzz = 0, .flat = 0, .res = 0};
  }
  return spec;
}

InputDeviceSpec MouseSpec(std::string serial) {
  InputDeviceSpec spec = Base(InputKind::kMouse, 2, std::move(serial));
  AddButtons(spec);
  SetBit(spec.events[EV_REL], REL_X);
  SetBit(spec.events[EV_REL], REL_Y);
  return spec;
}

InputDeviceSpec SpecFor(InputKind kind, std::string serial) {
  switch (kind) {
    case InputKind::kKeyboard:
      return KeyboardSpec(std::move(serial));
    case InputKind::kTablet:
      return TabletSpec(std::move(serial));
    case InputKind::kMouse:
      return MouseSpec(std::move(serial));
  }
  return KeyboardSpec(std::move(serial));
}

InputConfigSpace::InputConfigSpace(const InputDeviceSpec* spec) : spec_(spec) {}

void InputConfigSpace::Reset() { current_ = {}; }

void InputConfigSpace::Read(uint32_t offset, absl::Span<uint8_t> out) const {
  std::fill(out.begin(), out.end(), 0);
  if (out.empty() || offset >= sizeof(current_)) return;
  const size_t n = std::min<size_t>(out.size(), sizeof(current_) - offset);
  std::memcpy(out.data(), reinterpret_cast<const uint8_t*>(&current_) + offset,
              n);
}

void InputConfigSpace::Write(uint32_t offset, absl::Span<const uint8_t> in) {
  uint8_t select = current_.select;
  uint8_t subsel = current_.subsel;
  for (size_t i = 0; i < in.size(); ++i) {
    const uint64_t at = uint64_t{offset} + i;
    if (at == offsetof(virtio_input_config, select)) select = in[i];
    if (at == offsetof(virtio_input_config, subsel)) subsel = in[i];
  }
  Select(select, subsel);
}

void InputConfigSpace::Select(uint8_t select, uint8_t subsel) {
  current_ = {};
  current_.select = select;
  current_.subsel = subsel;
  auto put_bytes = [this](const void* data, size_t size) {
    size = std::min(size, sizeof(current_.u));
    std::memcpy(&current_.u, data, size);
    current_.size = static_cast<uint8_t>(size);
  };
  // A bitmap's size is up to its last non-zero byte.
  auto put_bitmap = [&put_bytes](const Bitmap& bitmap) {
    size_t size = bitmap.size();
    while (size > 0 && bitmap[size - 1] == 0) --size;
    put_bytes(bitmap.data(), size);
  };
  switch (select) {
    case VIRTIO_INPUT_CFG_ID_NAME:
      if (subsel == 0) put_bytes(spec_->name.data(), spec_->name.size());
      break;
    case VIRTIO_INPUT_CFG_ID_SERIAL:
      if (subsel == 0) put_bytes(spec_->serial.data(), spec_->serial.size());
      break;
    case VIRTIO_INPUT_CFG_ID_DEVIDS:
      if (subsel == 0) put_bytes(&spec_->ids, sizeof(spec_->ids));
      break;
    case VIRTIO_INPUT_CFG_PROP_BITS:
      if (subsel == 0) put_bitmap(spec_->properties);
      break;
    case VIRTIO_INPUT_CFG_EV_BITS: {
      auto it = spec_->events.find(subsel);
      if (it != spec_->events.end()) put_bitmap(it->second);
      break;
    }
    case VIRTIO_INPUT_CFG_ABS_INFO: {
      auto it = spec_->axes.find(subsel);
      if (it != spec_->axes.end()) put_bytes(&it->second, sizeof(it->second));
      break;
    }
    default:
      break;  // VIRTIO_INPUT_CFG_UNSET and unknown selects: size 0
  }
}

}  // namespace vgpu::input
