// Prometheus figures read when a scrape asks for them (prometheus-cpp,
// Debian's prometheus-cpp-dev): for counts that other threads own, which a
// registry's counters would have to mirror.
//
// Thread rules: a ScrapeCollector is as thread-safe as its `collect`.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vgpu {

class ScrapeCollector : public prometheus::Collectable {
 public:
  explicit ScrapeCollector(
      std::function<std::vector<prometheus::MetricFamily>()> collect)
      : collect_(std::move(collect)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    return collect_();
  }

 private:
  std::function<std::vector<prometheus::MetricFamily>()> collect_;
};

using MetricSeries =
    std::vector<std::pair<std::map<std::string, std::string>, double>>;

// A counter or gauge family of `series` (labels, value).
prometheus::MetricFamily CounterFamily(std::string name, std::string help,
                                       const MetricSeries& series);
prometheus::MetricFamily GaugeFamily(std::string name, std::string help,
                                     const MetricSeries& series);

}  // namespace vgpu
