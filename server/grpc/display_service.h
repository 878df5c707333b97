// vgpu.display.v1.Display over gRPC's callback API. Handlers do O(1) work on
// gRPC's threads; waiting and encoding run on a WorkerPool; the device
// thread only ever marks viewers dirty.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "vgpu/display/v1/display.grpc.pb.h"

#include "common/mutex.h"
#include "device/gpu/gpu_device.h"
#include "server/encode/encode_cache.h"
#include "server/frame_store.h"
#include "server/metrics.h"
#include "server/viewer/screenshot_waits.h"
#include "server/viewer/viewer_core.h"
#include "server/worker_pool.h"

namespace vgpu::server {

struct DisplayServiceOptions {
  uint32_t num_scanouts = 1;
  // Updates are split into bands of at most about this many bytes of
  // pixels: far below gRPC's 4 MiB message limit, and small enough that the
  // first band is on the wire while the next is being read out (512 KiB
  // took a raw 1080p update from 6.5 to 4.4 ms over a unix socket; 4 MiB
  // bands left one 8 MiB copy after another).
  size_t band_bytes = 512u << 10;
  // Most WatchFrames streams at once; more get RESOURCE_EXHAUSTED.
  uint32_t max_viewers = 64;
  // Most GetScreenshot calls waiting for a condition at once; more get
  // RESOURCE_EXHAUSTED. A wait holds no thread, only a small record.
  uint32_t max_screenshot_waits = 1024;
};

// Thread-safe.
class DisplayService final
    : public vgpu::display::v1::Display::CallbackService {
 public:
  DisplayService(FrameStore* store, WorkerPool* pool,
                 DisplayServiceOptions options)
      : store_(store),
        pool_(pool),
        options_(options),
        waits_(store, pool, options.max_screenshot_waits) {}
  // Waits until every stream and every task of a call has let go of the
  // service (the gRPC server is shut down first, so none start).
  ~DisplayService() override;

  grpc::ServerUnaryReactor* ListScanouts(
      grpc::CallbackServerContext* context,
      const vgpu::display::v1::ListScanoutsRequest* request,
      vgpu::display::v1::ListScanoutsResponse* response) override;
  grpc::ServerUnaryReactor* GetScreenshot(
      grpc::CallbackServerContext* context,
      const vgpu::display::v1::GetScreenshotRequest* request,
      vgpu::display::v1::Screenshot* response) override;
  grpc::ServerWriteReactor<vgpu::display::v1::FrameEvent>* WatchFrames(
      grpc::CallbackServerContext* context,
      const vgpu::display::v1::WatchFramesRequest* request) override;
  grpc::ServerBidiReactor<vgpu::display::v1::StreamFramesRequest,
                          vgpu::display::v1::StreamFramesResponse>*
  StreamFrames(grpc::CallbackServerContext* context) override;
  grpc::ServerWriteReactor<vgpu::display::v1::Scanout>* WatchScanouts(
      grpc::CallbackServerContext* context,
      const vgpu::display::v1::WatchScanoutsRequest* request) override;
  grpc::ServerUnaryReactor* RequestLayout(
      grpc::CallbackServerContext* context,
      const vgpu::display::v1::RequestLayoutRequest* request,
      vgpu::display::v1::RequestLayoutResponse* response) override;

  // Applies a display mode on the device thread and calls `done` (from any
  // thread) with the result and whether the guest was notified.
  using LayoutFunction = std::function<void(
      uint32_t scanout_id, const gpu::DisplayConfig& display,
      std::function<void(absl::Status, bool guest_notified)> done)>;
  void set_layout_function(LayoutFunction layout) {
    layout_ = std::move(layout);
  }

  FrameStore* store() const { return store_; }
  EncodeCache& cache() { return cache_; }
  ServiceMetrics& metrics() { return metrics_; }
  uint64_t NextViewerId() { return next_viewer_id_.fetch_add(1) + 1; }
  const DisplayServiceOptions& options() const { return options_; }
  // Started.instance_id: random, never 0, fixed for the service's life.
  uint64_t instance_id() const { return instance_id_; }
  size_t pending_screenshot_waits() const { return waits_.pending(); }
  // What a viewer core of this service works with.
  ViewerContext ContextFor(uint64_t viewer_id);
  // Work that uses the service from other threads: a stream until its
  // reactor is deleted, a worker task until it returns. The destructor
  // waits for all of it.
  void BeginWork();
  void EndWork();
  // Server streams not yet done (every kind), for tests; `kind` is the
  // RPC's name (WatchFrames, StreamFrames, WatchScanouts), the label of the
  // vgpu_viewers gauge.
  void StreamOpened(const char* kind) {
    ++streams_open_;
    metrics_.ViewerConnected(kind);
    BeginWork();
  }
  void StreamClosed(const char* kind) {
    --streams_open_;
    metrics_.ViewerLeft(kind);
    EndWork();
  }
  uint32_t streams_open() const { return streams_open_.load(); }
  // Viewer accounting for WatchFrames (max_viewers).
  bool AddViewer();
  void RemoveViewer();

 private:
  FrameStore* store_;
  WorkerPool* pool_;
  DisplayServiceOptions options_;
  std::atomic<uint32_t> viewers_{0};
  std::atomic<uint32_t> streams_open_{0};
  Mutex work_mu_;
  uint64_t work_ VGPU_GUARDED_BY(work_mu_) = 0;
  LayoutFunction layout_;
  ScreenshotWaits waits_;
  EncodeCache cache_;
  ServiceMetrics metrics_;
  std::atomic<uint64_t> next_viewer_id_{0};
  const uint64_t instance_id_ = NewInstanceId();

  static uint64_t NewInstanceId();
};

}  // namespace vgpu::server
