// Fuzzes virtqueue processing: the input is written over guest RAM that
// holds a 16-entry queue (descriptor table at 0, avail ring at 0x100, used
// ring at 0x200) and data from 0x1000, then the device drains the queue as
// after a kick. Descriptor loops, wild indices and indirect tables must end
// in a reply or a needs-reset state, never a crash or a hang.
#include <cstdint>
#include <cstring>
#include <memory>

#include "common/log.h"
#include "device/gpu/gpu_device.h"
#include "device/virtio/guest_memory.h"
#include "device/virtio/virtqueue.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

constexpr uint64_t kRamBytes = 64 * 1024;
constexpr uint16_t kQueueSize = 16;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* env = new vgpu::fuzz::FuzzEnv(kRamBytes, /*split=*/false);
  uint8_t* ram = env->mapping->data();
  std::memset(ram, 0, kRamBytes);
  if (size < 2) return 0;
  const bool event_idx = data[0] & 1, indirect = data[0] & 2,
             cursor = data[0] & 4;
  std::memcpy(ram, data + 1, std::min<size_t>(size - 1, kRamBytes));
  vgpu::gpu::GpuDeviceOptions options;
  options.max_host_memory = 4 << 20;
  options.max_resources = 16;
  auto device = vgpu::gpu::GpuDevice::Create(options, &env->sink);
  if (!device.ok()) std::abort();
  (*device)->SetGuestMemory(env->memory);
  (*device)->SetDriverFeatures(~0ull);
  auto queue = vgpu::virtio::SplitVirtqueue::Create(
      kQueueSize, absl::MakeSpan(ram, 0x100),
      absl::MakeSpan(ram + 0x100, 0x100), absl::MakeSpan(ram + 0x200, 0x100),
      event_idx, indirect,
      vgpu::virtio::QueueLimits{.max_chain_descriptors = 64});
  if (!queue.ok()) std::abort();
  // Several "kicks": the device must stop at a corrupt queue and stay stopped.
  for (int kick = 0; kick < 3; ++kick) {
    auto notify = (*device)->ProcessQueue(
        cursor ? vgpu::gpu::kCursorQueue : vgpu::gpu::kControlQueue, **queue);
    if (!notify.ok() && !(*device)->needs_reset()) std::abort();
  }
  return 0;
}
