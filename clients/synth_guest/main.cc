// vgpu-synth-guest: plays VMM and guest driver against a vhost-user GPU
// back-end (vgpu-displayd or QEMU's vhost-user-gpu) and reports the frame
// rate it reached.
//
//   vgpu-synth-guest --socket=/tmp/vgpu.sock --scene=video --frames=300 --fps=0
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "common/cli.h"
#include "common/log.h"
#include "device/guest_sim/frontend.h"
#include "device/guest_sim/guest_input.h"
#include "device/guest_sim/scene_player.h"

ABSL_FLAG(std::string, socket, "", "vhost-user socket of the GPU back-end.");
ABSL_FLAG(std::string, scene, "console",
          "demo, console, scroll, video or cursor.");
ABSL_FLAG(uint32_t, width, 1920, "Framebuffer width in pixels.");
ABSL_FLAG(uint32_t, height, 1080, "Framebuffer height in pixels.");
ABSL_FLAG(double, fps, 0,
          "Frames per second to aim for; 0 = as fast as the back-end allows.");
ABSL_FLAG(uint64_t, frames, 300, "Frames to present (0 = until --duration).");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "Stop after this long (0 = off).");
ABSL_FLAG(bool, blob, false,
          "Use guest blob resources if the back-end offers them.");
ABSL_FLAG(uint64_t, mode_every, 0,
          "Change resolution every N frames as a DRM modeset does, cycling "
          "800x600, 640x480, 1024x768 and --width x --height (0 = never).");
ABSL_FLAG(std::string, keyboard_socket, "",
          "Also drive the back-end's virtio-input keyboard on this vhost-user "
          "socket: keys typed into it reach the scene (the demo scene echoes "
          "them).");
ABSL_FLAG(std::string, tablet_socket, "",
          "Also drive the back-end's virtio-input tablet on this socket.");
ABSL_FLAG(absl::Duration, linger, absl::ZeroDuration(),
          "Keep the connection open this long after reporting (lets a harness "
          "sample the "
          "back-end before it sees the VMM go away).");

namespace vgpu {
namespace {

constexpr absl::string_view kName = "vgpu-synth-guest";

int Run() {
  std::string socket = absl::GetFlag(FLAGS_socket);
  if (socket.empty()) {
    return cli::UsageError(kName, "--socket is required");
  }
  const uint64_t frames = absl::GetFlag(FLAGS_frames);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const double fps = absl::GetFlag(FLAGS_fps);
  if (frames == 0 && duration == absl::ZeroDuration()) {
    return cli::UsageError(kName, "give --frames or --duration");
  }
  if (duration < absl::ZeroDuration() || !(fps >= 0 && fps <= 1000)) {
    return cli::UsageError(kName, "--duration must be >= 0 and --fps 0..1000");
  }
  synth::ScenePlayerOptions options;
  options.scene = absl::GetFlag(FLAGS_scene);
  options.width = absl::GetFlag(FLAGS_width);
  options.height = absl::GetFlag(FLAGS_height);
  options.use_blob = absl::GetFlag(FLAGS_blob);
  options.mode_every = absl::GetFlag(FLAGS_mode_every);
  synth::FrontendOptions frontend_options;
  frontend_options.socket_path = socket;
  frontend_options.use_blob = absl::GetFlag(FLAGS_blob);
  frontend_options.display_width = options.width;
  frontend_options.display_height = options.height;
  frontend_options.guest.ram_bytes =
      uint64_t{options.width} * options.height * 4 + (64ull << 20);
  auto frontend = synth::VhostUserFrontend::Connect(frontend_options);
  if (!frontend.ok()) {
    std::fprintf(stderr, "vgpu-synth-guest: %s\n",
                 std::string(frontend.status().message()).c_str());
    return 1;
  }
  auto demo = synth::ScenePlayer::Create(options, &(*frontend)->guest());
  if (!demo.ok()) {
    std::fprintf(stderr, "vgpu-synth-guest: %s\n",
                 std::string(demo.status().message()).c_str());
    return 1;
  }
  // The guest's keyboard and tablet: between frames (and while it lingers)
  // it takes their input as it comes.
  std::unique_ptr<synth::GuestInput> input;
  synth::GuestInputOptions input_options;
  input_options.keyboard_socket = absl::GetFlag(FLAGS_keyboard_socket);
  input_options.tablet_socket = absl::GetFlag(FLAGS_tablet_socket);
  if (!input_options.keyboard_socket.empty() ||
      !input_options.tablet_socket.empty()) {
    absl::StatusOr<std::unique_ptr<synth::GuestInput>> connected =
        synth::GuestInput::Connect(input_options);
    if (!connected.ok()) {
      std::fprintf(stderr, "vgpu-synth-guest: %s\n",
                   std::string(connected.status().message()).c_str());
      return 1;
    }
    input = *std::move(connected);
  }
  auto wait_until = [&](absl::Time until) -> absl::Status {
    if (input == nullptr) {
      absl::SleepFor(until - absl::Now());
      return absl::OkStatus();
    }
    return input->Serve(until, demo->get()).status();
  };
  // Frame 0 draws the whole scene; timing starts after it.
  if (absl::Status status = (*demo)->Tick(0); !status.ok()) {
    std::fprintf(stderr, "vgpu-synth-guest: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  const absl::Time start = absl::Now();
  absl::Time next = start;
  uint64_t presented = 0;
  while ((frames == 0 || presented < frames) &&
         (duration == absl::ZeroDuration() || absl::Now() - start < duration)) {
    if (absl::Status status = (*demo)->Tick(presented + 1); !status.ok()) {
      std::fprintf(stderr, "vgpu-synth-guest: %s\n",
                   std::string(status.message()).c_str());
      return 1;
    }
    ++presented;
    if (fps > 0) {
      next += absl::Seconds(1.0 / fps);
      if (absl::Status status = wait_until(next); !status.ok()) {
        std::fprintf(stderr, "vgpu-synth-guest: %s\n",
                     std::string(status.message()).c_str());
        return 1;
      }
    }
  }
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const synth::DisplayChannelStats& display = (*frontend)->display_stats();
  std::printf(
      "scene=%s size=%ux%u frames=%llu seconds=%.3f fps=%.1f damage_mpix=%.1f "
      "display_updates=%llu display_mib=%.1f\n",
      options.scene.c_str(), options.width, options.height,
      static_cast<unsigned long long>(presented), seconds,
      static_cast<double>(presented) / seconds,
      static_cast<double>((*demo)->damage_pixels()) / 1e6,
      static_cast<unsigned long long>(display.updates.load()),
      static_cast<double>(display.update_bytes.load()) / 1048576.0);
  std::fflush(stdout);
  if (absl::Status status =
          wait_until(absl::Now() + absl::GetFlag(FLAGS_linger));
      !status.ok()) {
    std::fprintf(stderr, "vgpu-synth-guest: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace vgpu

int main(int argc, char** argv) {
  vgpu::cli::ParseOrExit(
      argc, argv,
      {vgpu::kName,
       "a synthetic guest for vhost-user GPU back-ends.\n"
       "Exit codes: 0 done, 1 the back-end failed, 2 bad flags."});
  vgpu::SetMinLogSeverity(vgpu::LogSeverity::kWarning);
  return vgpu::Run();
}
