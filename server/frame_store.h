// The daemon's display sink: keeps the latest frame, mode and cursor of
// every scanout for readers on other threads (snapshots today; the gRPC
// service and VNC bridge next). The device thread only takes a short lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>

#include "absl/time/time.h"

#include "common/mutex.h"
#include "device/gpu/display_sink.h"

namespace vgpu::server {

// Thread-safe.
class FrameStore : public gpu::DisplaySink {
 public:
  void OnScanoutMode(const gpu::ScanoutMode& mode) override;
  void OnFrame(uint32_t scanout_id, gpu::FramePtr frame,
               const gpu::PixelRect& damage) override;
  void OnCursor(const gpu::CursorUpdate& update) override;

  gpu::FramePtr Latest(uint32_t scanout_id) const;
  std::optional<gpu::ScanoutMode> Mode(uint32_t scanout_id) const;
  std::optional<gpu::CursorUpdate> Cursor()
      const;  // last update, image = last shape
  uint64_t frame_count() const;
  uint64_t mode_changes() const;

  // Waits until at least `count` frames were published in total.
  bool WaitForFrameCount(uint64_t count, absl::Duration timeout) const;
  // Waits until scanout `id`'s latest frame satisfies `accept`.
  bool WaitForFrame(uint32_t scanout_id,
                    const std::function<bool(const gpu::Frame&)>& accept,
                    absl::Duration timeout) const;

 private:
  mutable Mutex mu_;
  std::map<uint32_t, gpu::FramePtr> frames_ VGPU_GUARDED_BY(mu_);
  std::map<uint32_t, gpu::ScanoutMode> modes_ VGPU_GUARDED_BY(mu_);
  std::optional<gpu::CursorUpdate> cursor_ VGPU_GUARDED_BY(mu_);
  uint64_t frame_count_ VGPU_GUARDED_BY(mu_) = 0;
  uint64_t mode_changes_ VGPU_GUARDED_BY(mu_) = 0;
};

}  // namespace vgpu::server
