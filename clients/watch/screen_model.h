// A viewer's copy of a scanout, rebuilt from the updates the display
// service streams: mode changes resize it, encoded rects (raw, zstd, PNG,
// JPEG) are decoded into it. What vgpu-watch, tests and benchmarks use to
// check that what arrived is what the guest showed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "vgpu/display/v1/display.pb.h"

namespace vgpu::watch {

// One rect's B,G,R,X pixels (rows width*4 bytes apart) into `bgrx`, which
// is resized to fit; its old bytes are reused, not cleared (every format
// writes all of them). DataLoss for a rect that does not decode to its size,
// InvalidArgument for an unknown format.
absl::Status DecodeRect(const vgpu::display::v1::EncodedRect& rect,
                        std::vector<uint8_t>* bgrx);

// Thread-compatible.
class ScreenModel {
 public:
  // Applies a mode change or an update (other events are ignored).
  absl::Status Apply(const vgpu::display::v1::StreamFramesResponse& event);
  absl::Status ApplyUpdate(const vgpu::display::v1::FrameUpdate& update);
  void Resize(uint32_t width, uint32_t height);

  uint32_t width() const { return width_; }
  uint32_t height() const { return height_; }
  // B,G,R,X pixels, rows width*4 bytes apart.
  const std::vector<uint8_t>& pixels() const { return pixels_; }
  uint32_t PixelAt(uint32_t x, uint32_t y) const;
  // Binary PPM of the whole screen.
  std::string ToPpm() const;

 private:
  uint32_t width_ = 0;
  uint32_t height_ = 0;
  std::vector<uint8_t> pixels_;
  std::vector<uint8_t> scratch_;  // one decoded rect
};

}  // namespace vgpu::watch
