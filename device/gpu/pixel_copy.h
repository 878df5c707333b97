// Copies pixels from guest memory into a TileGrid, converting any of the
// eight virtio-gpu formats into the grid's canonical B,G,R,X order on the
// way. This copy is the only one a changed pixel gets inside the device.
#pragma once

#include <cstdint>
#include <optional>

#include "device/gpu/frame.h"
#include "device/virtio/guest_backing.h"

namespace vgpu::gpu {

// Whether `format` is one of enum virtio_gpu_formats.
bool IsSupportedFormat(uint32_t format);

// Where the source rectangle lives in the backing: its first pixel at byte
// `offset`, rows `stride` bytes apart, pixels in `format`.
struct GuestPixels {
  const virtio::GuestBacking* backing = nullptr;
  uint64_t offset = 0;
  uint64_t stride = 0;
  uint32_t format = 0;
};

// Byte offset one past the last source byte of a `width` x `height` rect, or
// nullopt on overflow. Callers check it against the backing size first.
std::optional<uint64_t> SourceEnd(const GuestPixels& source, uint32_t width,
                                  uint32_t height);

// Copies source into `grid` at `dest` (grid coordinates, inside the grid).
// Returns the bytes copied. The source range must lie inside the backing.
uint64_t CopyIntoGrid(const GuestPixels& source, const PixelRect& dest,
                      TileGrid& grid, GridStats* stats);

// Converts `pixels` pixels of `format` into canonical B,G,R,A order.
void ConvertToCanonical(uint32_t format, const uint8_t* in, uint8_t* out,
                        uint32_t pixels);

}  // namespace vgpu::gpu
