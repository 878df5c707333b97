#include "server/viewer/screenshot_waits.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace vgpu::server {

struct ScreenshotWaits::Wait {
  uint32_t scanout_id = 0;
  WaitCondition condition;
  absl::Time deadline;
  Done done;
  std::atomic<bool> ended{false};
  // A stable wait that last saw no frame: the next change checks it again
  // (its timer is only the deadline then).
  std::atomic<bool> needs_frame{false};
};

bool ConditionMet(const WaitCondition& condition, const ScanoutState& state,
                  absl::Time now) {
  if (!state.frame) return false;
  switch (condition.kind) {
    case WaitKind::kSequence:
      return state.sequence > condition.sequence;
    case WaitKind::kStable:
      return now - state.last_flush >= condition.quiet;
  }
  return false;
}

ScreenshotWaits::ScreenshotWaits(FrameStore* store, WorkerPool* pool,
                                 size_t max_pending)
    : store_(store), pool_(pool), max_pending_(max_pending) {
  store_->AddListener(this);
}

ScreenshotWaits::~ScreenshotWaits() {
  store_->RemoveListener(this);
  {
    // A timer running now finishes first; later ones do nothing.
    MutexLock lock(&life_->mu);
    life_->alive = false;
  }
  std::vector<std::shared_ptr<Wait>> left;
  {
    MutexLock lock(&mu_);
    left = pending_;
  }
  for (const std::shared_ptr<Wait>& wait : left) {
    End(wait, absl::UnavailableError("the display service is shutting down"));
  }
}

absl::StatusOr<std::shared_ptr<ScreenshotWaits::Wait>> ScreenshotWaits::Start(
    uint32_t scanout_id, WaitCondition condition, absl::Time deadline,
    Done done) {
  auto wait = std::make_shared<Wait>();
  wait->scanout_id = scanout_id;
  wait->condition = condition;
  wait->deadline = deadline;
  wait->done = std::move(done);
  {
    MutexLock lock(&mu_);
    if (pending_.size() >= max_pending_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          max_pending_, " screenshot waits are pending already (the limit)"));
    }
    pending_.push_back(wait);
    ++count_;
  }
  Check(wait);  // it may be met already
  return wait;
}

void ScreenshotWaits::Cancel(const std::shared_ptr<Wait>& wait) {
  End(wait, absl::CancelledError("the call was cancelled"));
}

size_t ScreenshotWaits::pending() const {
  MutexLock lock(&mu_);
  return pending_.size();
}

void ScreenshotWaits::OnChange(const Change& change) {
  if (change.cursor_moved || count_.load() == 0) return;
  const ScanoutState state = store_->State(change.scanout_id);
  const absl::Time now = absl::Now();
  std::vector<std::shared_ptr<Wait>> met, recheck;
  {
    MutexLock lock(&mu_);
    for (const std::shared_ptr<Wait>& wait : pending_) {
      if (wait->scanout_id != change.scanout_id) continue;
      if (wait->condition.kind == WaitKind::kSequence) {
        if (ConditionMet(wait->condition, state, now)) met.push_back(wait);
      } else if (state.frame && wait->needs_frame.exchange(false)) {
        recheck.push_back(wait);
      }
    }
  }
  for (const std::shared_ptr<Wait>& wait : met) End(wait, state);
  for (const std::shared_ptr<Wait>& wait : recheck) Check(wait);
}

void ScreenshotWaits::End(const std::shared_ptr<Wait>& wait,
                          absl::StatusOr<ScanoutState> result) {
  if (wait->ended.exchange(true)) return;
  {
    MutexLock lock(&mu_);
    auto it = std::find(pending_.begin(), pending_.end(), wait);
    if (it != pending_.end()) {
      *it = std::move(pending_.back());
      pending_.pop_back();
    }
    --count_;
  }
  // The caller may be the device thread: encoding happens on a worker.
  pool_->Post(
      [done = std::move(wait->done), result = std::move(result)]() mutable {
        done(std::move(result));
      });
}

void ScreenshotWaits::Check(const std::shared_ptr<Wait>& wait) {
  if (wait->ended.load()) return;  // nothing of `this` is touched then
  const ScanoutState state = store_->State(wait->scanout_id);
  const absl::Time now = absl::Now();
  if (ConditionMet(wait->condition, state, now)) {
    End(wait, state);
    return;
  }
  if (now >= wait->deadline) {
    End(wait, absl::DeadlineExceededError(""));
    return;
  }
  // Sequence waits are ended by flushes; their timer is the deadline. A
  // stable wait checks again when the last flush will be `quiet` old
  // (a later flush moves that moment: it is read again then).
  absl::Time next = wait->deadline;
  if (wait->condition.kind == WaitKind::kStable) {
    if (state.frame) {
      next = std::min(next, state.last_flush + wait->condition.quiet);
    } else {
      wait->needs_frame = true;  // the first frame starts the quiet time
      // A frame that came after the read above found no flag to clear.
      if (store_->State(wait->scanout_id).frame &&
          wait->needs_frame.exchange(false)) {
        pool_->Post(Later(wait));
      }
    }
  }
  pool_->PostAt(next, Later(wait));
}

std::function<void()> ScreenshotWaits::Later(
    const std::shared_ptr<Wait>& wait) {
  // Queued tasks may run after the destructor (a worker pool drains its
  // queue when it stops): they may not call into `this` then.
  return [this, wait, life = life_] {
    MutexLock lock(&life->mu);
    if (life->alive) Check(wait);
  };
}

}  // namespace vgpu::server
