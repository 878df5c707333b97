#include "server/metrics.h"

#include "absl/strings/str_cat.h"

namespace vgpu::server {
namespace {

const char* FormatName(int format) {
  switch (format) {
    case 1:
      return "png";
    case 2:
      return "jpeg";
    case 3:
      return "raw";
    case 4:
      return "zstd";
    default:
      return "unspecified";
  }
}

}  // namespace

void Histogram::Observe(double seconds) {
  size_t bucket = 0;
  while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  total_micros_.fetch_add(static_cast<uint64_t>(seconds * 1e6),
                          std::memory_order_relaxed);
}

void Histogram::Render(const std::string& name, const std::string& labels,
                       std::string* out) const {
  uint64_t cumulative = 0;
  std::string prefix = labels.empty() ? "" : labels + ",";
  for (size_t i = 0; i <= kBuckets.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    std::string le = i < kBuckets.size() ? absl::StrCat(kBuckets[i]) : "+Inf";
    absl::StrAppend(out, name, "_bucket{", prefix, "le=\"", le, "\"} ",
                    cumulative, "\n");
  }
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  absl::StrAppend(out, name, "_sum", braces, " ",
                  total_micros_.load(std::memory_order_relaxed) / 1e6, "\n");
  absl::StrAppend(out, name, "_count", braces, " ", cumulative, "\n");
}

void ServiceMetrics::CountUpdate(int format, uint64_t bytes) {
  if (format < 0 || format >= kFormats) format = 0;
  updates_[format].fetch_add(1, std::memory_order_relaxed);
  bytes_[format].fetch_add(bytes, std::memory_order_relaxed);
}

void ServiceMetrics::CountViewerUpdate(uint64_t viewer, uint32_t scanout) {
  MutexLock lock(&mu_);
  auto& entry = viewers_[viewer];
  entry.first = scanout;
  ++entry.second;
}

void ServiceMetrics::RemoveViewer(uint64_t viewer) {
  MutexLock lock(&mu_);
  viewers_.erase(viewer);
}

std::string ServiceMetrics::Render(const std::string& extra) const {
  std::string out;
  absl::StrAppend(
      &out, "# HELP vgpu_updates_total Updates sent to viewers, by encoding.\n",
      "# TYPE vgpu_updates_total counter\n");
  for (int f = 0; f < kFormats; ++f) {
    absl::StrAppend(&out, "vgpu_updates_total{encoding=\"", FormatName(f),
                    "\"} ", updates_[f].load(std::memory_order_relaxed), "\n");
  }
  absl::StrAppend(
      &out, "# HELP vgpu_sent_bytes_total Update bytes sent, by encoding.\n",
      "# TYPE vgpu_sent_bytes_total counter\n");
  for (int f = 0; f < kFormats; ++f) {
    absl::StrAppend(&out, "vgpu_sent_bytes_total{encoding=\"", FormatName(f),
                    "\"} ", bytes_[f].load(std::memory_order_relaxed), "\n");
  }
  absl::StrAppend(&out,
                  "# HELP vgpu_encode_seconds Time to encode one update.\n",
                  "# TYPE vgpu_encode_seconds histogram\n");
  encode_seconds_.Render("vgpu_encode_seconds", "", &out);
  absl::StrAppend(&out,
                  "# HELP vgpu_flush_to_send_seconds From a guest flush to its "
                  "update's send.\n",
                  "# TYPE vgpu_flush_to_send_seconds histogram\n");
  flush_to_send_seconds_.Render("vgpu_flush_to_send_seconds", "", &out);
  absl::StrAppend(&out,
                  "# HELP vgpu_viewer_updates_total Updates sent to each "
                  "viewer (rate() = fps).\n",
                  "# TYPE vgpu_viewer_updates_total counter\n");
  {
    MutexLock lock(&mu_);
    for (const auto& [viewer, entry] : viewers_) {
      absl::StrAppend(&out, "vgpu_viewer_updates_total{viewer=\"", viewer,
                      "\",scanout=\"", entry.first, "\"} ", entry.second, "\n");
    }
  }
  out += extra;
  return out;
}

}  // namespace vgpu::server
