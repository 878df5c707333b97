// Feeds one VncScreen from the daemon's StreamFrames: lossless updates
// (INDEXED, zstd above 256 colours) with scrolls as copies, mode changes and
// the cursor shape. When the daemon goes away (restarted, VM rebooted) the
// screen keeps the last frame, its VNC clients stay connected, and the feed
// reconnects with backoff (100 ms doubling to 2 s); the next subscription
// brings the whole new screen.
//
// With a forward profile it is one of a screen's encode-once feeds instead:
// the daemon's ADAPTIVE stream for that profile (JPEG for photo-like rects,
// lossless for the others, and a lossless refresh of settled JPEG regions),
// handed to the screen's forwarding clients as it came, numbered with the
// daemon's frame (the lossless parts are sent from the screen's copy once
// that copy shows the frame: the copy feed reports it with SetCopyFrame).
//
// Thread rules: Start and Stop from one thread. The feed's own thread is the
// only caller of the screen's feeding methods between Start and Stop.
// `connected()` and the counters may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "vgpu/display/v1/display.pb.h"
#include <grpcpp/grpcpp.h>

#include "clients/vnc/vnc_screen.h"
#include "common/mutex.h"

namespace vgpu::vnc {

struct ScanoutFeedOptions {
  uint32_t scanout_id = 0;
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  // Set: feeds VncScreen::Forward for this profile, not the screen's copy.
  std::optional<ForwardProfile> forward = std::nullopt;
  // The copy's pixels as they travel: INDEXED (palette, else zstd: small,
  // for TCP) or RAW_BGRX (nothing to encode or decode: for a daemon on the
  // same machine, over its unix socket).
  vgpu::display::v1::ImageFormat copy_format =
      vgpu::display::v1::IMAGE_FORMAT_INDEXED;
  // The copy's feed: with no client (ClientsChanged) for this long, it ends
  // its stream (the daemon then encodes nothing for it) and marks the copy
  // stale (VncScreen::SetCopyCurrent) until a client comes and a new
  // stream's first frame is in. Infinite: never.
  absl::Duration pause_after = absl::InfiniteDuration();
  // The copy's feed: while the screen does not want the copy to follow the
  // guest (VncScreen::CopyWanted: every client forwards and none waits for
  // the copy), the acknowledgement of the last update is held back, so the
  // daemon only gathers damage and sends the copy nothing (for a video,
  // what the forwarded JPEG already brings every client), and the screen
  // is told (SetCopyLagging). A client that needs the copy asks for it
  // (CopyWanted() below): the acknowledgement goes, the daemon's next
  // update brings the copy up to date, and the copy follows the guest for
  // `follow_after_wanted` from then on (text typed in a burst waits for no
  // round trip).
  bool copy_on_demand = false;
  absl::Duration follow_after_wanted = absl::Seconds(1);
};

class ScanoutFeed {
 public:
  // `screen` must outlive the feed.
  ScanoutFeed(std::shared_ptr<grpc::Channel> channel,
              const ScanoutFeedOptions& options, VncScreen* screen);
  ~ScanoutFeed();  // Stop()

  void Start();
  // Cancels the stream and any backoff wait, and joins the thread.
  void Stop();

  // The screen's clients changed (VncScreenOptions::clients_changed): the
  // feed reads their number from the screen's stats. Any thread, never
  // blocks. Resumes a paused feed; a lagging copy (copy_on_demand) takes
  // the next frame.
  void ClientsChanged();
  // The screen's copy is wanted now (VncScreenOptions::copy_wanted): with
  // copy_on_demand, the held-back acknowledgement goes. Any thread; never
  // waits for the daemon (the feed's supervising thread sends it).
  void CopyWanted();

  // A subscription is live (Started received and the stream open).
  bool connected() const { return connected_.load(); }
  // Paused for want of clients (pause_after).
  bool paused() const {
    MutexLock lock(&mu_);
    return paused_;
  }
  // copy_on_demand: the copy takes the daemon's frames only when asked
  // (every client forwards; VncScreen::SetCopyLagging).
  bool copy_lagging() const { return lagging_.load(); }
  uint64_t updates() const { return updates_.load(); }
  uint64_t subscriptions() const { return subscriptions_.load(); }

