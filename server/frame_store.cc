#include "server/frame_store.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/time/clock.h"

#include "common/log.h"

namespace vgpu::server {

namespace {

bool Fits(const gpu::Frame& frame, const gpu::ScanoutMode& mode) {
  return mode.enabled && frame.width() == mode.width &&
         frame.height() == mode.height;
}

}  // namespace

void FrameStore::OnScanoutMode(const gpu::ScanoutMode& mode,
                               gpu::FramePtr first_frame) {
  gpu::FramePtr previous;  // dropped outside the lock
  gpu::PixelRect damage;
  uint64_t sequence = 0;
  {
    MutexLock lock(&mu_);
    ScanoutState& state = scanouts_[mode.scanout_id];
    state.mode = mode;
    if (first_frame && !Fits(*first_frame, mode)) {
      VGPU_LOG(ERROR) << "scanout " << mode.scanout_id << ": a "
                      << first_frame->width() << "x" << first_frame->height()
                      << " frame for a " << mode.width << "x" << mode.height
                      << " mode is not shown";
      first_frame = nullptr;
    }
    if (first_frame) {
      damage = {0, 0, first_frame->width(), first_frame->height()};
      state.sequence = sequence = first_frame->sequence();
      state.content_sequence = sequence;
      state.last_flush = absl::Now();
      ++frame_count_;
    }
    // The old frame goes with the old mode, whatever comes instead.
    previous = std::exchange(state.frame, std::move(first_frame));
    ++mode_changes_;
  }
  mu_.NotifyAll();
  Change change{mode.scanout_id, true,
                damage.empty() ? absl::Span<const gpu::PixelRect>()
                               : absl::MakeConstSpan(&damage, 1)};
  change.sequence = sequence;
  Notify(change);
}

void FrameStore::OnFrame(uint32_t scanout_id, gpu::FramePtr frame,
                         absl::Span<const gpu::PixelRect> damage) {
  gpu::FramePtr previous;
  uint64_t sequence = 0;
  {
    MutexLock lock(&mu_);
    ScanoutState& state = scanouts_[scanout_id];
    if (!state.mode || !Fits(*frame, *state.mode)) {
      // The device tells a new size with its first frame; a frame that
      // disagrees with the mode would pair an update with the wrong screen.
      VGPU_LOG(ERROR) << "scanout " << scanout_id << ": a " << frame->width()
                      << "x" << frame->height()
                      << " frame outside the current mode is not shown";
      return;
    }
    state.sequence = sequence = frame->sequence();
    if (!damage.empty()) state.content_sequence = sequence;
    state.last_flush = absl::Now();
    previous = std::exchange(state.frame, std::move(frame));
    ++frame_count_;
  }
  mu_.NotifyAll();
  Change change{scanout_id, false, damage};
  change.sequence = sequence;
  Notify(change);
}

void FrameStore::OnCursor(const gpu::CursorUpdate& update) {
  {
    MutexLock lock(&mu_);
    std::shared_ptr<const gpu::CursorImage> image =
        update.image ? update.image : (cursor_ ? cursor_->image : nullptr);
    cursor_ = update;
    cursor_->image = std::move(image);
  }
  Change change;
  change.scanout_id = update.scanout_id;
  change.cursor_moved = true;
  change.cursor_shape_changed = update.image != nullptr;
  Notify(change);
}

void FrameStore::Notify(const Change& change) {
  MutexLock lock(&listeners_mu_);
  for (FrameListener* listener : listeners_) listener->OnChange(change);
}

void FrameStore::AddListener(FrameListener* listener) {
  MutexLock lock(&listeners_mu_);
  listeners_.push_back(listener);
}

void FrameStore::RemoveListener(FrameListener* listener) {
  MutexLock lock(&listeners_mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener),
                   listeners_.end());
}

gpu::FramePtr FrameStore::Latest(uint32_t scanout_id) const {
  return State(scanout_id).frame;
}

ScanoutState FrameStore::State(uint32_t scanout_id) const {
  MutexLock lock(&mu_);
  auto it = scanouts_.find(scanout_id);
  return it == scanouts_.end() ? ScanoutState{} : it->second;
}

std::map<uint32_t, ScanoutState> FrameStore::States() const {
  MutexLock lock(&mu_);
  return scanouts_;
}

std::optional<gpu::ScanoutMode> FrameStore::Mode(uint32_t scanout_id) const {
  return State(scanout_id).mode;
}

std::optional<gpu::CursorUpdate> FrameStore::Cursor() const {
  MutexLock lock(&mu_);
  return cursor_;
}

uint64_t FrameStore::frame_count() const {
  MutexLock lock(&mu_);
  return frame_count_;
}

uint64_t FrameStore::mode_changes() const {
  MutexLock lock(&mu_);
  return mode_changes_;
}

bool FrameStore::WaitForFrameCount(uint64_t count,
                                   absl::Duration timeout) const {
  auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  MutexLock lock(&mu_);
  return mu_.AwaitUntil(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return frame_count_ >= count; },
      deadline);
}

bool FrameStore::WaitForFrame(
    uint32_t scanout_id, const std::function<bool(const gpu::Frame&)>& accept,
    absl::Duration timeout) const {
  auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  MutexLock lock(&mu_);
  return mu_.AwaitUntil(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        auto it = scanouts_.find(scanout_id);
        return it != scanouts_.end() && it->second.frame &&
               accept(*it->second.frame);
      },
      deadline);
}

}  // namespace vgpu::server
