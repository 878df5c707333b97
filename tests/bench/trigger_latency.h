// Trigger-to-pixel latency as the real-guest benchmark measures it
// (tests/bench/guest_bench.sh): a line written to the guest's serial
// console makes the guest fill a marker band, and a viewer times the update
// after which most of the band has changed. Shared by the benchmark's
// viewers (gRPC and VNC) so that they measure alike.
#ifndef VGPU_TESTS_BENCH_TRIGGER_LATENCY_H_
#define VGPU_TESTS_BENCH_TRIGGER_LATENCY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace vgpu::bench {

struct TriggerLatencyOptions {
  std::string trigger_path;  // a unix socket: QEMU's serial chardev
  // Written per try; {i} is the try, {k} 1 and 2 alternating, \n a newline.
  std::string trigger_fmt = "mark {k}\\n";
  uint32_t tries = 30;
  // Idle time before each try, drawn uniformly (milliseconds).
  uint32_t gap_min_ms = 500;
  uint32_t gap_max_ms = 2000;
  absl::Duration timeout = absl::Seconds(10);  // a try that sees nothing
};

// When the viewer had the update that showed the marker: its first and
// last byte, and the device's flush that brought it when the viewer knows.
struct MarkSeen {
  absl::Time first;
  absl::Time done;
  std::optional<absl::Time> flush = {};
};

// The viewer's side. Samples are the marker region's pixels, 3 bytes each
// (any channel order, the same every call).
struct LatencyViewer {
  // Keeps the viewer going for this long (its updates drained).
  std::function<void(absl::Duration)> idle;
  // The region now; called just before each trigger.
  std::function<std::vector<uint8_t>()> sample;
  // Waits until an update leaves the region MostlyChanged from `before`;
  // nullopt at `deadline`.
  std::function<std::optional<MarkSeen>(const std::vector<uint8_t>& before,
                                        absl::Time deadline)>
      wait;
};

// The marker band, in framebuffer pixels.
struct Region {
  uint32_t x = 0, y = 0, width = 0, height = 0;
};
// "X,Y,W,H" with W and H above 0; nullopt otherwise.
std::optional<Region> ParseRegion(absl::string_view text);

// Whether at least half the sampled pixels differ from `before` by more
// than 24 in some channel (JPEG noise stays under it).
bool MostlyChanged(const std::vector<uint8_t>& before,
                   const std::vector<uint8_t>& after);

struct TriggerLatencyResult {
  uint32_t tries = 0;
  uint32_t missed = 0;
  std::vector<double> done_ms, first_ms, flush_ms;  // per try seen
  std::string each_ms;  // every try's done_ms in order, "null" when missed
};

// Options from the flags this library defines for the binaries that link
// it: --trigger_path, --trigger_fmt, --tries, --gap_min_ms, --gap_max_ms;
// and --region, parsed (nullopt when not X,Y,W,H).
TriggerLatencyOptions TriggerLatencyOptionsFromFlags();
std::optional<Region> RegionFromFlag();

// Runs the tries. Errors: the trigger socket cannot be reached or written.
absl::StatusOr<TriggerLatencyResult> MeasureTriggerLatency(
    const TriggerLatencyOptions& options, const LatencyViewer& viewer);

// The p-th percentile (0..100) by nearest rank below; 0 when empty.
double Percentile(std::vector<double> values, double p);

// One line for people, and the JSON object guest_bench.sh records
// (tries, missed, ms_p50, ms_p99, ms_min, ms_max, first_byte_ms_p50,
// flush_ms_p50, flush_ms_p99, each_ms).
std::string LatencyLine(const TriggerLatencyResult& result);
std::string LatencyJson(const TriggerLatencyResult& result);

}  // namespace vgpu::bench

#endif  // VGPU_TESTS_BENCH_TRIGGER_LATENCY_H_
