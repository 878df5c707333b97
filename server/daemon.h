// vgpu-displayd as a library: a checked configuration, then two phases.
//
//   Daemon::Open(config)  opens every listener (vhost-user socket, gRPC,
//                         metrics) and reads every file; starts none of our
//                         threads. Any error comes back as a Status with one
//                         clear line, and nothing is left behind.
//   daemon->Run()         starts the threads (device, signals, snapshot,
//                         demo guest), serves until SIGINT/SIGTERM or the
//                         configured duration, then stops and cleans up.
//
// Thread rules: Open and Run on one thread (main). Run blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "device/gpu/gpu_device.h"

namespace vgpu::server {

struct DaemonConfig {
  // vhost-user socket for QEMU; empty with `demo` uses a temporary one.
  std::string vhost_user_socket;
  gpu::GpuDeviceOptions device;
  std::string policy_name = "copy";  // for the start-up line
  bool mirror_to_qemu = false;
  // virtio-input devices' vhost-user sockets (QEMU: vhost-user-input-pci);
  // empty: none. With `demo`, an empty keyboard or tablet socket is a
  // temporary one the demo guest uses.
  std::string keyboard_socket, tablet_socket, mouse_socket;
  // Who may control input over gRPC (input.proto): a token callers send,
  // read from this file; client certificate common names (mutual TLS).
  std::string input_token_file;
  std::vector<std::string> input_allowed_clients;

  bool demo = false;
  std::string demo_scene = "demo";
  double demo_fps = 30;
  uint64_t demo_mode_every = 0;
  uint64_t demo_frames = 0;  // then the screen stays still; 0: forever

  // Zero: until a signal.
  absl::Duration duration = absl::ZeroDuration();
  std::string snapshot;  // PPM path, empty: off
  absl::Duration snapshot_interval = absl::Seconds(1);

  // gRPC: "host:port" or "unix:/path", empty: off.
  std::string grpc_listen = "127.0.0.1:50051";
  uint32_t max_viewers = 64;
  std::string tls_cert, tls_key, tls_client_ca;  // PEM files

  std::string metrics_listen;  // IPv4 host:port, empty: off
};

// Checks what can be checked without touching the system: required
// choices, ranges, flag combinations. Messages name the flag.
absl::Status ValidateConfig(const DaemonConfig& config);

class Daemon {
 public:
  // Validates `config`, reads the TLS files, claims the vhost-user socket
  // (OwnedUnixSocket: never a live one), and binds gRPC and metrics (a
  // port in use is an error, never shared).
  static absl::StatusOr<std::unique_ptr<Daemon>> Open(DaemonConfig config);
  ~Daemon();

  // Serves until stopped; returns the process exit code (0).
  int Run();

 private:
  struct State;
  explicit Daemon(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace vgpu::server
