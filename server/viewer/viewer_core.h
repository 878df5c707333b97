// A viewer's update scheduling, apart from any transport: pending damage
// (latest wins), the mode it was last told, credits (updates not yet
// acknowledged), max_fps pacing, lossless refresh of what went out lossy,
// and updates cut into bands. The gRPC streams (WatchFrames, StreamFrames)
// are thin adapters that write what it sends; tests drive it on a fake
// clock with a step-by-step executor.
//
// A round: the device thread marks the viewer dirty (OnChange, O(1)); once
// the output is idle and a credit is free, a task on the executor reads the
// store's mode and frame (one consistent pair), asks the encode cache for
// the damaged rects (shared with every viewer) and sends a mode change
// if the mode differs from the last one told, then the update in bands,
// then cursor events. The next round waits for the output to drain, so a
// slow viewer's next update is always the latest screen.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "vgpu/display/v1/display.pb.h"

#include "common/mutex.h"
#include "server/encode/damage_map.h"
#include "server/encode/encode_cache.h"
#include "server/executor.h"
#include "server/frame_store.h"
#include "server/metrics.h"
#include "server/viewer/formats.h"
#include "server/viewer/lossy_cells.h"

namespace vgpu::server {

struct ViewerSettings {
  uint32_t scanout_id = 0;
  EncodeOptions encode;
  // What the rects of updates say they are.
  vgpu::display::v1::ImageFormat format = vgpu::display::v1::IMAGE_FORMAT_PNG;
  uint32_t max_fps = 0;  // 0: as fast as the output takes them
  LosslessRefresh refresh;
  bool include_cursor = false;
  // Updates sent and not yet acknowledged at most; 0: paced by the output
  // alone (no acks).
  uint32_t max_in_flight = 0;
  // Bands carry about this many bytes of pixels at most.
  size_t band_bytes = 512u << 10;
  // The viewer applies copy rects (Subscribe.accept_copies): scrolls go as
  // copies of what it shows. Used with lossless formats only (a copy of a
  // lossy picture would carry its errors along).
  bool copies = false;
};

// What a viewer shares with the others. All outlive the core's tasks.
struct ViewerContext {
  FrameStore* store = nullptr;
  EncodeCache* cache = nullptr;
  ServiceMetrics* metrics = nullptr;  // optional
  Executor* executor = nullptr;
  const Clock* clock = RealClock::Get();
  uint64_t viewer_id = 0;
};

// Where a core's messages go: a stream with one write in flight.
class ViewerOutput {
 public:
  virtual ~ViewerOutput() = default;
  // Queues a mode change, an update band or a cursor event for writing.
  virtual void Send(vgpu::display::v1::StreamFramesResponse message) = 0;
  // Whether everything queued has been written. When it becomes true the
  // output calls ViewerCore::OnDrained.
  virtual bool Idle() const = 0;
};

// Thread-safe. Held by shared_ptr: queued tasks keep it alive and return at
// once after Stop.
class ViewerCore : public FrameListener,
                   public std::enable_shared_from_this<ViewerCore> {
 public:
  // `output` is used until the callback given to Stop has run.
  static std::shared_ptr<ViewerCore> Create(ViewerContext context,
                                            ViewerSettings settings,
                                            ViewerOutput* output);
  ~ViewerCore() override;

  // Starts listening to the store; the first round sends the mode and the
  // whole screen.
  void Start();
  // No more rounds; calls `stopped` (now or when the round under way ends)
  // once the output will never be used again.
  void Stop(std::function<void()> stopped);

  // Device thread: a flush, a mode change or the cursor.
  void OnChange(const Change& change) override;
  // The output wrote everything queued.
  void OnDrained();
  // The viewer has every update up to `update_id`.
  void Acknowledge(uint64_t update_id);
  // The viewer wants the whole screen again.
  void Refresh();

  // update_id of the last update sent (0 before any).
  uint64_t updates_sent() const;

 private:
  ViewerCore(ViewerContext context, ViewerSettings settings,
             ViewerOutput* output);
  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Copies go to viewers that take them, in a lossless format.
  bool UsesCopies() const {
    return settings_.copies && IsLossless(settings_.encode.kind);
  }
  void MaybeScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmRefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `round` unless stopped, then schedules what is pending.
  void RunTask(const std::function<void()>& round);
  // One round, on the executor.
  void Prepare();
  void AddCursorEvents(
      bool shape,
      std::vector<vgpu::display::v1::StreamFramesResponse>* events) const;
  void Send(vgpu::display::v1::StreamFramesResponse message);

  const ViewerContext context_;
  const ViewerSettings settings_;
  ViewerOutput* const output_;

  mutable Mutex mu_;
  bool started_ VGPU_GUARDED_BY(mu_) = false;
  bool stopped_ VGPU_GUARDED_BY(mu_) = false;
  int running_ VGPU_GUARDED_BY(mu_) = 0;  // tasks inside RunTask
  std::function<void()> on_stopped_ VGPU_GUARDED_BY(mu_);
  uint64_t sent_ VGPU_GUARDED_BY(mu_) = 0;  // last update_id sent
  uint64_t acked_ VGPU_GUARDED_BY(mu_) = 0;
  bool pending_mode_ VGPU_GUARDED_BY(mu_) = false;
  bool pending_cursor_ VGPU_GUARDED_BY(mu_) = false;
  bool pending_cursor_shape_ VGPU_GUARDED_BY(mu_) = false;
  // The mode this viewer was last told; the next update after a mode
  // change is the whole frame.
  std::optional<gpu::ScanoutMode> announced_ VGPU_GUARDED_BY(mu_);
  bool need_full_ VGPU_GUARDED_BY(mu_) = false;
  DamageMap damage_ VGPU_GUARDED_BY(mu_);
  uint32_t flushes_ VGPU_GUARDED_BY(mu_) = 0;
  LossyCells lossy_ VGPU_GUARDED_BY(mu_);
  // The frame the viewer's screen shows (every update sends all pending
  // damage of the frame it is cut from): where copies are found.
  gpu::FramePtr shown_ VGPU_GUARDED_BY(mu_);
  // The frame of the last change this viewer was told of. The store holds a
  // new frame before it tells its listeners; a round that reads a frame not
  // yet told waits for the notification (awaiting_told_) before it cuts an
  // update from it.
  uint64_t told_sequence_ VGPU_GUARDED_BY(mu_) = 0;
  bool awaiting_told_ VGPU_GUARDED_BY(mu_) = false;
  // Rounds run one at a time; atomic only to need no lock around the log.
  std::atomic<bool> encode_failing_{false};
  // The rounds' (one at a time): the last scroll search's new frame, its
  // box and row hashes, which the next search from that frame reuses; let
  // go once the viewer shows another frame.
  struct RowHashes {
    gpu::FramePtr frame;
    gpu::PixelRect box;
    std::vector<size_t> hashes;
  };
  RowHashes row_hashes_;
  bool refresh_armed_ VGPU_GUARDED_BY(mu_) = false;  // a wake-up is queued
  bool refresh_due_ VGPU_GUARDED_BY(mu_) = false;
  bool scheduled_ VGPU_GUARDED_BY(mu_) = false;  // a round is queued
  absl::Time next_send_ VGPU_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace vgpu::server
