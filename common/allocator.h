// Process-wide allocator settings for the daemon and its streaming clients.
#pragma once

#include <malloc.h>

namespace vgpu {

// Keeps large buffers in the heap instead of fresh mappings. Updates and
// gRPC's message buffers are megabytes each, made and freed every frame;
// glibc maps each one anew by default, and the page faults and page zeroing
// that follow were half of a raw 1080p update's latency. Freed memory stays
// with the process (up to the trim threshold) for the next frame.
inline void KeepLargeBuffersInHeap() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest accepted value
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace vgpu
