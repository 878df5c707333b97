// vgpu-displayd: the display server daemon. With --demo it serves a
// built-in synthetic guest, so it shows something without a VM.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "server/demo_guest.h"
#include "server/snapshot.h"

ABSL_FLAG(bool, demo, false, "Serve the built-in synthetic demo guest.");
ABSL_FLAG(std::string, demo_scene, "console", "Demo scene: console, scroll, video or cursor.");
ABSL_FLAG(uint32_t, width, 1280, "Demo display width in pixels.");
ABSL_FLAG(uint32_t, height, 800, "Demo display height in pixels.");
ABSL_FLAG(double, fps, 30, "Demo frames per second.");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "Stop after this long (e.g. 10s); 0 runs until SIGINT/SIGTERM.");
ABSL_FLAG(std::string, snapshot, "",
          "Write the scanout to this PPM file once a second (empty: off).");
ABSL_FLAG(std::string, resource_policy, "copy",
          "2D resources: copy (host copy filled by TRANSFER), shared (read guest pages at "
          "FLUSH) or auto.");
ABSL_FLAG(uint64_t, max_host_memory_mib, 256, "Host memory budget for guest resources, MiB.");

namespace {

volatile std::sig_atomic_t stop_requested = 0;

void RequestStop(int) { stop_requested = 1; }

int Run() {
  using vgpu::server::DemoGuest;
  if (!absl::GetFlag(FLAGS_demo)) {
    std::fprintf(stderr,
                 "vgpu-displayd: no guest to serve. Pass --demo for the built-in synthetic "
                 "guest (the vhost-user socket for QEMU is not implemented yet).\n");
    return 2;
  }
  vgpu::server::DemoGuestOptions options;
  options.scene = absl::GetFlag(FLAGS_demo_scene);
  options.width = absl::GetFlag(FLAGS_width);
  options.height = absl::GetFlag(FLAGS_height);
  std::string policy = absl::GetFlag(FLAGS_resource_policy);
  if (policy == "copy") {
    options.device.policy = vgpu::gpu::ResourcePolicy::kCopy;
  } else if (policy == "shared") {
    options.device.policy = vgpu::gpu::ResourcePolicy::kShared;
  } else if (policy == "auto") {
    options.device.policy = vgpu::gpu::ResourcePolicy::kAuto;
  } else {
    std::fprintf(stderr, "vgpu-displayd: --resource_policy must be copy, shared or auto\n");
    return 2;
  }
  options.device.max_host_memory = absl::GetFlag(FLAGS_max_host_memory_mib) << 20;
  double fps = absl::GetFlag(FLAGS_fps);
  if (!(fps > 0 && fps <= 1000)) {
    std::fprintf(stderr, "vgpu-displayd: --fps must be in (0, 1000]\n");
    return 2;
  }
  auto demo = DemoGuest::Create(options);
  if (!demo.ok()) {
    std::fprintf(stderr, "vgpu-displayd: %s\n", std::string(demo.status().message()).c_str());
    return 1;
  }
  std::string snapshot = absl::GetFlag(FLAGS_snapshot);
  if (!snapshot.empty()) {
    std::error_code error;
    std::filesystem::path parent = std::filesystem::path(snapshot).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
  }
  std::signal(SIGINT, RequestStop);
  std::signal(SIGTERM, RequestStop);
  VGPU_LOG(INFO) << "demo guest: scene " << options.scene << ", " << options.width << "x"
                 << options.height << " at " << fps << " fps"
                 << (snapshot.empty() ? "" : ", snapshots to " + snapshot);
  const absl::Duration period = absl::Seconds(1.0 / fps);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const absl::Time start = absl::Now();
  absl::Time next_report = start + absl::Seconds(1);
  absl::Time next_tick = start;
  uint64_t index = 0, frames_at_report = 0;
  while (!stop_requested && (duration == absl::ZeroDuration() || absl::Now() - start < duration)) {
    if (absl::Status status = (*demo)->Tick(index++); !status.ok()) {
      VGPU_LOG(ERROR) << "demo guest stopped: " << status.message();
      return 1;
    }
    absl::Time now = absl::Now();
    if (now >= next_report) {
      const vgpu::guest_sim::RecordingSink& sink = (*demo)->sink();
      VGPU_LOG(INFO) << "frames " << sink.frame_count << " (+" << sink.frame_count - frames_at_report
                     << "/s), damage pixels " << (*demo)->damage_pixels() << ", host memory "
                     << ((*demo)->device().host_memory_used() >> 10) << " KiB";
      frames_at_report = sink.frame_count;
      if (!snapshot.empty() && sink.latest) {
        if (absl::Status written = vgpu::server::WritePpm(*sink.latest, snapshot); !written.ok()) {
          VGPU_LOG(WARNING) << written.message();
        }
      }
      next_report += absl::Seconds(1);
    }
    next_tick += period;
    absl::SleepFor(next_tick - absl::Now());
  }
  if (!snapshot.empty() && (*demo)->sink().latest) {
    (void)vgpu::server::WritePpm(*(*demo)->sink().latest, snapshot);
  }
  VGPU_LOG(INFO) << "stopped after " << index << " guest frames";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("vgpu-displayd: remote display server for virtual machines");
  absl::ParseCommandLine(argc, argv);
  return Run();
}
