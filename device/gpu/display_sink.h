// What the device tells the display server: scanout mode changes, flushed
// frames with their damage, and the cursor. Called on the device thread;
// implementations must return quickly and never block on a viewer.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "absl/types/span.h"

#include "device/gpu/frame.h"

namespace vgpu::gpu {

inline constexpr uint32_t kCursorSize = 64;

struct ScanoutMode {
  uint32_t scanout_id = 0;
  bool enabled = false;
  uint32_t width = 0;   // pixels
  uint32_t height = 0;  // pixels
};

struct CursorImage {
  uint32_t hot_x = 0;  // hotspot, pixels from the image's top-left
  uint32_t hot_y = 0;
  // 64x64 pixels, B,G,R,A bytes, rows 256 bytes apart.
  std::array<uint8_t, size_t{kCursorSize} * kCursorSize * 4> pixels{};
};

struct CursorUpdate {
  uint32_t scanout_id = 0;
  // Top-left of the cursor image in scanout pixels (the pointer is at
  // x + hot_x, y + hot_y).
  uint32_t x = 0;
  uint32_t y = 0;
  bool visible = false;
  // A new shape, or nullptr when only the position or visibility changed.
  std::shared_ptr<const CursorImage> image;
};

class DisplaySink {
 public:
  virtual ~DisplaySink() = default;
  // A scanout was enabled, disabled or changed size. `first_frame` is the
  // first picture of the new mode (its size is the mode's; the whole of it
  // is new), told in the same call so that no reader ever pairs the new
  // mode with a frame of the old size; nullptr when disabled.
  virtual void OnScanoutMode(const ScanoutMode& mode, FramePtr first_frame) = 0;
  // A new picture of `scanout_id` (one per flush); `damage` (frame
  // coordinates, valid during the call) is exactly what changed since the
  // previous frame of that scanout, as Frame::ChangedSince tells it: at
  // most one rect per 64x64 tile, and empty when the flush changed no pixel.
  virtual void OnFrame(uint32_t scanout_id, FramePtr frame,
                       absl::Span<const PixelRect> damage) = 0;
  virtual void OnCursor(const CursorUpdate& update) = 0;
};

// Drops everything. For tests and benchmarks that only drive the device.
class NullDisplaySink : public DisplaySink {
 public:
  void OnScanoutMode(const ScanoutMode&, FramePtr) override {}
  void OnFrame(uint32_t, FramePtr, absl::Span<const PixelRect>) override {}
  void OnCursor(const CursorUpdate&) override {}
};

}  // namespace vgpu::gpu
