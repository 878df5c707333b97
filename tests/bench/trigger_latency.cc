#include "tests/bench/trigger_latency.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

ABSL_FLAG(std::string, trigger_path, "",
          "latency: unix socket the trigger line is written to.");
ABSL_FLAG(std::string, trigger_fmt, "mark {k}\\n",
          "latency: line written per try; {i} = try, {k} = 1/2 alternating.");
ABSL_FLAG(std::string, region, "", "latency: X,Y,W,H of the marker.");
ABSL_FLAG(uint32_t, tries, 30, "latency: triggers.");
ABSL_FLAG(uint32_t, gap_min_ms, 500, "latency: least idle time before one.");
ABSL_FLAG(uint32_t, gap_max_ms, 2000, "latency: most idle time before one.");

namespace vgpu::bench {
namespace {

// A connection to the trigger socket, kept for the whole run: QEMU's
// socket chardev drops what the UART has not taken yet when a peer hangs up.
absl::StatusOr<int> ConnectTrigger(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path))
    return absl::InvalidArgumentError("bad trigger socket path: " + path);
  std::memcpy(address.sun_path, path.c_str(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    absl::Status status = absl::ErrnoToStatus(errno, path);
    close(fd);
    return status;
  }
  return fd;
}

double Min(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::min_element(v.begin(), v.end());
}
double Max(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

}  // namespace

std::optional<Region> ParseRegion(absl::string_view text) {
  const std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  Region r;
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &r.x) ||
      !absl::SimpleAtoi(parts[1], &r.y) ||
      !absl::SimpleAtoi(parts[2], &r.width) ||
      !absl::SimpleAtoi(parts[3], &r.height) || r.width == 0 || r.height == 0) {
    return std::nullopt;
  }
  return r;
}

TriggerLatencyOptions TriggerLatencyOptionsFromFlags() {
  return {.trigger_path = absl::GetFlag(FLAGS_trigger_path),
          .trigger_fmt = absl::GetFlag(FLAGS_trigger_fmt),
          .tries = absl::GetFlag(FLAGS_tries),
          .gap_min_ms = absl::GetFlag(FLAGS_gap_min_ms),
          .gap_max_ms = absl::GetFlag(FLAGS_gap_max_ms)};
}

std::optional<Region> RegionFromFlag() {
  return ParseRegion(absl::GetFlag(FLAGS_region));
}

bool MostlyChanged(const std::vector<uint8_t>& before,
                   const std::vector<uint8_t>& after) {
  if (before.size() != after.size() || after.size() < 3) return false;
  size_t changed = 0;
  for (size_t p = 0; p + 2 < after.size(); p += 3) {
    const int d = std::max({std::abs(after[p] - before[p]),
                            std::abs(after[p + 1] - before[p + 1]),
                            std::abs(after[p + 2] - before[p + 2])});
    changed += d > 24;
  }
  return changed * 2 >= after.size() / 3;
}

absl::StatusOr<TriggerLatencyResult> MeasureTriggerLatency(
    const TriggerLatencyOptions& options, const LatencyViewer& viewer) {
  absl::StatusOr<int> trigger = ConnectTrigger(options.trigger_path);
  if (!trigger.ok()) return trigger.status();
  std::mt19937 rng(1);
  const uint32_t gap_min = options.gap_min_ms;
  const uint32_t gap_max = std::max(gap_min, options.gap_max_ms);
  TriggerLatencyResult result;
  result.tries = options.tries;
  for (uint32_t i = 0; i < options.tries; ++i) {
    viewer.idle(absl::Milliseconds(gap_min + rng() % (gap_max - gap_min + 1)));
    const std::vector<uint8_t> before = viewer.sample();
    const std::string line = absl::StrReplaceAll(
        options.trigger_fmt, {{"{i}", absl::StrCat(i)},
                              {"{k}", absl::StrCat(1 + i % 2)},
                              {"\\n", "\n"}});
    const absl::Time t0 = absl::Now();
    if (write(*trigger, line.data(), line.size()) !=
        static_cast<ssize_t>(line.size())) {
      absl::Status status = absl::ErrnoToStatus(errno, "writing the trigger");
      close(*trigger);
      return status;
    }
    const std::optional<MarkSeen> seen =
        viewer.wait(before, t0 + options.timeout);
    if (!seen) {
      ++result.missed;
      absl::StrAppend(&result.each_ms, result.each_ms.empty() ? "" : ", ",
                      "null");
      continue;
    }
    result.done_ms.push_back(absl::ToDoubleMilliseconds(seen->done - t0));
    result.first_ms.push_back(absl::ToDoubleMilliseconds(seen->first - t0));
    if (seen->flush)
      result.flush_ms.push_back(
          absl::ToDoubleMilliseconds(seen->done - *seen->flush));
    absl::StrAppend(&result.each_ms, result.each_ms.empty() ? "" : ", ",
                    absl::StrFormat("%.1f", result.done_ms.back()));
  }
  close(*trigger);
  return result;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p / 100 *
                                    static_cast<double>(values.size() - 1))];
}

std::string LatencyLine(const TriggerLatencyResult& r) {
  return absl::StrFormat(
      "latency: %d tries, %d missed; trigger->marker update p50 %.1f ms "
      "p99 %.1f ms (min %.1f, max %.1f); flush->update p50 %.1f ms p99 "
      "%.1f ms",
      r.tries, r.missed, Percentile(r.done_ms, 50), Percentile(r.done_ms, 99),
      Min(r.done_ms), Max(r.done_ms), Percentile(r.flush_ms, 50),
      Percentile(r.flush_ms, 99));
}

std::string LatencyJson(const TriggerLatencyResult& r) {
  return absl::StrFormat(
      "{\"tries\": %d, \"missed\": %d, \"ms_p50\": %.1f, \"ms_p99\": %.1f, "
      "\"ms_min\": %.1f, \"ms_max\": %.1f, \"first_byte_ms_p50\": %.1f, "
      "\"flush_ms_p50\": %.1f, \"flush_ms_p99\": %.1f, \"each_ms\": [%s]}",
      r.tries, r.missed, Percentile(r.done_ms, 50), Percentile(r.done_ms, 99),
      Min(r.done_ms), Max(r.done_ms), Percentile(r.first_ms, 50),
      Percentile(r.flush_ms, 50), Percentile(r.flush_ms, 99), r.each_ms);
}

}  // namespace vgpu::bench
