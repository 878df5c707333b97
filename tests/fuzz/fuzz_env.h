// Shared set-up for the fuzz targets: quiet logs and memfd guest RAM, made
// once per process (inputs must run fast).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "common/log.h"
#include "device/gpu/display_sink.h"
#include "device/virtio/guest_memory.h"

namespace vgpu::fuzz {

// Only fatal lines: a fuzzer's inputs are errors by the million.
inline void QuietLogs() {
  static const bool quiet = [] {
    SetMinLogSeverity(LogSeverity::kFatal);
    return true;
  }();
  (void)quiet;
}

struct FuzzEnv {
  // `bytes` of RAM; with `split`, the second half sits at 4 GiB (QEMU's
  // high RAM layout, exercising mapping offsets and region crossings).
  FuzzEnv(uint64_t bytes, bool split) {
    QuietLogs();
    auto created = virtio::MemoryMapping::CreateMemfd(bytes, "fuzz-ram");
    if (!created.ok()) std::abort();
    mapping = *created;
    std::vector<virtio::GuestRegion> regions;
    if (split) {
      regions = {{.guest_phys_addr = 0, .size = bytes / 2, .mapping = mapping},
                 {.guest_phys_addr = 1ull << 32,
                  .size = bytes / 2,
                  .mapping = mapping,
                  .mapping_offset = bytes / 2}};
    } else {
      regions = {{.guest_phys_addr = 0, .size = bytes, .mapping = mapping}};
    }
    auto made = virtio::GuestMemory::Create(std::move(regions));
    if (!made.ok()) std::abort();
    memory = *made;
  }
  std::shared_ptr<virtio::MemoryMapping> mapping;
  std::shared_ptr<const virtio::GuestMemory> memory;
  gpu::NullDisplaySink sink;
};

}  // namespace vgpu::fuzz