 private:
  void Run();
  // One subscription, until the stream ends; false if it never started.
  bool Subscribe();
  // The supervising thread: ends the stream once no client came for
  // pause_after; sends a held-back acknowledgement once the copy is wanted.
  void Supervise();
  // Acknowledges a finished update, or with copy_on_demand holds that
  // back while the copy is not wanted. The feed thread's.
  void Acknowledge(uint64_t update_id);
  // Writes an Ack on stream number `stream` if it is still the live one
  // (a held-back Ack must not acknowledge the next stream's updates).
  void WriteAck(uint64_t stream, uint64_t update_id);
  // A forward feed's update, as the screen's forwarding clients get it.
  void ForwardUpdate(const display::v1::FrameUpdate& update);

  std::shared_ptr<grpc::Channel> channel_;
  const ScanoutFeedOptions options_;
  VncScreen* const screen_;
  std::thread thread_;
  // Supervise: for the copy's feed, if it pauses or follows on demand.
  std::thread supervisor_;

  mutable Mutex mu_;
  bool stopping_ VGPU_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ VGPU_GUARDED_BY(mu_) = nullptr;
  absl::Time idle_since_ VGPU_GUARDED_BY(mu_);
  bool paused_ VGPU_GUARDED_BY(mu_) = false;
  // The stream was cancelled for a pause (Run marks the copy stale).
  bool cancelled_for_pause_ VGPU_GUARDED_BY(mu_) = false;
  // copy_on_demand: the update whose acknowledgement is held back (0:
  // none) and its stream's number, whether the copy was wanted since the
  // last acknowledgement, and when last.
  uint64_t withheld_ VGPU_GUARDED_BY(mu_) = 0;
  uint64_t withheld_stream_ VGPU_GUARDED_BY(mu_) = 0;
  bool wanted_ VGPU_GUARDED_BY(mu_) = false;
  absl::Time wanted_at_ VGPU_GUARDED_BY(mu_) = absl::InfinitePast();
  // The stream's writer; Writes happen under write_mu_ (the feed thread's
  // and the supervisor's), and it is cleared before the stream finishes.
  Mutex write_mu_;
  grpc::ClientReaderWriter<display::v1::StreamFramesRequest,
                           display::v1::StreamFramesResponse>* writer_
      VGPU_GUARDED_BY(write_mu_) = nullptr;
  // Numbers the streams: the live one's (write_mu_), and the feed
  // thread's own copy.
  uint64_t writer_stream_ VGPU_GUARDED_BY(write_mu_) = 0;
  uint64_t stream_ = 0;
  // Told the screen; written by the feed thread only.
  std::atomic<bool> lagging_{false};

  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> updates_{0};
  std::atomic<uint64_t> subscriptions_{0};
  // A forward feed's mode, and the daemon instance of the stream (the
  // feed thread's).
  uint32_t mode_width_ = 0;
  uint32_t mode_height_ = 0;
  uint64_t instance_ = 0;
};

// A screen's encode-once feeds: one forward ScanoutFeed per profile its
// forwarding clients use, started and stopped as that set changes
// (VncScreenOptions::profiles_changed -> SetProfiles).
//
// Thread rules: SetProfiles from any thread, never blocking (a thread of
// its own starts and stops the feeds); Start and Stop from one thread; the
// screen must outlive Stop. After Stop, SetProfiles does nothing.
class ForwardFeeds {
 public:
  ForwardFeeds(std::shared_ptr<grpc::Channel> channel, uint32_t scanout_id);
  ~ForwardFeeds();  // Stop()

  void Start(VncScreen* screen);
  void Stop();
  void SetProfiles(const std::set<ForwardProfile>& profiles);
  // Feeds running now.
  size_t active() const { return active_.load(); }

 private:
  void Run();

  const std::shared_ptr<grpc::Channel> channel_;
  const uint32_t scanout_id_;
  VncScreen* screen_ = nullptr;
  std::thread thread_;
  Mutex mu_;
  std::set<ForwardProfile> wanted_ VGPU_GUARDED_BY(mu_);
  bool changed_ VGPU_GUARDED_BY(mu_) = false;
  bool stopping_ VGPU_GUARDED_BY(mu_) = false;
  std::atomic<size_t> active_{0};
};

}  // namespace vgpu::vnc
