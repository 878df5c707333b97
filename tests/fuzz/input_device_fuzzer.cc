// Fuzzes a virtio-input device as a hostile guest and hostile viewers drive
// it. Input: u8 flags (bit 0 EVENT_IDX, bit 1 INDIRECT, bits 2-3 device
// kind), u16 n, n bytes written over guest RAM (the event queue's rings at
// 0x000/0x100/0x200, the status queue's at 0x400/0x500/0x600, buffers
// anywhere), then operations, one byte each plus their arguments:
// config writes and reads at any offset and length, packets from viewers
// (any type, code, value), kicks of either queue, guest writes to RAM
// (rings rewritten under the device), ReleaseAll, reset, queue stop/start.
// Every path must end in a reply, a refusal or a needs-reset state: never
// a crash, a hang, or more pending events than the bound.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include <linux/input-event-codes.h>

#include "device/input/input_device.h"
#include "device/vhost_user/event_loop.h"
#include "device/virtio/virtqueue.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

constexpr uint64_t kRamBytes = 64 * 1024;
constexpr uint16_t kQueueSize = 4;

// Runs ProcessQueue as the vhost-user back-end does on a kick.
class Kicker : public vgpu::vhost_user::QueueKicker {
 public:
  Kicker(vgpu::input::InputDevice* device,
         vgpu::virtio::SplitVirtqueue* const* rings)
      : device_(device), rings_(rings) {}
  void Kick(uint32_t index) override {
    if (index > 1 || device_->needs_reset()) return;
    auto notify = device_->ProcessQueue(index, *rings_[index]);
    if (!notify.ok() && !device_->needs_reset()) std::abort();
  }

 private:
  vgpu::input::InputDevice* device_;
  vgpu::virtio::SplitVirtqueue* const* rings_;
};

struct Reader {
  const uint8_t* data;
  size_t size;
  size_t at = 0;
  bool empty() const { return at >= size; }
  uint8_t U8() { return at < size ? data[at++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  uint32_t U32() { return uint32_t{U16()} | (uint32_t{U16()} << 16); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* env = new vgpu::fuzz::FuzzEnv(kRamBytes, /*split=*/false);
  static auto* loop = vgpu::vhost_user::EventLoop::Create()->release();
  uint8_t* ram = env->mapping->data();
  std::memset(ram, 0, kRamBytes);
  Reader in{data, size};
  const uint8_t flags = in.U8();
  const uint16_t ram_bytes = in.U16();
  for (uint16_t i = 0; i < ram_bytes && !in.empty(); ++i) ram[i] = in.U8();

  const auto kind = static_cast<vgpu::input::InputKind>((flags >> 2) % 3);
  vgpu::input::InputDeviceOptions options{.max_pending_events = 64,
                                          .max_packet_events = 16};
  vgpu::input::InputDevice device(vgpu::input::SpecFor(kind, "fuzz"), loop,
                                  options);
  device.SetGuestMemory(env->memory);
  std::unique_ptr<vgpu::virtio::SplitVirtqueue> owned[2];
  vgpu::virtio::SplitVirtqueue* rings[2];
  for (int q = 0; q < 2; ++q) {
    uint8_t* base = ram + q * 0x400;
    auto ring = vgpu::virtio::SplitVirtqueue::Create(
        kQueueSize, absl::MakeSpan(base, 0x100),
        absl::MakeSpan(base + 0x100, 0x100),
        absl::MakeSpan(base + 0x200, 0x100), flags & 1, flags & 2,
        vgpu::virtio::QueueLimits{.max_chain_descriptors = 16});
    if (!ring.ok()) std::abort();
    owned[q] = *std::move(ring);
    rings[q] = owned[q].get();
  }
  Kicker kicker(&device, rings);
  device.SetKicker(&kicker);
  device.QueueRunning(vgpu::input::kEventQueue, true);

  for (int ops = 0; ops < 256 && !in.empty(); ++ops) {
    switch (in.U8() % 9) {
      case 0: {  // config write
        const uint32_t offset = in.U8();
        std::vector<uint8_t> bytes(in.U8() % 160);
        for (uint8_t& b : bytes) b = in.U8();
        device.WriteConfig(offset, bytes);
        break;
      }
      case 1: {  // config read
        std::vector<uint8_t> out(in.U16() % 300);
        device.ReadConfig(in.U16(), absl::MakeSpan(out));
        break;
      }
      case 2: {  // a viewer's packet
        std::vector<vgpu::input::InputEvent> packet(in.U8() % 20);
        for (auto& e : packet) {
          e.type = in.U8() % 6;  // EV_SYN..EV_MSC and a few beyond
          e.code = in.U16() % 0x320;
          e.value = static_cast<int32_t>(in.U32());
        }
        (void)device.Send(packet);
        break;
      }
      case 3:
        kicker.Kick(vgpu::input::kEventQueue);
        break;
      case 4:
        kicker.Kick(vgpu::input::kStatusQueue);
        break;
      case 5: {  // the guest writes its RAM (rings included)
        const uint16_t at = in.U16() % kRamBytes;
        const uint8_t n = in.U8();
        for (uint8_t i = 0; i < n && at + i < kRamBytes; ++i)
          ram[at + i] = in.U8();
        break;
      }
      case 6:
        device.ReleaseAll();
        break;
      case 7:
        device.Reset();
        if (device.needs_reset()) std::abort();
        break;
      default:
        device.QueueRunning(vgpu::input::kEventQueue, in.U8() & 1);
        break;
    }
    loop->RunOnce(0);  // posted deliveries
    const vgpu::input::InputDeviceStats stats = device.stats();
    if (stats.events_delivered >
        stats.packets * (options.max_packet_events + 1) + 1024)
      std::abort();
  }
  device.SetKicker(nullptr);
  loop->RunOnce(0);
  return 0;
}
