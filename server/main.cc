// vgpu-displayd: the display server daemon. It serves a virtio-gpu device on
// a vhost-user socket (QEMU: -device vhost-user-gpu-pci), or with --demo a
// built-in synthetic guest that connects to that same socket, so it shows
// something without a VM. This file only turns flags into a DaemonConfig;
// server/daemon.h does the rest.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

#include "common/allocator.h"
#include "common/cli.h"
#include "common/status_macros.h"
#include "server/daemon.h"

ABSL_FLAG(std::string, vhost_user_socket, "",
          "Listen on this unix socket for a vhost-user front-end (QEMU's "
          "-chardev socket,path=... -device vhost-user-gpu-pci,chardev=...).");
ABSL_FLAG(std::string, keyboard_socket, "",
          "Serve a virtio-input keyboard on this vhost-user socket (QEMU: "
          "-chardev socket,id=kbd,path=... -device "
          "vhost-user-input-pci,chardev=kbd).");
ABSL_FLAG(std::string, tablet_socket, "",
          "Serve a virtio-input absolute tablet (pointer in scanout pixels, "
          "buttons, wheel) on this vhost-user socket.");
ABSL_FLAG(std::string, mouse_socket, "",
          "Serve a virtio-input relative mouse on this vhost-user socket.");
ABSL_FLAG(std::string, input_token_file, "",
          "A file holding a token: gRPC callers control input only when they "
          "send it (metadata \"authorization: Bearer <token>\"; vgpu-input "
          "--token_file).");
ABSL_FLAG(std::vector<std::string>, input_allowed_clients, {},
          "Client certificate common names allowed to control input "
          "(comma-separated; needs --tls_client_ca). Empty: any caller.");
ABSL_FLAG(bool, demo, false,
          "Run the built-in synthetic guest against our own socket (a "
          "temporary one when "
          "--vhost_user_socket is not given).");
ABSL_FLAG(std::string, demo_scene, "demo",
          "Demo scene: demo (a console with a title bar, colour bars and a "
          "typed boot log), console (one character per frame), scroll, video "
          "or cursor.");
ABSL_FLAG(double, demo_fps, 30, "Demo frames per second.");
ABSL_FLAG(uint64_t, demo_mode_every, 0,
          "The demo guest changes resolution every N frames as a DRM modeset "
          "does, cycling 800x600, 640x480, 1024x768 and --width x --height "
          "(0 = never).");
ABSL_FLAG(uint64_t, demo_frames, 0,
          "The demo guest draws this many frames, then leaves the screen "
          "still (0 = forever).");
ABSL_FLAG(uint32_t, width, 1280,
          "Display width in pixels reported to the guest (16..4095).");
ABSL_FLAG(uint32_t, height, 800,
          "Display height in pixels reported to the guest (16..4095).");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "Stop after this long (with a unit: 10s, 5m); 0 runs until SIGINT or "
          "SIGTERM.");
ABSL_FLAG(std::string, snapshot, "",
          "Write scanout 0 to this PPM file when it changes.");
ABSL_FLAG(absl::Duration, snapshot_interval, absl::Seconds(1),
          "How often the snapshot file may be rewritten.");
ABSL_FLAG(std::string, resource_policy, "copy",
          "2D resources: copy (host copy filled by TRANSFER), shared (guest "
          "pages read at "
          "FLUSH) or auto (copy below --auto_shared_min_kib).");
ABSL_FLAG(uint64_t, auto_shared_min_kib, 4096,
          "Size from which --resource_policy=auto shares.");
ABSL_FLAG(uint64_t, max_host_memory_mib, 256,
          "Host memory budget for guest resources, MiB (1..1048576; at least "
          "one frame of --width x --height).");
ABSL_FLAG(uint32_t, max_resources, 16384,
          "Most resources a guest may hold (1..1048576).");
ABSL_FLAG(
    std::string, grpc_listen, "127.0.0.1:50051",
    "Where the gRPC display service listens: host:port (IPv4, [IPv6] or a "
    "name; port 0 picks one) or unix:/path/to.sock. Empty disables it. "
    "A port or socket in use is an error. Off loopback, use TLS.");
ABSL_FLAG(uint32_t, max_viewers, 64, "Most viewer streams at once (1..4096).");
ABSL_FLAG(
    std::string, metrics_listen, "",
    "Serve Prometheus metrics at http://ADDRESS/metrics (IPv4 host:port, e.g. "
    "127.0.0.1:9464; port 0 picks one). Empty: off.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve gRPC over TLS (with --tls_key).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(
    std::string, tls_client_ca, "",
    "PEM CA bundle: require client certificates signed by it (mutual TLS).");
