// Fuzzes command decode + execute. The input is a sequence of records
//   u8 queue (even: control, odd: cursor), u16 length, `length` bytes
// each handed to the device as one chain's readable bytes (split in two
// descriptors at a fuzzer-chosen point). Guest RAM is small and filled with
// a pattern so backing entries and transfers reach real memory; budgets are
// tiny so limits are hit.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/log.h"
#include "device/gpu/gpu_device.h"
#include "device/virtio/guest_memory.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

using vgpu::gpu::GpuDevice;

constexpr uint64_t kRamBytes = 256 * 1024;

// Guest RAM is filled with a pattern once: the device only reads it here.
vgpu::fuzz::FuzzEnv* MakeEnv() {
  auto* env = new vgpu::fuzz::FuzzEnv(kRamBytes, /*split=*/true);
  for (uint64_t i = 0; i < kRamBytes; ++i) {
    env->mapping->data()[i] = static_cast<uint8_t>(i * 31);
  }
  return env;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vgpu::fuzz::FuzzEnv* env = MakeEnv();
  vgpu::gpu::GpuDeviceOptions options;
  options.displays = {{640, 480, true}, {320, 240, true}};
  options.max_host_memory = 8 << 20;
  options.max_resources = 32;
  options.max_backing_entries = 64;
  options.policy = size > 0 && (data[0] & 0x80)
                       ? vgpu::gpu::ResourcePolicy::kShared
                       : vgpu::gpu::ResourcePolicy::kCopy;
  auto device = GpuDevice::Create(options, &env->sink);
  if (!device.ok()) std::abort();
  (*device)->SetGuestMemory(env->memory);
  (*device)->SetDriverFeatures(~0ull);
  std::vector<uint8_t> response(2048);
  size_t at = 0;
  while (at + 3 <= size) {
    uint8_t queue = data[at];
    uint16_t length = static_cast<uint16_t>(data[at + 1] | (data[at + 2] << 8));
    at += 3;
    if (length > size - at) length = static_cast<uint16_t>(size - at);
    // Copy the record so descriptors point at writable, exactly sized memory.
    std::vector<uint8_t> record(data + at, data + at + length);
    at += length;
    size_t split = length == 0 ? 0 : (queue >> 1) % (length + 1u);
    absl::Span<uint8_t> parts[2] = {
        absl::MakeSpan(record.data(), split),
        absl::MakeSpan(record.data() + split, length - split)};
    absl::Span<uint8_t> out[1] = {absl::MakeSpan(response)};
    if (queue & 1) {
      (*device)->HandleCursor(parts);
    } else {
      uint32_t written = (*device)->HandleControl(parts, out);
      if (written > response.size()) std::abort();
    }
  }
  (*device)->Reset();
  if ((*device)->host_memory_used() != 0 || (*device)->resource_count() != 0)
    std::abort();
  return 0;
}
