// Prometheus metrics of the display service, in the text exposition format.
// Counters are atomics bumped on the paths they count; rendering reads them.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "common/mutex.h"

namespace vgpu::server {

// Thread-safe. Buckets in seconds.
class Histogram {
 public:
  static constexpr std::array<double, 10> kBuckets = {
      0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0};
  void Observe(double seconds);
  // Appends the series of `name` (with `labels`, may be empty) to `out`.
  void Render(const std::string& name, const std::string& labels,
              std::string* out) const;

 private:
  std::array<std::atomic<uint64_t>, kBuckets.size() + 1> counts_{};
  std::atomic<uint64_t> total_micros_{0};
};

// Thread-safe.
class ServiceMetrics {
 public:
  static constexpr int kFormats = 5;  // ImageFormat values 0..4
  void CountUpdate(int format, uint64_t bytes);
  void CountViewerUpdate(uint64_t viewer, uint32_t scanout);
  void RemoveViewer(uint64_t viewer);
  Histogram& encode_seconds() { return encode_seconds_; }
  Histogram& flush_to_send_seconds() { return flush_to_send_seconds_; }
  // Everything above, plus `extra` lines (device and cache figures).
  std::string Render(const std::string& extra) const;

 private:
  std::array<std::atomic<uint64_t>, kFormats> updates_{};
  std::array<std::atomic<uint64_t>, kFormats> bytes_{};
  Histogram encode_seconds_, flush_to_send_seconds_;
  mutable Mutex mu_;
  // viewer id -> (scanout, updates sent)
  std::map<uint64_t, std::pair<uint32_t, uint64_t>> viewers_
      VGPU_GUARDED_BY(mu_);
};

}  // namespace vgpu::server