ABSL_FLAG(bool, mirror_to_qemu, false,
          "Also send the screen to QEMU over the vhost-user-gpu display socket "
          "(QEMU's "
          "screendump and UI then show it). Never blocks the device.");

namespace {

int64_t Clamp(uint64_t value) {
  return static_cast<int64_t>(
      std::min<uint64_t>(value, std::numeric_limits<int64_t>::max()));
}

absl::StatusOr<vgpu::server::DaemonConfig> ConfigFromFlags() {
  vgpu::server::DaemonConfig config;
  config.vhost_user_socket = absl::GetFlag(FLAGS_vhost_user_socket);
  config.keyboard_socket = absl::GetFlag(FLAGS_keyboard_socket);
  config.tablet_socket = absl::GetFlag(FLAGS_tablet_socket);
  config.mouse_socket = absl::GetFlag(FLAGS_mouse_socket);
  config.input_token_file = absl::GetFlag(FLAGS_input_token_file);
  config.input_allowed_clients = absl::GetFlag(FLAGS_input_allowed_clients);
  config.demo = absl::GetFlag(FLAGS_demo);
  config.demo_scene = absl::GetFlag(FLAGS_demo_scene);
  config.demo_fps = absl::GetFlag(FLAGS_demo_fps);
  config.demo_mode_every = absl::GetFlag(FLAGS_demo_mode_every);
  config.demo_frames = absl::GetFlag(FLAGS_demo_frames);
  config.device.displays = {
      {absl::GetFlag(FLAGS_width), absl::GetFlag(FLAGS_height), true}};
  config.policy_name = absl::GetFlag(FLAGS_resource_policy);
  if (config.policy_name == "copy") {
    config.device.policy = vgpu::gpu::ResourcePolicy::kCopy;
  } else if (config.policy_name == "shared") {
    config.device.policy = vgpu::gpu::ResourcePolicy::kShared;
  } else if (config.policy_name == "auto") {
    config.device.policy = vgpu::gpu::ResourcePolicy::kAuto;
  } else {
    return absl::InvalidArgumentError(
        "--resource_policy must be copy, shared or auto (got '" +
        config.policy_name + "')");
  }
  // Ranges are checked on the MiB / KiB values, before shifting.
  const uint64_t memory_mib = absl::GetFlag(FLAGS_max_host_memory_mib);
  const uint64_t shared_min_kib = absl::GetFlag(FLAGS_auto_shared_min_kib);
  VGPU_RETURN_IF_ERROR(vgpu::cli::CheckRange("max_host_memory_mib",
                                             Clamp(memory_mib), 1, 1 << 20));
  VGPU_RETURN_IF_ERROR(vgpu::cli::CheckRange(
      "auto_shared_min_kib", Clamp(shared_min_kib), 0, int64_t{1} << 30));
  config.device.max_host_memory = memory_mib << 20;
  config.device.auto_shared_min_bytes = shared_min_kib << 10;
  config.device.max_resources = absl::GetFlag(FLAGS_max_resources);
  config.mirror_to_qemu = absl::GetFlag(FLAGS_mirror_to_qemu);
  config.duration = absl::GetFlag(FLAGS_duration);
  config.snapshot = absl::GetFlag(FLAGS_snapshot);
  config.snapshot_interval = absl::GetFlag(FLAGS_snapshot_interval);
  config.grpc_listen = absl::GetFlag(FLAGS_grpc_listen);
  config.max_viewers = absl::GetFlag(FLAGS_max_viewers);
  config.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  config.tls_key = absl::GetFlag(FLAGS_tls_key);
  config.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  config.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr absl::string_view kName = "vgpu-displayd";
  vgpu::cli::ParseOrExit(
      argc, argv,
      {kName,
       "remote display server for virtual machines.\n"
       "  vgpu-displayd --vhost_user_socket=/run/vgpu.sock   # serve QEMU\n"
       "  vgpu-displayd --demo --snapshot=screen.ppm          # built-in "
       "guest\n"
       "Exit codes: 0 stopped (signal or --duration), 2 a flag or listener "
       "error at start-up (nothing left running or behind)."});
  vgpu::KeepLargeBuffersInHeap();
  absl::StatusOr<vgpu::server::DaemonConfig> config = ConfigFromFlags();
  if (!config.ok())
    return vgpu::cli::UsageError(kName, config.status().message());
  auto daemon = vgpu::server::Daemon::Open(*std::move(config));
  if (!daemon.ok())
    return vgpu::cli::UsageError(kName, daemon.status().message());
  return (*daemon)->Run();
}
