// Optionally mirrors what the device shows to QEMU's own console over the
// vhost-user-gpu display socket (SCANOUT, UPDATE with pixels, cursor), so
// QEMU's screendump and UI see the guest too. Off by default: viewers get
// frames from vgpu-displayd itself.
//
// The control socket must never wait on the display socket (QEMU may be
// blocked on a GET_CONFIG reply), so writes are non-blocking through a
// bounded queue drained on EPOLLOUT; when the queue is full, updates are
// dropped and the next one sends the whole scanout. EPIPE (guest reset, QEMU
// gone) just drops the channel.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "device/gpu/display_sink.h"
#include "device/vhost_user/event_loop.h"

namespace vgpu::vhost_user {

struct MirrorStats {
  uint64_t messages_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t updates_dropped = 0;
  uint64_t channels_lost = 0;
};

// Lives on the device thread. Forwards every event to `next` as well.
class DisplayMirror : public gpu::DisplaySink {
 public:
  explicit DisplayMirror(gpu::DisplaySink* next,
                         size_t max_queued_bytes = 64u << 20)
      : next_(next), max_queued_(max_queued_bytes) {}
  // The device thread's loop (set by the server before any channel).
  void set_loop(EventLoop* loop) { loop_ = loop; }
  ~DisplayMirror() override { SetChannel(-1); }

  // The display socket to mirror to (-1: none). Not owned.
  void SetChannel(int fd);
  bool enabled() const { return enabled_; }
  void set_enabled(bool enabled) { enabled_ = enabled; }

  void OnScanoutMode(const gpu::ScanoutMode& mode,
                     gpu::FramePtr first_frame) override;
  void OnFrame(uint32_t scanout_id, gpu::FramePtr frame,
               absl::Span<const gpu::PixelRect> damage) override;
  void OnCursor(const gpu::CursorUpdate& update) override;

  const MirrorStats& stats() const { return stats_; }
  size_t queued_bytes() const { return queued_; }

 private:
  bool Active() const { return enabled_ && fd_ >= 0 && loop_ != nullptr; }
  void Enqueue(uint32_t request, std::vector<uint8_t> payload);
  // Queues the pixels of `damage` (or of the whole frame after a loss).
  void MirrorFrame(uint32_t scanout_id, const gpu::Frame& frame,
                   const gpu::PixelRect& damage);
  void Flush();
  void Lose();

  EventLoop* loop_ = nullptr;
  gpu::DisplaySink* next_;
  const size_t max_queued_;
  bool enabled_ = false;
  int fd_ = -1;
  std::deque<std::vector<uint8_t>> queue_;  // whole messages (header + payload)
  size_t front_sent_ = 0;  // bytes of queue_.front() already written
  size_t queued_ = 0;
  bool resend_full_ = false;
  bool watching_out_ = false;
  MirrorStats stats_;
};

}  // namespace vgpu::vhost_user
