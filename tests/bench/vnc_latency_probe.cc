// vnc_latency_probe: trigger-to-pixel latency as a native VNC viewer sees
// it, for the real-guest benchmark (guest_bench.sh). A libvncclient viewer
// (Tight, JPEG quality 6 as noVNC asks, CopyRect) writes a trigger line to
// the guest's serial console and times the update after which most of the
// marker band has changed, exactly as stream_probe does over gRPC.
// rfb_probe.py measures the same in Python; its per-update pixel check
// takes milliseconds, and a marker that comes in several updates (the guest
// flushes as it writes) is then timed late by the client's own backlog.
//
//   vnc_latency_probe --port=5901 --trigger_path=serial.sock
//       --region=0,0,1280,32 --tries=40 --json=out.json  (one line)
// Exit codes: 0 every try seen, 1 connection or trigger failed, 2 bad
// flags, 6 a try saw nothing in 10 s.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "clients/vnc/test_viewer.h"
#include "common/cli.h"
#include "tests/bench/trigger_latency.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "VNC server host.");
ABSL_FLAG(uint32_t, port, 5900, "VNC server port.");
ABSL_FLAG(std::string, encodings, "tight copyrect",
          "Encodings to ask for, preferred first (libvncclient names).");
ABSL_FLAG(int32_t, quality, 6, "Tight JPEG quality level 0..9, -1 none.");
ABSL_FLAG(std::string, json, "", "Also write the result as JSON here.");

namespace {

constexpr absl::string_view kName = "vnc_latency_probe";

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "vnc_latency_probe: %s\n", message.c_str());
  return code;
}

// Every 4th pixel of every 4th row of `region`, R, G, B (stream_probe's
// sampling); empty when the region is not inside the framebuffer.
std::vector<uint8_t> Sample(const vgpu::vnc::TestViewer& viewer,
                            const vgpu::bench::Region& region) {
  std::vector<uint8_t> out;
  if (uint64_t{region.x} + region.width >
          static_cast<uint64_t>(viewer.width()) ||
      uint64_t{region.y} + region.height >
          static_cast<uint64_t>(viewer.height())) {
    return out;
  }
  for (uint32_t y = region.y; y < region.y + region.height; y += 4) {
    for (uint32_t x = region.x; x < region.x + region.width; x += 4) {
      const uint32_t pixel =
          viewer.PixelAt(static_cast<int>(x), static_cast<int>(y));
      out.push_back(static_cast<uint8_t>(pixel >> 16));
      out.push_back(static_cast<uint8_t>(pixel >> 8));
      out.push_back(static_cast<uint8_t>(pixel));
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  vgpu::cli::ParseOrExit(
      argc, argv,
      {kName,
       "trigger-to-pixel latency through a VNC server, as a native viewer "
       "sees it.\n"
       "  vnc_latency_probe --port=5901 --trigger_path=serial.sock "
       "--region=0,0,1280,32"});
  const std::optional<vgpu::bench::Region> region =
      vgpu::bench::RegionFromFlag();
  if (!region) return vgpu::cli::UsageError(kName, "--region needs X,Y,W,H");
  if (absl::Status range =
          vgpu::cli::CheckRange("port", absl::GetFlag(FLAGS_port), 1, 65535);
      !range.ok()) {
    return vgpu::cli::UsageError(kName, range.message());
  }
  auto viewer = vgpu::vnc::TestViewer::Connect(
      {.host = absl::GetFlag(FLAGS_host),
       .port = static_cast<uint16_t>(absl::GetFlag(FLAGS_port)),
       .encodings = absl::GetFlag(FLAGS_encodings),
       .quality_level = absl::GetFlag(FLAGS_quality)});
  if (viewer == nullptr) return Fail("cannot connect", 1);
  if (!viewer->Until([&] { return viewer->updates() > 0; }))
    return Fail("no first update", 6);
  if (Sample(*viewer, *region).empty()) {
    return Fail("--region is outside the " + std::to_string(viewer->width()) +
                    "x" + std::to_string(viewer->height()) + " framebuffer",
                2);
  }
  vgpu::bench::LatencyViewer probe = {
      .idle =
          [&](absl::Duration gap) {
            const absl::Time end = absl::Now() + gap;
            viewer->Until([&] { return absl::Now() >= end; },
                          gap + absl::Seconds(1));
          },
      .sample = [&] { return Sample(*viewer, *region); },
      .wait = [&](const std::vector<uint8_t>& before,
                  absl::Time deadline) -> std::optional<vgpu::bench::MarkSeen> {
        // Checked after each message the viewer has handled (an update
        // decoded into its framebuffer): the time then is the update's.
        absl::Time done;
        uint64_t checked = viewer->updates();
        const bool seen = viewer->Until(
            [&] {
              if (viewer->updates() == checked) return false;
              checked = viewer->updates();
              done = absl::Now();
              return vgpu::bench::MostlyChanged(before,
                                                Sample(*viewer, *region));
            },
            deadline - absl::Now());
        if (!seen) return std::nullopt;
        return vgpu::bench::MarkSeen{.first = done, .done = done};
      }};
  absl::StatusOr<vgpu::bench::TriggerLatencyResult> result =
      vgpu::bench::MeasureTriggerLatency(
          vgpu::bench::TriggerLatencyOptionsFromFlags(), probe);
  if (!result.ok()) return Fail(std::string(result.status().message()), 1);
  std::printf("%s\n", vgpu::bench::LatencyLine(*result).c_str());
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    FILE* file = std::fopen(path.c_str(), "w");
    if (file == nullptr) return Fail("cannot write " + path, 1);
    std::fprintf(file, "%s\n", vgpu::bench::LatencyJson(*result).c_str());
    std::fclose(file);
  }
  return result->missed == 0 ? 0 : 6;
}
