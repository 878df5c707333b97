// Feeds one VncScreen from the daemon's StreamFrames: lossless updates
// (INDEXED, zstd above 256 colours) with scrolls as copies, mode changes and
// the cursor shape. When the daemon goes away (restarted, VM rebooted) the
// screen keeps the last frame, its VNC clients stay connected, and the feed
// reconnects with backoff (100 ms doubling to 2 s); the next subscription
// brings the whole new screen.
//
// Thread rules: Start and Stop from one thread. The feed's own thread is the
// only caller of the screen's feeding methods between Start and Stop.
// `connected()` and the counters may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include <grpcpp/grpcpp.h>

#include "clients/vnc/vnc_screen.h"
#include "common/mutex.h"

namespace vgpu::vnc {

struct ScanoutFeedOptions {
  uint32_t scanout_id = 0;
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
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

  // A subscription is live (Started received and the stream open).
  bool connected() const { return connected_.load(); }
  uint64_t updates() const { return updates_.load(); }
  uint64_t subscriptions() const { return subscriptions_.load(); }

 private:
  void Run();
  // One subscription, until the stream ends; false if it never started.
  bool Subscribe();

  std::shared_ptr<grpc::Channel> channel_;
  const ScanoutFeedOptions options_;
  VncScreen* const screen_;
  std::thread thread_;

  mutable Mutex mu_;
  bool stopping_ VGPU_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ VGPU_GUARDED_BY(mu_) = nullptr;

  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> updates_{0};
  std::atomic<uint64_t> subscriptions_{0};
};

}  // namespace vgpu::vnc
