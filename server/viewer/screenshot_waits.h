// Pending GetScreenshot waits. A wait costs memory, not a thread: it ends
// from the frame store's notification (a flush past a sequence) or from its
// own timer on the worker pool (a screen still for N ms, the timeout), so
// waiting calls never hold the workers that encode for viewers.
//
//   ScreenshotWaits waits(&store, &pool, /*max_pending=*/1024);
//   auto wait = waits.Start(0, {.kind = WaitKind::kNextFlush, .sequence = s},
//                           absl::Now() + absl::Seconds(5),
//                           [](absl::StatusOr<ScanoutState> state) { ... });
//   waits.Cancel(*wait);  // the call went away: ends it with CANCELLED
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "common/mutex.h"
#include "server/frame_store.h"
#include "server/worker_pool.h"

namespace vgpu::server {

enum class WaitKind {
  kSequence,  // a frame whose sequence is greater than `sequence`
  kStable,    // a frame, and no flush for `quiet`
};

struct WaitCondition {
  WaitKind kind = WaitKind::kSequence;
  uint64_t sequence = 0;
  absl::Duration quiet = absl::ZeroDuration();
};

// Whether `state` (read at `now`) meets `condition`.
bool ConditionMet(const WaitCondition& condition, const ScanoutState& state,
                  absl::Time now);

// Thread-safe. Outlives the calls that use it; every wait must have ended
// before it is destroyed (the gRPC server is shut down first).
class ScreenshotWaits : public FrameListener {
 public:
  // Called exactly once, on a worker thread: the state that met the
  // condition, DEADLINE_EXCEEDED at the deadline, or CANCELLED.
  using Done = std::function<void(absl::StatusOr<ScanoutState>)>;
  struct Wait;

  ScreenshotWaits(FrameStore* store, WorkerPool* pool, size_t max_pending);
  ~ScreenshotWaits() override;
  ScreenshotWaits(const ScreenshotWaits&) = delete;
  ScreenshotWaits& operator=(const ScreenshotWaits&) = delete;

  // RESOURCE_EXHAUSTED when `max_pending` waits are pending already.
  absl::StatusOr<std::shared_ptr<Wait>> Start(uint32_t scanout_id,
                                              WaitCondition condition,
                                              absl::Time deadline, Done done);
  // Ends `wait` with CANCELLED unless it has ended already.
  void Cancel(const std::shared_ptr<Wait>& wait);

  size_t pending() const;
  size_t max_pending() const { return max_pending_; }

  // FrameListener (device thread): ends the sequence waits a flush meets,
  // and has stable waits that were waiting for a first frame look again.
  void OnChange(const Change& change) override;

 private:
  void End(const std::shared_ptr<Wait>& wait,
           absl::StatusOr<ScanoutState> result);
  // Ends `wait` if its condition or deadline has come, else sets its timer
  // for the next moment either can.
  void Check(const std::shared_ptr<Wait>& wait);
  // A task for the pool that runs Check(wait) while `this` lives.
  std::function<void()> Later(const std::shared_ptr<Wait>& wait);

  FrameStore* const store_;
  WorkerPool* const pool_;
  const size_t max_pending_;
  mutable Mutex mu_;
  std::vector<std::shared_ptr<Wait>> pending_ VGPU_GUARDED_BY(mu_);
  // Waits pending, read without mu_ on every change.
  std::atomic<size_t> count_{0};
  // Whether `this` is still there, for the tasks it queued.
  struct Life {
    Mutex mu;
    bool alive VGPU_GUARDED_BY(mu) = true;
  };
  const std::shared_ptr<Life> life_ = std::make_shared<Life>();
};

}  // namespace vgpu::server
