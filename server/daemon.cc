#include "server/daemon.h"

#include <prometheus/exposer.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.pb.h"
#include <grpc/support/log.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "common/cli.h"
#include "common/listen_address.h"
#include "common/log.h"
#include "common/notification.h"
#include "common/status_macros.h"
#include "common/stop_signals.h"
#include "common/unix_socket.h"
#include "device/gpu/wire_names.h"
#include "device/guest_sim/frontend.h"
#include "device/guest_sim/guest_input.h"
#include "device/guest_sim/scene_player.h"
#include "device/guest_sim/scenes.h"
#include "device/input/input_device.h"
#include "device/vhost_user/gpu_vhost_device.h"
#include "device/vhost_user/server.h"
#include "server/frame_store.h"
#include "server/grpc/display_service.h"
#include "server/grpc/unix_listener.h"
#include "server/input/input_service.h"
#include "server/metrics.h"
#include "server/snapshot.h"
#include "server/worker_pool.h"

namespace vgpu::server {
namespace {

constexpr char kDisplayServiceName[] = "vgpu.display.v1.Display";

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// gRPC's own log lines (TLS handshake failures of clients, ...) go through
// our log as warnings; its informational chatter is dropped.
void ForwardGrpcLog(gpr_log_func_args* args) {
  if (args->severity != GPR_LOG_SEVERITY_ERROR) return;
  VGPU_LOG(WARNING) << "grpc: " << args->message;
}

// Rewrites the snapshot file whenever scanout 0 shows a new frame.
void SnapshotLoop(const FrameStore& store, const std::string& path,
                  absl::Duration interval, const std::atomic<bool>& stop) {
  const gpu::Frame* written = nullptr;
  uint64_t written_sequence = 0;
  while (!stop) {
    gpu::FramePtr frame = store.Latest(0);
    if (frame &&
        (frame.get() != written || frame->sequence() != written_sequence)) {
      if (absl::Status status = WritePpm(*frame, path); !status.ok()) {
        VGPU_LOG(WARNING) << status.message();
      }
      written = frame.get();
      written_sequence = frame->sequence();
    }
    absl::SleepFor(interval);
  }
}

// The built-in guest: a vhost-user front-end on our own socket, with a
// keyboard and a tablet on ours too when `input` names them.
void DemoLoop(const std::string& socket_path,
              const synth::ScenePlayerOptions& options,
              synth::GuestInputOptions input_options, double fps,
              uint64_t frames, const std::atomic<bool>& stop) {
  synth::FrontendOptions frontend_options;
  frontend_options.socket_path = socket_path;
  frontend_options.cancel = &stop;
  frontend_options.display_width = options.width;
  frontend_options.display_height = options.height;
  frontend_options.guest.ram_bytes =
      uint64_t{options.width} * options.height * 4 + (32ull << 20);
  auto frontend = synth::VhostUserFrontend::Connect(frontend_options);
  if (!frontend.ok()) {
    VGPU_LOG(ERROR) << "demo guest cannot connect: "
                    << frontend.status().message();
    return;
  }
  auto demo = synth::ScenePlayer::Create(options, &(*frontend)->guest());
  if (!demo.ok()) {
    VGPU_LOG(ERROR) << "demo guest: " << demo.status().message();
    return;
  }
  input_options.cancel = &stop;
  std::unique_ptr<synth::GuestInput> input;
  if (!input_options.keyboard_socket.empty() ||
      !input_options.tablet_socket.empty()) {
    absl::StatusOr<std::unique_ptr<synth::GuestInput>> connected =
        synth::GuestInput::Connect(input_options);
    if (connected.ok()) {
      input = *std::move(connected);
    } else {
      VGPU_LOG(ERROR) << "demo guest: no input: "
                      << connected.status().message();
    }
  }
  VGPU_LOG(INFO) << "demo guest: scene " << options.scene << ", "
                 << options.width << "x" << options.height << " at " << fps
                 << " fps" << (input ? ", with keyboard and tablet" : "");
  // Between frames the guest takes input as it comes and draws its echo.
  auto wait_until = [&](absl::Time until) -> absl::Status {
    if (input == nullptr) {
      absl::SleepFor(until - absl::Now());
      return absl::OkStatus();
    }
    return input->Serve(until, demo->get()).status();
  };
  const absl::Duration period = absl::Seconds(1.0 / fps);
  absl::Time next = absl::Now();
  for (uint64_t index = 0; !stop && (frames == 0 || index < frames); ++index) {
    absl::Status status = (*demo)->Tick(index);
    next += period;
    if (status.ok()) status = wait_until(next);
    if (!status.ok()) {
      if (!stop) VGPU_LOG(ERROR) << "demo guest stopped: " << status.message();
      return;
    }
  }
  // A still screen after --demo_frames: the guest stays connected (its
  // going would reset the device and blank the scanout). Said, so a script
  // knows the screen is final. Typed keys still echo.
  if (!stop) {
    VGPU_LOG(INFO) << "demo guest: " << frames
                   << " frames drawn; the screen stays still";
  }
  while (!stop) {
    if (absl::Status status = wait_until(absl::Now() + absl::Milliseconds(50));
        !status.ok()) {
      if (!stop) VGPU_LOG(ERROR) << "demo guest stopped: " << status.message();
      return;
    }
  }
}

// Device and encode-cache figures, read at scrape time (the device's on its
// own thread, which owns them).
// The virtio-input devices' counters (thread-safe to read), by device.
void AddInputFamilies(const std::vector<const input::InputDevice*>& inputs,
                      std::vector<prometheus::MetricFamily>* families) {
  using Samples =
      std::vector<std::pair<std::map<std::string, std::string>, double>>;
  struct Figure {
    const char* name;
    const char* help;
    uint64_t input::InputDeviceStats::*field;
  };
  static constexpr Figure kFigures[] = {
      {"vgpu_input_packets_total",
       "Input packets accepted from viewers (SYN_REPORT-ended).",
       &input::InputDeviceStats::packets},
      {"vgpu_input_events_delivered_total",
       "Input events written into the guest's event queue.",
       &input::InputDeviceStats::events_delivered},
      {"vgpu_input_motion_merged_total",
       "Pointer motion packets merged into one waiting for the guest.",
       &input::InputDeviceStats::motion_merged},
      {"vgpu_input_motion_dropped_total",
       "Pointer motion packets dropped: the guest took no input.",
       &input::InputDeviceStats::motion_dropped},
      {"vgpu_input_packets_refused_total",
       "Key and button packets refused: the guest took no input.",
       &input::InputDeviceStats::packets_refused},
      {"vgpu_input_events_discarded_total",
       "Events waiting when the guest reset or went away.",
       &input::InputDeviceStats::events_discarded},
      {"vgpu_input_status_events_total",
       "Events the guest sent on the status queue (LEDs).",
       &input::InputDeviceStats::status_events},
      {"vgpu_input_guest_errors_total",
       "Malformed status buffers and event buffers under 8 bytes.",
       &input::InputDeviceStats::status_malformed},
  };
  std::vector<input::InputDeviceStats> stats;
  Samples attached;
  for (const input::InputDevice* device : inputs) {
    stats.push_back(device->stats());
    attached.push_back(
        {{{"device", std::string(input::KindName(device->spec().kind))}},
         device->attached() ? 1.0 : 0.0});
  }
  for (const Figure& figure : kFigures) {
    Samples samples;
    for (size_t i = 0; i < inputs.size(); ++i) {
      double value = static_cast<double>(stats[i].*figure.field);
      if (figure.field == &input::InputDeviceStats::status_malformed)
        value += static_cast<double>(stats[i].short_buffers);
      samples.push_back(
          {{{"device", std::string(input::KindName(inputs[i]->spec().kind))}},
           value});
    }
    families->push_back(CounterFamily(figure.name, figure.help, samples));
  }
  families->push_back(GaugeFamily("vgpu_input_attached",
                                  "1 while a guest driver runs the device.",
                                  attached));
}

std::shared_ptr<ScrapeCollector> MakeScrapeCollector(
    DisplayService* service, const FrameStore* store, gpu::GpuDevice* device,
    vhost_user::EventLoop* loop,
    const std::vector<const input::InputDevice*>& inputs) {
  return std::make_shared<ScrapeCollector>([service, store, device, loop,
                                            inputs]() {
    auto stats = std::make_shared<std::optional<gpu::DeviceStats>>();
    auto done = std::make_shared<Notification>();
    loop->Post([device, stats, done] {
      *stats = device->stats();
      done->Notify();
    });
    std::vector<prometheus::MetricFamily> families;
    if (done->WaitForNotificationWithTimeout(absl::Seconds(1)) &&
        stats->has_value()) {
      std::vector<std::pair<std::map<std::string, std::string>, double>>
          commands, errors;
      for (const auto& [type, count] : (*stats)->commands) {
        commands.push_back({{{"command", gpu::wire::CommandName(type)}},
                            static_cast<double>(count)});
      }
      for (const auto& [code, count] : (*stats)->errors) {
        errors.push_back({{{"response", gpu::wire::ResponseName(code)}},
                          static_cast<double>(count)});
      }
      families.push_back(CounterFamily(
          "vgpu_device_commands_total",
          "virtio-gpu commands handled, by command (virtio spec name).",
          commands));
      families.push_back(CounterFamily(
          "vgpu_device_errors_total",
          "virtio-gpu error responses, by response (virtio spec name).",
          errors));
    }
    EncodeCacheStats cache = service->cache().stats();
    families.push_back(CounterFamily(
        "vgpu_frames_published_total", "Frames the device published.",
        {{{}, static_cast<double>(store->frame_count())}}));
    families.push_back(CounterFamily("vgpu_encode_cache_hits_total",
                                     "Tile runs served from the encode cache.",
                                     {{{}, static_cast<double>(cache.hits)}}));
    families.push_back(
        CounterFamily("vgpu_encode_cache_misses_total", "Tile runs encoded.",
                      {{{}, static_cast<double>(cache.misses)}}));
    families.push_back(CounterFamily("vgpu_solid_runs_total",
                                     "Tile runs sent as one colour.",
                                     {{{}, static_cast<double>(cache.solid)}}));
    if (!inputs.empty()) AddInputFamilies(inputs, &families);
    return families;
  });
}

}  // namespace

absl::Status ValidateConfig(const DaemonConfig& config) {
  if (config.vhost_user_socket.empty() && !config.demo) {
    return Invalid(
        "nothing to serve: pass --vhost_user_socket=PATH (for QEMU) and/or "
        "--demo");
  }
  for (const gpu::DisplayConfig& display : config.device.displays) {
    if (display.width < 16 || display.width > 4095 || display.height < 16 ||
        display.height > 4095) {
      return Invalid(absl::StrCat("display mode ", display.width, "x",
                                  display.height,
                                  " outside 16..4095 (--width, --height)"));
    }
  }
  const uint64_t frame_bytes = uint64_t{config.device.displays[0].width} *
                               config.device.displays[0].height * 4;
  const uint64_t budget_mib = config.device.max_host_memory >> 20;
  if (budget_mib < 1 || budget_mib > (1u << 20)) {
    return Invalid(absl::StrCat("--max_host_memory_mib must be 1..", 1u << 20,
                                " (got ", budget_mib, ")"));
  }
  if (config.device.max_host_memory < frame_bytes) {
    return Invalid(absl::StrCat(
        "--max_host_memory_mib=", budget_mib, " cannot hold one ",
        config.device.displays[0].width, "x", config.device.displays[0].height,
        " frame (", (frame_bytes + (1 << 20) - 1) >> 20, " MiB)"));
  }
  if (config.device.max_resources < 1 ||
      config.device.max_resources > (1u << 20)) {
    return Invalid(absl::StrCat("--max_resources must be 1..", 1u << 20,
                                " (got ", config.device.max_resources, ")"));
  }
  if (config.device.auto_shared_min_bytes > (uint64_t{1} << 40)) {
    return Invalid("--auto_shared_min_kib must be at most 1073741824 (1 TiB)");
  }
  if (config.duration < absl::ZeroDuration()) {
    return Invalid(
        absl::StrCat("--duration must be 0 (run until stopped) or more (got ",
                     absl::FormatDuration(config.duration), ")"));
  }
  if (config.snapshot_interval < absl::Milliseconds(10)) {
    return Invalid("--snapshot_interval must be at least 10ms");
  }
  if (!(config.demo_fps > 0 && config.demo_fps <= 1000)) {
    return Invalid(absl::StrCat("--demo_fps must be in (0, 1000] (got ",
                                config.demo_fps, ")"));
  }
  const std::vector<std::string>& scenes = synth::SceneNames();
  if (std::find(scenes.begin(), scenes.end(), config.demo_scene) ==
      scenes.end()) {
    return Invalid(absl::StrCat("--demo_scene must be one of ",
                                absl::StrJoin(scenes, ", "), " (got '",
                                config.demo_scene, "')"));
  }
  if (config.max_viewers < 1 || config.max_viewers > 4096) {
    return Invalid(absl::StrCat("--max_viewers must be 1..4096 (got ",
                                config.max_viewers, ")"));
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return Invalid("--tls_cert and --tls_key go together");
  }
  if (!config.tls_client_ca.empty() && config.tls_cert.empty()) {
    return Invalid("--tls_client_ca needs --tls_cert and --tls_key");
  }
  // Every socket is its own.
  std::vector<std::pair<std::string, std::string>> paths = {
      {"--vhost_user_socket", config.vhost_user_socket},
      {"--keyboard_socket", config.keyboard_socket},
      {"--tablet_socket", config.tablet_socket},
      {"--mouse_socket", config.mouse_socket}};
  if (absl::StartsWith(config.grpc_listen, "unix:"))
    paths.emplace_back("--grpc_listen", config.grpc_listen.substr(5));
  for (size_t i = 0; i < paths.size(); ++i) {
    for (size_t j = i + 1; j < paths.size(); ++j) {
      if (!paths[i].second.empty() && paths[i].second == paths[j].second) {
        return Invalid(absl::StrCat(paths[i].first, " and ", paths[j].first,
                                    " are the same path"));
      }
    }
  }
  if (!config.input_allowed_clients.empty() && config.tls_client_ca.empty()) {
    return Invalid(
        "--input_allowed_clients names client certificates: it needs "
        "--tls_client_ca");
  }
  if (!config.tls_cert.empty() && config.grpc_listen.empty()) {
    return Invalid("--tls_cert is for gRPC, but --grpc_listen is empty");
  }
  return absl::OkStatus();
}

// Everything the daemon owns, in construction order (destroyed in reverse).
struct Daemon::State {
  DaemonConfig config;
  FrameStore store;
  std::optional<vhost_user::DisplayMirror> mirror;
  std::unique_ptr<gpu::GpuDevice> device;
  std::string temp_dir;                        // removed last
  std::filesystem::path made_snapshot_folder;  // removed unless Run started
  bool running = false;
  // The device thread's loop (Run's thread becomes it), and the devices'
  // vhost-user sockets served on it.
  std::unique_ptr<vhost_user::EventLoop> device_loop;
  std::optional<vhost_user::GpuVhostDevice> gpu_vhost;  // the GPU on vhost-user
  std::unique_ptr<vhost_user::VhostUserServer> vhost_user;
  // virtio-input: keyboard, tablet, mouse (null when not served).
  struct InputSlot {
    std::unique_ptr<input::InputDevice> device;
    std::unique_ptr<vhost_user::VhostUserServer> server;
    std::string socket;
  };
  std::array<InputSlot, 3> inputs;
  std::unique_ptr<WorkerPool> workers;
  std::unique_ptr<DisplayService> display_service;
  std::unique_ptr<InputService> input_service;
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<UnixSocketListener> unix_listener;
  std::unique_ptr<OwnedUnixSocket> tls_unix_socket;  // gRPC's, with TLS
  std::string grpc_where;
  std::shared_ptr<ScrapeCollector> scrape_collector;
  std::unique_ptr<prometheus::Exposer> exposer;
  // Said by Run, once everything is open: a failed start says one thing.
  std::vector<std::string> startup_info, startup_warnings;

