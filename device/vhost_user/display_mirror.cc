#include "device/vhost_user/display_mirror.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "device/vhost_user/protocol.h"

namespace vgpu::vhost_user {
namespace {

template <typename T>
std::vector<uint8_t> PayloadOf(const T& value, size_t extra = 0) {
  std::vector<uint8_t> bytes(sizeof(T) + extra);
  std::memcpy(bytes.data(), &value, sizeof(T));
  return bytes;
}

}  // namespace

void DisplayMirror::SetChannel(int fd) {
  if (watching_out_ && fd_ >= 0) loop_->Unwatch(fd_);
  watching_out_ = false;
  queue_.clear();
  queued_ = 0;
  front_sent_ = 0;
  fd_ = fd;
  resend_full_ = true;
}

void DisplayMirror::Lose() {
  ++stats_.channels_lost;
  VGPU_LOG(INFO)
      << "display socket closed by QEMU; mirroring paused until the next one";
  SetChannel(-1);
}

void DisplayMirror::Enqueue(uint32_t request, std::vector<uint8_t> payload) {
  Header header{request, 0, static_cast<uint32_t>(payload.size())};
  std::vector<uint8_t> message(sizeof(header) + payload.size());
  std::memcpy(message.data(), &header, sizeof(header));
  std::memcpy(message.data() + sizeof(header), payload.data(), payload.size());
  queued_ += message.size();
  queue_.push_back(std::move(message));
  Flush();
}

void DisplayMirror::Flush() {
  while (fd_ >= 0 && !queue_.empty()) {
    std::vector<uint8_t>& front = queue_.front();
    ssize_t n = send(fd_, front.data() + front_sent_,
                     front.size() - front_sent_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!watching_out_) {
        int fd = fd_;
        watching_out_ =
            loop_->Watch(fd, EPOLLOUT, [this](uint32_t) { Flush(); }).ok();
      }
      return;
    }
    if (n < 0) {  // EPIPE, ECONNRESET: the channel is gone
      Lose();
      return;
    }
    front_sent_ += static_cast<size_t>(n);
    stats_.bytes_sent += static_cast<uint64_t>(n);
    if (front_sent_ == front.size()) {
      queued_ -= front.size();
      queue_.pop_front();
      front_sent_ = 0;
      ++stats_.messages_sent;
    }
  }
  if (watching_out_ && fd_ >= 0) {
    loop_->Unwatch(fd_);
    watching_out_ = false;
  }
}

void DisplayMirror::OnScanoutMode(const gpu::ScanoutMode& mode,
                                  gpu::FramePtr first_frame) {
  if (Active()) {
    GpuScanout scanout{mode.scanout_id, mode.enabled ? mode.width : 0,
                       mode.enabled ? mode.height : 0};
    Enqueue(kGpuScanout, PayloadOf(scanout));
    if (first_frame) {
      MirrorFrame(mode.scanout_id, *first_frame,
                  {0, 0, first_frame->width(), first_frame->height()});
    }
  }
  next_->OnScanoutMode(mode, std::move(first_frame));
}

void DisplayMirror::OnFrame(uint32_t scanout_id, gpu::FramePtr frame,
                            absl::Span<const gpu::PixelRect> damage) {
  if (Active()) {
    // QEMU's console takes one UPDATE per rect; their bounding box keeps
    // that to one message per flush.
    gpu::PixelRect box;
    for (const gpu::PixelRect& rect : damage) box = gpu::BoundingBox(box, rect);
    MirrorFrame(scanout_id, *frame, box);
  }
  next_->OnFrame(scanout_id, std::move(frame), damage);
}

void DisplayMirror::MirrorFrame(uint32_t scanout_id, const gpu::Frame& frame,
                                const gpu::PixelRect& damage) {
  gpu::PixelRect rect = damage;
  if (resend_full_) {
    // A new channel (or one that fell behind) starts from the whole screen.
    GpuScanout scanout{scanout_id, frame.width(), frame.height()};
    Enqueue(kGpuScanout, PayloadOf(scanout));
    rect = {0, 0, frame.width(), frame.height()};
  }
  size_t bytes = size_t{rect.width} * rect.height * 4;
  if (queued_ + bytes > max_queued_) {
    ++stats_.updates_dropped;
    resend_full_ = true;
  } else if (!rect.empty()) {
    resend_full_ = false;
    GpuUpdate update{scanout_id, rect.x, rect.y, rect.width, rect.height};
    std::vector<uint8_t> payload = PayloadOf(update, bytes);
    frame.ReadPixels(rect, payload.data() + sizeof(update),
                     size_t{rect.width} * 4);
    Enqueue(kGpuUpdate, std::move(payload));
  }
}

void DisplayMirror::OnCursor(const gpu::CursorUpdate& update) {
  next_->OnCursor(update);
  if (!Active()) return;
  GpuCursorPos pos{update.scanout_id, update.x, update.y};
  if (!update.visible) {
    Enqueue(kGpuCursorPosHide, PayloadOf(pos));
  } else if (update.image) {
    GpuCursorUpdate cursor{};
    cursor.pos = pos;
    cursor.hot_x = update.image->hot_x;
    cursor.hot_y = update.image->hot_y;
    std::memcpy(cursor.data, update.image->pixels.data(), sizeof(cursor.data));
    Enqueue(kGpuCursorUpdate, PayloadOf(cursor));
  } else {
    Enqueue(kGpuCursorPos, PayloadOf(pos));
  }
}

}  // namespace vgpu::vhost_user
