#include "common/scrape_metrics.h"

namespace vgpu {
namespace {

prometheus::MetricFamily Family(std::string name, std::string help,
                                prometheus::MetricType type,
                                const MetricSeries& series) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  for (const auto& [labels, value] : series) {
    prometheus::ClientMetric& metric = family.metric.emplace_back();
    for (const auto& [label, label_value] : labels)
      metric.label.push_back({label, label_value});
    if (type == prometheus::MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
  }
  return family;
}

}  // namespace

prometheus::MetricFamily CounterFamily(std::string name, std::string help,
                                       const MetricSeries& series) {
  return Family(std::move(name), std::move(help),
                prometheus::MetricType::Counter, series);
}

prometheus::MetricFamily GaugeFamily(std::string name, std::string help,
                                     const MetricSeries& series) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Gauge,
                series);
}

}  // namespace vgpu
