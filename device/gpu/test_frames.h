// Frames made from plain pixel arrays, for tests and benchmarks.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "device/gpu/frame.h"

namespace vgpu::gpu {

// A frame of `pixels` (B,G,R,X as 0xXXRRGGBB, rows `width` apart).
inline FramePtr FrameOfPixels(const std::vector<uint32_t>& pixels,
                              uint32_t width, uint32_t height,
                              uint64_t sequence) {
  TileGrid grid(width, height);
  GridStats stats;
  grid.WritePixels({0, 0, width, height},
                   reinterpret_cast<const uint8_t*>(pixels.data()),
                   size_t{width} * 4, &stats);
  return std::make_shared<Frame>(width, height, 0, 0, grid.Snapshot(),
                                 grid.columns(), sequence);
}

}  // namespace vgpu::gpu
