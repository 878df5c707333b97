// The daemon's display sink: keeps the latest frame, mode and cursor of
// every scanout for readers on other threads (snapshots, the gRPC service),
// and tells listeners what changed. The device thread only takes short locks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"

#include "common/mutex.h"
#include "device/gpu/display_sink.h"

namespace vgpu::server {

// One consistent pair: `frame`, when set, always has the size of `mode`.
struct ScanoutState {
  std::optional<gpu::ScanoutMode> mode;  // unset until the device reports one
  gpu::FramePtr frame;    // latest; null when disabled or none of this mode yet
  uint64_t sequence = 0;  // frame->sequence(), 0 before any
  // The newest frame up to `sequence` that changed pixels (a flush that
  // changes none advances `sequence` only); 0 before any.
  uint64_t content_sequence = 0;
  absl::Time last_flush = absl::InfinitePast();
};

struct Change {
  uint32_t scanout_id = 0;
  bool mode_changed = false;
  // What changed, frame coordinates (valid during the call): exactly the
  // changed pixels of a flush (possibly none), the whole frame for a mode
  // change with a first frame, nothing for cursor changes and modes
  // without a frame.
  absl::Span<const gpu::PixelRect> damage;
  bool cursor_moved = false;
  bool cursor_shape_changed = false;
  // The frame `damage` leads to (Frame::sequence()); 0 when there is none.
  // A listener that reads the store may see a newer frame than the last
  // change it was told: that frame's damage is still on its way.
  uint64_t sequence = 0;
};

// Told about every change, on the device thread, after the store is updated.
// Must return quickly and never call back into AddListener/RemoveListener.
class FrameListener {
 public:
  virtual ~FrameListener() = default;
  virtual void OnChange(const Change& change) = 0;
};

// Thread-safe.
class FrameStore : public gpu::DisplaySink {
 public:
  void OnScanoutMode(const gpu::ScanoutMode& mode,
                     gpu::FramePtr first_frame) override;
  void OnFrame(uint32_t scanout_id, gpu::FramePtr frame,
               absl::Span<const gpu::PixelRect> damage) override;
  void OnCursor(const gpu::CursorUpdate& update) override;

  gpu::FramePtr Latest(uint32_t scanout_id) const;
  ScanoutState State(uint32_t scanout_id) const;
  std::map<uint32_t, ScanoutState> States() const;
  std::optional<gpu::ScanoutMode> Mode(uint32_t scanout_id) const;
  std::optional<gpu::CursorUpdate> Cursor()
      const;  // last update, image = last shape
  uint64_t frame_count() const;
  uint64_t mode_changes() const;

  // Blocking waits for tests and tools (the service's waits hold no thread:
  // server/grpc/screenshot_waits.h).
  bool WaitForFrameCount(uint64_t count, absl::Duration timeout) const;
  bool WaitForFrame(uint32_t scanout_id,
                    const std::function<bool(const gpu::Frame&)>& accept,
                    absl::Duration timeout) const;

  // After RemoveListener returns, the listener is never called again.
  void AddListener(FrameListener* listener);
  void RemoveListener(FrameListener* listener);

 private:
  void Notify(const Change& change);

  mutable Mutex mu_;
  std::map<uint32_t, ScanoutState> scanouts_ VGPU_GUARDED_BY(mu_);
  std::optional<gpu::CursorUpdate> cursor_ VGPU_GUARDED_BY(mu_);
  uint64_t frame_count_ VGPU_GUARDED_BY(mu_) = 0;
  uint64_t mode_changes_ VGPU_GUARDED_BY(mu_) = 0;
  // Held while listeners run, so removal waits for a call in progress.
  Mutex listeners_mu_;
  std::vector<FrameListener*> listeners_ VGPU_GUARDED_BY(listeners_mu_);
};

}  // namespace vgpu::server
