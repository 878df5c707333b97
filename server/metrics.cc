#include "server/metrics.h"

#include <prometheus/text_serializer.h>

namespace vgpu::server {
namespace {

const prometheus::Histogram::BucketBoundaries& SecondsBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0};
  return buckets;
}

}  // namespace

ServiceMetrics::ServiceMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      updates_(prometheus::BuildCounter()
                   .Name("vgpu_updates_total")
                   .Help("Updates sent to viewers, by encoding.")
                   .Register(*registry_)),
      bytes_(prometheus::BuildCounter()
                 .Name("vgpu_sent_bytes_total")
                 .Help("Update bytes sent, by encoding.")
                 .Register(*registry_)),
      viewer_updates_(prometheus::BuildCounter()
                          .Name("vgpu_viewer_updates_total")
                          .Help("Updates sent to each viewer (rate() = fps).")
                          .Register(*registry_)),
      viewers_by_stream_(prometheus::BuildGauge()
                             .Name("vgpu_viewers")
                             .Help("Viewer streams connected now, by RPC.")
                             .Register(*registry_)),
      encode_seconds_(prometheus::BuildHistogram()
                          .Name("vgpu_encode_seconds")
                          .Help("Time to encode one update.")
                          .Register(*registry_)
                          .Add({}, SecondsBuckets())),
      flush_to_send_seconds_(
          prometheus::BuildHistogram()
              .Name("vgpu_flush_to_send_seconds")
              .Help("From a guest flush to its update's send.")
              .Register(*registry_)
              .Add({}, SecondsBuckets())) {}

void ServiceMetrics::CountUpdate(std::string_view encoding, uint64_t bytes) {
  const std::map<std::string, std::string> labels = {
      {"encoding", std::string(encoding)}};
  updates_.Add(labels).Increment();
  bytes_.Add(labels).Increment(static_cast<double>(bytes));
}

void ServiceMetrics::ViewerConnected(const std::string& stream) {
  viewers_by_stream_.Add({{"stream", stream}}).Increment();
}

void ServiceMetrics::ViewerLeft(const std::string& stream) {
  viewers_by_stream_.Add({{"stream", stream}}).Decrement();
}

void ServiceMetrics::CountViewerUpdate(uint64_t viewer, uint32_t scanout) {
  MutexLock lock(&mu_);
  prometheus::Counter*& counter = viewers_[viewer];
  if (counter == nullptr) {
    counter = &viewer_updates_.Add({{"viewer", std::to_string(viewer)},
                                    {"scanout", std::to_string(scanout)}});
  }
  counter->Increment();
}

void ServiceMetrics::RemoveViewer(uint64_t viewer) {
  MutexLock lock(&mu_);
  auto it = viewers_.find(viewer);
  if (it == viewers_.end()) return;
  viewer_updates_.Remove(it->second);
  viewers_.erase(it);
}

std::string ServiceMetrics::Render() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace vgpu::server