  ~State() {
    exposer.reset();
    unix_listener.reset();
    grpc_server.reset();
    tls_unix_socket.reset();
    display_service.reset();
    for (InputSlot& slot : inputs) {
      if (slot.device) slot.device->set_observer(nullptr);
    }
    input_service.reset();
    workers.reset();
    vhost_user.reset();
    gpu_vhost.reset();
    for (InputSlot& slot : inputs) {
      slot.server.reset();
      slot.device.reset();
    }
    device_loop.reset();
    device.reset();
    if (!running && !made_snapshot_folder.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(made_snapshot_folder, ignored);
    }
    if (!temp_dir.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(temp_dir, ignored);
    }
  }

  // Phase 1, no threads: parse, read files, claim sockets, probe ports.
  absl::Status PrepareGrpc();
  absl::StatusOr<ListenAddress> CheckMetrics();
  // Phase 2: start the listeners found usable.
  absl::Status StartGrpc();
  absl::Status OpenMetrics();

  // Between the phases.
  ListenAddress grpc_address;
  std::shared_ptr<grpc::ServerCredentials> grpc_credentials;
  std::string grpc_mode;
  bool own_unix_listener = false;
  std::unique_ptr<OwnedUnixSocket> unix_socket;
};

absl::Status Daemon::State::PrepareGrpc() {
  VGPU_ASSIGN_OR_RETURN(grpc_address,
                        ParseListenAddress("grpc_listen", config.grpc_listen,
                                           /*allow_unix=*/true));
  const ListenAddress& address = grpc_address;
  grpc_credentials = grpc::InsecureServerCredentials();
  std::string& mode = grpc_mode;
  mode = "plaintext";
  if (!config.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions options;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    VGPU_ASSIGN_OR_RETURN(pair.cert_chain,
                          cli::ReadPemFlag("tls_cert", config.tls_cert));
    VGPU_ASSIGN_OR_RETURN(pair.private_key,
                          cli::ReadPemFlag("tls_key", config.tls_key));
    options.pem_key_cert_pairs.push_back(pair);
    mode = "TLS";
    if (!config.tls_client_ca.empty()) {
      VGPU_ASSIGN_OR_RETURN(
          options.pem_root_certs,
          cli::ReadPemFlag("tls_client_ca", config.tls_client_ca));
      options.client_certificate_request =
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
      mode = "mutual TLS (client certificates required)";
    }
    grpc_credentials = grpc::SslServerCredentials(options);
  }
  // Plain unix sockets are accepted by our own listener (large send
  // buffers); TCP and TLS go through gRPC's.
  own_unix_listener = address.unix_socket && config.tls_cert.empty();
  if (address.unix_socket) {
    VGPU_ASSIGN_OR_RETURN(
        unix_socket, OwnedUnixSocket::Listen(address.path, /*backlog=*/64));
    // With TLS gRPC binds the path itself; the lock stays ours.
    if (!own_unix_listener) unix_socket->Unbind();
  } else {
    VGPU_RETURN_IF_ERROR(CheckTcpListenable(address));
  }
  return absl::OkStatus();
}

absl::Status Daemon::State::StartGrpc() {
  ListenAddress& address = grpc_address;
  gpr_set_log_function(ForwardGrpcLog);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Reflection finds services in the generated descriptor pool; gRPC's own
  // health service has none there, so ours is linked in by naming it.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second daemon on the same port
  // would then share it and viewers would get either VM's screen.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  if (!own_unix_listener) {
    builder.AddListeningPort(address.ToString(), grpc_credentials, &port);
  }
  builder.RegisterService(display_service.get());
  builder.RegisterService(input_service.get());
  grpc_server = builder.BuildAndStart();
  if (grpc_server == nullptr || (!address.unix_socket && port == 0)) {
    grpc_server.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", address.ToString()));
  }
  grpc_server->GetHealthCheckService()->SetServingStatus(kDisplayServiceName,
                                                         true);
  if (unix_socket != nullptr && !own_unix_listener) {
    unix_socket->Adopt();
    tls_unix_socket = std::move(unix_socket);
  }
  if (own_unix_listener) {
    absl::StatusOr<std::unique_ptr<UnixSocketListener>> listener =
        UnixSocketListener::Start(std::move(unix_socket), grpc_server.get());
    if (!listener.ok()) return listener.status();
    unix_listener = *std::move(listener);
  }
  if (!address.unix_socket) address.port = static_cast<uint16_t>(port);
  grpc_where = address.ToString();
  startup_info.push_back(absl::StrCat(
      "gRPC display service on ", grpc_where, ", ", grpc_mode,
      " (try: vgpu-shot --server=", grpc_where,
      config.tls_cert.empty() ? "" : " --tls_ca=CA.pem", " --out=screen.png)"));
  if (!address.loopback && config.tls_cert.empty()) {
    startup_warnings.push_back(absl::StrCat(
        "gRPC listens on ", grpc_where,
        " without TLS: anyone who can reach it sees the VM's screen; pass "
        "--tls_cert and --tls_key (and --tls_client_ca)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ListenAddress> Daemon::State::CheckMetrics() {
  VGPU_ASSIGN_OR_RETURN(
      ListenAddress address,
      ParseListenAddress("metrics_listen", config.metrics_listen,
                         /*allow_unix=*/false, /*ipv4_only=*/true));
  // The exposer reports a failed bind by throwing, which this build cannot
  // catch: find out first, with the system's reason.
  if (absl::Status status = CheckTcpListenable(address); !status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat("--metrics_listen: ", status.message()));
  }
  return address;
}

absl::Status Daemon::State::OpenMetrics() {
  VGPU_ASSIGN_OR_RETURN(ListenAddress address, CheckMetrics());
  std::vector<const input::InputDevice*> input_devices;
  for (const InputSlot& slot : inputs) {
    if (slot.device != nullptr) input_devices.push_back(slot.device.get());
  }
  scrape_collector =
      MakeScrapeCollector(display_service.get(), &store, device.get(),
                          device_loop.get(), input_devices);
  exposer = std::make_unique<prometheus::Exposer>(address.ToString(),
                                                  /*threads=*/1);
  exposer->RegisterCollectable(display_service->metrics().registry());
  exposer->RegisterCollectable(scrape_collector);
  std::vector<int> ports = exposer->GetListeningPorts();
  startup_info.push_back(
      absl::StrCat("Prometheus metrics on http://", address.host, ":",
                   ports.empty() ? 0 : ports[0], "/metrics"));
  if (!address.loopback) {
    startup_warnings.push_back(absl::StrCat("metrics listen on ",
                                            address.ToString(),
                                            ", reachable from other machines"));
  }
  return absl::OkStatus();
}

Daemon::Daemon(std::unique_ptr<State> state) : state_(std::move(state)) {}
Daemon::~Daemon() = default;

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Open(DaemonConfig config) {
  VGPU_RETURN_IF_ERROR(ValidateConfig(config));
  // Threads started from here on (gRPC's, the workers) must not take
  // SIGINT/SIGTERM: Run's signal thread waits for them.
  BlockStopSignals();
  auto state = std::make_unique<State>();
  state->config = std::move(config);
  DaemonConfig& c = state->config;

  if (!c.snapshot.empty()) {
    // The folders made here are removed again if the start fails.
    std::filesystem::path folder =
        std::filesystem::absolute(c.snapshot).parent_path();
    std::filesystem::path first_missing;
    std::error_code error;
    for (std::filesystem::path p = folder;
         !std::filesystem::exists(p, error) && p != p.parent_path();
         p = p.parent_path()) {
      first_missing = p;
    }
    std::filesystem::create_directories(folder, error);
    if (!first_missing.empty() && !error) {
      state->made_snapshot_folder = first_missing;
    }
    if (error || access(folder.c_str(), W_OK) != 0) {
      return Invalid(absl::StrCat("--snapshot=", c.snapshot,
                                  ": cannot write in ", folder.string(), ": ",
                                  error ? error.message() : strerror(errno)));
    }
  }

  state->mirror.emplace(&state->store);
  state->mirror->set_enabled(c.mirror_to_qemu);
  VGPU_ASSIGN_OR_RETURN(state->device,
                        gpu::GpuDevice::Create(c.device, &*state->mirror));
  // The demo's sockets, when not given, in a folder of our own.
  auto temp_socket =
      [&state](const std::string& name) -> absl::StatusOr<std::string> {
    if (state->temp_dir.empty()) {
      char pattern[] = "/tmp/vgpu-displayd-XXXXXX";
      if (mkdtemp(pattern) == nullptr) {
        return absl::ErrnoToStatus(errno, "cannot make a temporary folder");
      }
      state->temp_dir = pattern;
    }
    return state->temp_dir + "/" + name;
  };
  if (c.vhost_user_socket.empty()) {
    VGPU_ASSIGN_OR_RETURN(c.vhost_user_socket, temp_socket("vhost-user.sock"));
  }
  if (c.demo && c.keyboard_socket.empty()) {
    VGPU_ASSIGN_OR_RETURN(c.keyboard_socket, temp_socket("keyboard.sock"));
  }
  if (c.demo && c.tablet_socket.empty()) {
    VGPU_ASSIGN_OR_RETURN(c.tablet_socket, temp_socket("tablet.sock"));
  }
  const std::string socket_path = c.vhost_user_socket;
  VGPU_ASSIGN_OR_RETURN(state->device_loop, vhost_user::EventLoop::Create());
  state->gpu_vhost.emplace(state->device.get(), state->device_loop.get(),
                           &*state->mirror);
  absl::StatusOr<std::unique_ptr<vhost_user::VhostUserServer>> vhost_user =
      vhost_user::VhostUserServer::Create(socket_path, state->device_loop.get(),
                                          &*state->gpu_vhost);
  if (!vhost_user.ok()) {
    return absl::Status(
        vhost_user.status().code(),
        absl::StrCat("--vhost_user_socket: ", vhost_user.status().message()));
  }
  state->vhost_user = *std::move(vhost_user);
  const std::pair<const std::string*, input::InputKind> input_sockets[] = {
      {&c.keyboard_socket, input::InputKind::kKeyboard},
      {&c.tablet_socket, input::InputKind::kTablet},
      {&c.mouse_socket, input::InputKind::kMouse}};
  for (size_t i = 0; i < state->inputs.size(); ++i) {
    const auto& [path, kind] = input_sockets[i];
    if (path->empty()) continue;
    State::InputSlot& slot = state->inputs[i];
    slot.socket = *path;
    slot.device = std::make_unique<input::InputDevice>(
        input::SpecFor(kind, absl::StrCat("vgpu-", input::KindName(kind))),
        state->device_loop.get());
    absl::StatusOr<std::unique_ptr<vhost_user::VhostUserServer>> server =
        vhost_user::VhostUserServer::Create(*path, state->device_loop.get(),
                                            slot.device.get());
    if (!server.ok()) {
      return absl::Status(server.status().code(),
                          absl::StrCat("--", input::KindName(kind),
                                       "_socket: ", server.status().message()));
    }
    slot.server = *std::move(server);
  }

  // Everything that can fail is found out before any thread starts.
  if (!c.grpc_listen.empty()) VGPU_RETURN_IF_ERROR(state->PrepareGrpc());
  if (!c.metrics_listen.empty()) {
    VGPU_ASSIGN_OR_RETURN(ListenAddress metrics, state->CheckMetrics());
    // Each probe passes alone while both want one port.
    if (!c.grpc_listen.empty() && !state->grpc_address.unix_socket &&
        metrics.port != 0 && metrics.port == state->grpc_address.port) {
      return Invalid(absl::StrCat(
          "--metrics_listen and --grpc_listen both use port ", metrics.port));
    }
  }

  // The gRPC display service: encoding and waits on a small worker pool.
  state->workers = std::make_unique<WorkerPool>(
      std::max(2u, std::thread::hardware_concurrency()));
  state->display_service = std::make_unique<DisplayService>(
      &state->store, state->workers.get(),
      DisplayServiceOptions{
          .num_scanouts = static_cast<uint32_t>(c.device.displays.size()),
          .max_viewers = c.max_viewers});
  // The input service, in front of the virtio-input devices.
  InputServiceOptions input_options;
  input_options.keyboard = state->inputs[0].device.get();
  input_options.tablet = state->inputs[1].device.get();
  input_options.mouse = state->inputs[2].device.get();
  input_options.scanout_size =
      [store = &state->store](
          uint32_t scanout) -> std::optional<std::pair<uint32_t, uint32_t>> {
    const std::optional<gpu::ScanoutMode> mode = store->State(scanout).mode;
    if (!mode || !mode->enabled || mode->width == 0) return std::nullopt;
    return std::pair{mode->width, mode->height};
  };
  if (!c.input_token_file.empty()) {
    VGPU_ASSIGN_OR_RETURN(
        input_options.token,
        cli::ReadTokenFlag("input_token_file", c.input_token_file));
  }
  input_options.allowed_clients = c.input_allowed_clients;
  state->input_service = std::make_unique<InputService>(input_options);
  for (State::InputSlot& slot : state->inputs) {
    if (slot.device == nullptr) continue;
    slot.device->set_observer(
        [service = state->input_service.get()] { service->DevicesChanged(); });
  }
  // RequestLayout: the mode is applied on the device thread. vhost-user has
  // no way for a back-end to raise VIRTIO_GPU_EVENT_DISPLAY (QEMU rejects
  // back-end config-change messages), so the guest sees the new mode only at
  // its next display probe, and the caller is told so.
  state->display_service->set_layout_function(
      [device = state->device.get(), loop = state->device_loop.get()](
          uint32_t scanout_id, const gpu::DisplayConfig& display,
          std::function<void(absl::Status, bool)> done) {
        loop->Post([device, scanout_id, display, done = std::move(done)] {
          absl::Status status = device->SetDisplay(scanout_id, display);
          if (!status.ok()) {
            done(absl::InvalidArgumentError(status.message()), false);
            return;
          }
          done(absl::FailedPreconditionError(
                   "mode stored; vhost-user cannot raise "
                   "VIRTIO_GPU_EVENT_DISPLAY, so the guest sees it at its "
                   "next display probe (e.g. after a reboot)"),
               false);
        });
      });
  // The exposer first: its failure aborts (it throws, and this build has no
  // exceptions), gRPC's comes back as a Status.
  if (!c.metrics_listen.empty()) VGPU_RETURN_IF_ERROR(state->OpenMetrics());
  if (!c.grpc_listen.empty()) VGPU_RETURN_IF_ERROR(state->StartGrpc());
  return std::unique_ptr<Daemon>(new Daemon(std::move(state)));
}

int Daemon::Run() {
  State& s = *state_;
  s.running = true;
  const DaemonConfig& c = s.config;
  VGPU_LOG(INFO) << "vgpu-displayd serving a vhost-user-gpu device on "
                 << c.vhost_user_socket << " (" << c.device.displays[0].width
                 << "x" << c.device.displays[0].height << ", policy "
                 << c.policy_name << ")";
  for (const State::InputSlot& slot : s.inputs) {
    if (slot.device == nullptr) continue;
    VGPU_LOG(INFO) << "serving a virtio-input "
                   << input::KindName(slot.device->spec().kind) << " on "
                   << slot.socket;
  }
  for (const std::string& line : s.startup_info) VGPU_LOG(INFO) << line;
  for (const std::string& line : s.startup_warnings) VGPU_LOG(WARNING) << line;

  // Signals (blocked in every thread since Open) go to one thread that
  // stops the device loop. The same thread ends a --duration run.
  const sigset_t signals = StopSignals();
  std::atomic<bool> stop{false};
  std::atomic<bool> finishing{false};
  std::thread signal_thread([&] {
    const bool timed = c.duration > absl::ZeroDuration();
    const absl::Time end = absl::Now() + c.duration;
    while (true) {
      siginfo_t info{};
      int received;
      if (timed && !stop) {
        timespec wait =
            absl::ToTimespec(std::max(end - absl::Now(), absl::ZeroDuration()));
        received = sigtimedwait(&signals, &info, &wait);
      } else {
        received = sigwaitinfo(&signals, &info);
      }
      if (finishing) return;  // released by Run's own shutdown
      if ((received < 0 && errno == EINTR) || received == kWakeSignal) continue;
      if (stop) {  // a second signal while shutting down: do not hang on
        VGPU_LOG(WARNING) << "second signal during shutdown: exiting now";
        _exit(1);
      }
      if (received < 0) {
        VGPU_LOG(INFO) << "--duration=" << absl::FormatDuration(c.duration)
                       << " elapsed: shutting down";
      } else {
        VGPU_LOG(INFO) << (received == SIGINT ? "SIGINT" : "SIGTERM")
                       << " received: shutting down";
      }
      stop = true;
      s.device_loop->Stop();
    }
  });

  std::thread snapshot_thread;
  if (!c.snapshot.empty()) {
    snapshot_thread = std::thread(SnapshotLoop, std::cref(s.store), c.snapshot,
                                  c.snapshot_interval, std::cref(stop));
  }
  std::thread demo_thread;
  if (c.demo) {
    synth::ScenePlayerOptions demo_options;
    demo_options.scene = c.demo_scene;
    demo_options.width = c.device.displays[0].width;
    demo_options.height = c.device.displays[0].height;
    demo_options.mode_every = c.demo_mode_every;
    synth::GuestInputOptions input_options;
    input_options.keyboard_socket = c.keyboard_socket;
    input_options.tablet_socket = c.tablet_socket;
    demo_thread =
        std::thread(DemoLoop, c.vhost_user_socket, demo_options, input_options,
                    c.demo_fps, c.demo_frames, std::cref(stop));
  }

  s.device_loop->Run();  // this thread is the device thread until Stop

  stop = true;
  finishing = true;
  s.unix_listener.reset();
  // Viewer streams never end by themselves: cancel every call now rather
  // than wait for them (clients see UNAVAILABLE "Cancelling all calls").
  if (s.grpc_server) s.grpc_server->Shutdown(std::chrono::system_clock::now());
  if (demo_thread.joinable()) demo_thread.join();
  if (snapshot_thread.joinable()) snapshot_thread.join();
  pthread_kill(signal_thread.native_handle(), kWakeSignal);  // if waiting
  signal_thread.join();
  const uint64_t frames = s.store.frame_count();
  state_.reset();
  VGPU_LOG(INFO) << "vgpu-displayd: stopped after " << frames << " frames";
  return 0;
}

}  // namespace vgpu::server
