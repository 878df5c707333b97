// Prometheus metrics of the display service, kept in a prometheus-cpp
// registry (Debian's prometheus-cpp-dev) and served by its exposer.
//
// Names (units in the name, as Prometheus asks): vgpu_updates_total and
// vgpu_sent_bytes_total by `encoding` (png, jpeg, raw, raw_rgbx, zstd),
// vgpu_encode_seconds and vgpu_flush_to_send_seconds (histograms, seconds),
// vgpu_viewer_updates_total by `viewer` and `scanout` (rate() is a viewer's
// fps; the series goes with its viewer), vgpu_viewers by `stream`
// (WatchFrames, StreamFrames, WatchScanouts: streams connected now). Figures
// owned by other threads (the device's counters, the encode cache) are read at
// scrape time through a ScrapeCollector.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "common/scrape_metrics.h"

namespace vgpu::server {

// Thread-safe.
class ServiceMetrics {
 public:
  ServiceMetrics();

  // One update of `bytes` sent in `encoding`.
  void CountUpdate(std::string_view encoding, uint64_t bytes);
  void CountViewerUpdate(uint64_t viewer, uint32_t scanout);
  void RemoveViewer(uint64_t viewer);
  // The vgpu_viewers gauge, by `stream` (the RPC's name).
  void ViewerConnected(const std::string& stream);
  void ViewerLeft(const std::string& stream);
  // Seconds.
  prometheus::Histogram& encode_seconds() { return encode_seconds_; }
  prometheus::Histogram& flush_to_send_seconds() {
    return flush_to_send_seconds_;
  }

  const std::shared_ptr<prometheus::Registry>& registry() const {
    return registry_;
  }
  // Everything registered, in the text exposition format (tests).
  std::string Render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& updates_;
  prometheus::Family<prometheus::Counter>& bytes_;
  prometheus::Family<prometheus::Counter>& viewer_updates_;
  prometheus::Family<prometheus::Gauge>& viewers_by_stream_;
  prometheus::Histogram& encode_seconds_;
  prometheus::Histogram& flush_to_send_seconds_;
  Mutex mu_;
  std::map<uint64_t, prometheus::Counter*> viewers_ VGPU_GUARDED_BY(mu_);
};

}  // namespace vgpu::server
