#include "server/frame_store.h"

#include <chrono>
#include <utility>

namespace vgpu::server {

void FrameStore::OnScanoutMode(const gpu::ScanoutMode& mode) {
  {
    MutexLock lock(&mu_);
    modes_[mode.scanout_id] = mode;
    if (!mode.enabled) frames_.erase(mode.scanout_id);
    ++mode_changes_;
  }
  mu_.NotifyAll();
}

void FrameStore::OnFrame(uint32_t scanout_id, gpu::FramePtr frame,
                         const gpu::PixelRect&) {
  gpu::FramePtr previous;  // dropped outside the lock
  {
    MutexLock lock(&mu_);
    previous = std::exchange(frames_[scanout_id], std::move(frame));
    ++frame_count_;
  }
  mu_.NotifyAll();
}

void FrameStore::OnCursor(const gpu::CursorUpdate& update) {
  MutexLock lock(&mu_);
  std::shared_ptr<const gpu::CursorImage> image =
      update.image ? update.image : (cursor_ ? cursor_->image : nullptr);
  cursor_ = update;
  cursor_->image = std::move(image);
}

gpu::FramePtr FrameStore::Latest(uint32_t scanout_id) const {
  MutexLock lock(&mu_);
  auto it = frames_.find(scanout_id);
  return it == frames_.end() ? nullptr : it->second;
}

std::optional<gpu::ScanoutMode> FrameStore::Mode(uint32_t scanout_id) const {
  MutexLock lock(&mu_);
  auto it = modes_.find(scanout_id);
  if (it == modes_.end()) return std::nullopt;
  return it->second;
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
        auto it = frames_.find(scanout_id);
        return it != frames_.end() && it->second && accept(*it->second);
      },
      deadline);
}

}  // namespace vgpu::server
