// vgpu-displayd: the display server daemon. It serves a virtio-gpu device on
// a vhost-user socket (QEMU: -device vhost-user-gpu-pci), or with --demo a
// built-in synthetic guest that connects to that same socket, so it shows
// something without a VM.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/exposer.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "clients/synth_guest/frontend.h"
#include "clients/synth_guest/scene_player.h"
#include "common/allocator.h"
#include "common/log.h"
#include "common/notification.h"
#include "device/vhost_user/server.h"
#include "server/frame_store.h"
#include "server/grpc/display_service.h"
#include "server/grpc/unix_listener.h"
#include "server/metrics.h"
#include "server/snapshot.h"
#include "server/worker_pool.h"

ABSL_FLAG(std::string, vhost_user_socket, "",
          "Listen on this unix socket for a vhost-user front-end (QEMU's "
          "-chardev socket,path=... -device vhost-user-gpu-pci,chardev=...).");
ABSL_FLAG(bool, demo, false,
          "Run the built-in synthetic guest against our own socket (a "
          "temporary one when "
          "--vhost_user_socket is not given).");
ABSL_FLAG(std::string, demo_scene, "console",
          "Demo scene: console, scroll, video or cursor.");
ABSL_FLAG(double, demo_fps, 30, "Demo frames per second.");
ABSL_FLAG(uint64_t, demo_mode_every, 0,
          "The demo guest changes resolution every N frames as a DRM modeset "
          "does, cycling 800x600, 640x480, 1024x768 and --width x --height "
          "(0 = never).");
ABSL_FLAG(uint32_t, width, 1280,
          "Display width in pixels reported to the guest (16..4095).");
ABSL_FLAG(uint32_t, height, 800,
          "Display height in pixels reported to the guest (16..4095).");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "Stop after this long (e.g. 10s); 0 runs until SIGINT/SIGTERM.");
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
          "Host memory budget for guest resources, MiB.");
ABSL_FLAG(uint32_t, max_resources, 16384, "Most resources a guest may hold.");
ABSL_FLAG(std::string, grpc_listen, "127.0.0.1:50051",
          "Where the gRPC display service listens: host:port (loopback by "
          "default; port 0 "
          "picks one) or unix:/path/to.sock. Empty disables it.");
ABSL_FLAG(uint32_t, max_viewers, 64, "Most viewer streams at once.");
ABSL_FLAG(
    std::string, metrics_listen, "",
    "Serve Prometheus metrics at http://ADDRESS/metrics (IPv4 host:port, e.g. "
    "127.0.0.1:9464; port 0 picks one). Empty: off.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve gRPC over TLS.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(
    std::string, tls_client_ca, "",
    "PEM CA bundle: require client certificates signed by it (mutual TLS).");
ABSL_FLAG(bool, mirror_to_qemu, false,
          "Also send the screen to QEMU over the vhost-user-gpu display socket "
          "(QEMU's "
          "screendump and UI then show it). Never blocks the device.");

namespace vgpu {
using server::WorkerPool;
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "vgpu-displayd: %s\n", message.c_str());
  return 2;
}

// Whether an IPv4 `host:port` can be listened on now (port 0: any).
absl::Status CheckBindable(const std::string& address) {
  size_t colon = address.rfind(':');
  int port = -1;
  in_addr host{};
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535 ||
      inet_pton(AF_INET, address.substr(0, colon).c_str(), &host) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_listen=", address,
                     ": expected IPv4 host:port (port 0..65535)"));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(static_cast<uint16_t>(port));
  in.sin_addr = host;
  int bound = bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof(in));
  int error = errno;
  close(fd);
  if (bound != 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for metrics on ",
                                               address, ": ", strerror(error)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

// Insecure (loopback and unix sockets), TLS, or mutual TLS from the flags.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials() {
  std::string cert = absl::GetFlag(FLAGS_tls_cert),
              key = absl::GetFlag(FLAGS_tls_key);
  std::string client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (cert.empty() && key.empty() && client_ca.empty())
    return grpc::InsecureServerCredentials();
  if (cert.empty() || key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  grpc::SslServerCredentialsOptions options;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> cert_pem = ReadFile(cert),
                              key_pem = ReadFile(key);
  if (!cert_pem.ok()) return cert_pem.status();
  if (!key_pem.ok()) return key_pem.status();
  pair.cert_chain = *cert_pem;
  pair.private_key = *key_pem;
  options.pem_key_cert_pairs.push_back(pair);
  if (!client_ca.empty()) {
    absl::StatusOr<std::string> ca_pem = ReadFile(client_ca);
    if (!ca_pem.ok()) return ca_pem.status();
    options.pem_root_certs = *ca_pem;
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

// Rewrites the snapshot file whenever scanout 0 shows a new frame.
void SnapshotLoop(const server::FrameStore& store, const std::string& path,
                  absl::Duration interval, const std::atomic<bool>& stop) {
  const gpu::Frame* written = nullptr;
  uint64_t written_sequence = 0;
  while (!stop) {
    gpu::FramePtr frame = store.Latest(0);
    if (frame &&
        (frame.get() != written || frame->sequence() != written_sequence)) {
      if (absl::Status status = server::WritePpm(*frame, path); !status.ok()) {
        VGPU_LOG(WARNING) << status.message();
      }
      written = frame.get();
      written_sequence = frame->sequence();
    }
    absl::SleepFor(interval);
  }
}

// The built-in guest: a vhost-user front-end on our own socket.
void DemoLoop(const std::string& socket_path,
              const synth::ScenePlayerOptions& options, double fps,
              const std::atomic<bool>& stop) {
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
  VGPU_LOG(INFO) << "demo guest: scene " << options.scene << ", "
                 << options.width << "x" << options.height << " at " << fps
                 << " fps";
  const absl::Duration period = absl::Seconds(1.0 / fps);
  absl::Time next = absl::Now();
  for (uint64_t index = 0; !stop; ++index) {
    if (absl::Status status = (*demo)->Tick(index); !status.ok()) {
      if (!stop) VGPU_LOG(ERROR) << "demo guest stopped: " << status.message();
      return;
    }
    next += period;
    absl::SleepFor(next - absl::Now());
  }
}

int Run() {
  std::string socket_path = absl::GetFlag(FLAGS_vhost_user_socket);
  const bool demo = absl::GetFlag(FLAGS_demo);
  if (socket_path.empty() && !demo) {
    return Fail(
        "nothing to serve: pass --vhost_user_socket=PATH (for QEMU) and/or "
        "--demo");
  }
  gpu::GpuDeviceOptions options;
  options.displays = {
      {absl::GetFlag(FLAGS_width), absl::GetFlag(FLAGS_height), true}};
  std::string policy = absl::GetFlag(FLAGS_resource_policy);
  if (policy == "copy") {
    options.policy = gpu::ResourcePolicy::kCopy;
  } else if (policy == "shared") {
    options.policy = gpu::ResourcePolicy::kShared;
  } else if (policy == "auto") {
    options.policy = gpu::ResourcePolicy::kAuto;
  } else {
    return Fail("--resource_policy must be copy, shared or auto");
  }
  options.auto_shared_min_bytes = absl::GetFlag(FLAGS_auto_shared_min_kib)
                                  << 10;
  options.max_host_memory = absl::GetFlag(FLAGS_max_host_memory_mib) << 20;
  options.max_resources = absl::GetFlag(FLAGS_max_resources);
  double fps = absl::GetFlag(FLAGS_demo_fps);
  if (!(fps > 0 && fps <= 1000)) return Fail("--demo_fps must be in (0, 1000]");

  server::FrameStore store;
  vhost_user::DisplayMirror mirror(&store);
  mirror.set_enabled(absl::GetFlag(FLAGS_mirror_to_qemu));
  auto device = gpu::GpuDevice::Create(options, &mirror);
  if (!device.ok()) return Fail(std::string(device.status().message()));

  std::string temp_dir;
  if (socket_path.empty()) {
    char pattern[] = "/tmp/vgpu-displayd-XXXXXX";
    if (mkdtemp(pattern) == nullptr)
      return Fail("cannot make a temporary directory");
    temp_dir = pattern;
    socket_path = temp_dir + "/vhost-user.sock";
  }
  auto server =
      vhost_user::VhostUserServer::Create(socket_path, device->get(), &mirror);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  VGPU_LOG(INFO) << "vgpu-displayd: vhost-user-gpu device on " << socket_path
                 << " (" << options.displays[0].width << "x"
                 << options.displays[0].height << ", policy " << policy << ")";

  // Signals go to one thread that stops the device loop; every other thread
  // (the device thread included) has them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    int received = 0;
    sigwait(&signals, &received);
    if (received == SIGINT || received == SIGTERM) {
      VGPU_LOG(INFO) << "signal " << received << ": shutting down";
    }
    stop = true;
    (*server)->Stop();
  });

  // The gRPC display service: encoding and waits on a small worker pool.
  WorkerPool workers(std::max(2u, std::thread::hardware_concurrency()));
  server::DisplayService display_service(
      &store, &workers,
      {.num_scanouts = static_cast<uint32_t>(options.displays.size()),
       .max_viewers = absl::GetFlag(FLAGS_max_viewers)});
  // RequestLayout: the mode is applied on the device thread. vhost-user has
  // no way for a back-end to raise VIRTIO_GPU_EVENT_DISPLAY (QEMU rejects
  // back-end config-change messages), so the guest sees the new mode only at
  // its next display probe, and the caller is told so.
  display_service.set_layout_function([device = device->get(),
                                       loop = &(*server)->loop()](
                                          uint32_t scanout_id,
                                          const gpu::DisplayConfig& display,
                                          std::function<void(absl::Status,
                                                             bool)>
                                              done) {
    loop->Post([device, scanout_id, display, done = std::move(done)] {
      absl::Status status = device->SetDisplay(scanout_id, display);
      if (!status.ok()) {
        done(absl::InvalidArgumentError(status.message()), false);
        return;
      }
      done(absl::FailedPreconditionError(
               "mode stored; vhost-user cannot raise VIRTIO_GPU_EVENT_DISPLAY, "
               "so the "
               "guest sees it at its next display probe (e.g. after a reboot)"),
           false);
    });
  });

  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<server::UnixSocketListener> unix_listener;
  if (std::string listen = absl::GetFlag(FLAGS_grpc_listen); !listen.empty()) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        ServerCredentials();
    if (!credentials.ok())
      return Fail(std::string(credentials.status().message()));
    grpc::ServerBuilder builder;
    int port = 0;
    // Plain unix sockets are accepted by our own listener (large send
    // buffers); TCP and TLS go through gRPC's.
    const bool own_unix_listener = absl::StartsWith(listen, "unix:") &&
                                   absl::GetFlag(FLAGS_tls_cert).empty();
    if (!own_unix_listener)
      builder.AddListeningPort(listen, *credentials, &port);
    builder.RegisterService(&display_service);
    grpc_server = builder.BuildAndStart();
    if (grpc_server == nullptr)
      return Fail("cannot listen for gRPC on " + listen);
    if (own_unix_listener) {
      auto listener = server::UnixSocketListener::Start(
          listen.substr(5) /* after "unix:" */, grpc_server.get());
      if (!listener.ok())
        return Fail("cannot listen for gRPC: " +
                    std::string(listener.status().message()));
      unix_listener = *std::move(listener);
    }
    std::string where =
        absl::StartsWith(listen, "unix:")
            ? listen
            : listen.substr(0, listen.rfind(':') + 1) + std::to_string(port);
    VGPU_LOG(INFO) << "gRPC display service on " << where
                   << " (try: vgpu-shot --server=" << where
                   << " --out=screen.png)";
  }

  // Prometheus: service counters, plus the device's own (copied on the
  // device thread, which owns them) and the encode cache's, read at scrape
  // time; served by prometheus-cpp's exposer (civetweb).
  std::unique_ptr<prometheus::Exposer> exposer;
  std::shared_ptr<server::ScrapeCollector> scrape_collector;
  if (std::string listen = absl::GetFlag(FLAGS_metrics_listen);
      !listen.empty()) {
    // The exposer reports a failed bind by throwing, which this build
    // cannot catch: find out first, with the system's reason.
    if (absl::Status bindable = CheckBindable(listen); !bindable.ok())
      return Fail(std::string(bindable.message()));
    scrape_collector = std::make_shared<server::ScrapeCollector>(
        [&display_service, &store, device = device->get(),
         loop = &(*server)->loop()]() {
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
              commands.push_back(
                  {{{"type", absl::StrCat("0x", absl::Hex(type))}},
                   static_cast<double>(count)});
            }
            for (const auto& [code, count] : (*stats)->errors) {
              errors.push_back({{{"code", absl::StrCat("0x", absl::Hex(code))}},
                                static_cast<double>(count)});
            }
            families.push_back(server::CounterFamily(
                "vgpu_device_commands_total",
                "virtio-gpu commands handled, by type.", commands));
            families.push_back(server::CounterFamily(
                "vgpu_device_errors_total",
                "virtio-gpu error responses, by response code.", errors));
          }
          server::EncodeCacheStats cache = display_service.cache().stats();
          families.push_back(server::CounterFamily(
              "vgpu_frames_published_total", "Frames the device published.",
              {{{}, static_cast<double>(store.frame_count())}}));
          families.push_back(
              server::CounterFamily("vgpu_encode_cache_hits_total",
                                    "Tile runs served from the encode cache.",
                                    {{{}, static_cast<double>(cache.hits)}}));
          families.push_back(server::CounterFamily(
              "vgpu_encode_cache_misses_total", "Tile runs encoded.",
              {{{}, static_cast<double>(cache.misses)}}));
          families.push_back(server::CounterFamily(
              "vgpu_solid_runs_total", "Tile runs sent as one colour.",
              {{{}, static_cast<double>(cache.solid)}}));
          return families;
        });
    exposer = std::make_unique<prometheus::Exposer>(listen, /*threads=*/1);
    exposer->RegisterCollectable(display_service.metrics().registry());
    exposer->RegisterCollectable(scrape_collector);
    std::vector<int> ports = exposer->GetListeningPorts();
    VGPU_LOG(INFO) << "Prometheus metrics on http://"
                   << listen.substr(0, listen.rfind(':') + 1)
                   << (ports.empty() ? 0 : ports[0]) << "/metrics";
  }

  std::thread snapshot_thread;
  if (std::string path = absl::GetFlag(FLAGS_snapshot); !path.empty()) {
    std::error_code error;
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
    snapshot_thread =
        std::thread(SnapshotLoop, std::cref(store), path,
                    absl::GetFlag(FLAGS_snapshot_interval), std::cref(stop));
  }
  std::thread demo_thread;
  if (demo) {
    synth::ScenePlayerOptions demo_options;
    demo_options.scene = absl::GetFlag(FLAGS_demo_scene);
    demo_options.width = options.displays[0].width;
    demo_options.height = options.displays[0].height;
    demo_options.mode_every = absl::GetFlag(FLAGS_demo_mode_every);
    demo_thread =
        std::thread(DemoLoop, socket_path, demo_options, fps, std::cref(stop));
  }
  std::thread timer;
  if (absl::Duration duration = absl::GetFlag(FLAGS_duration);
      duration > absl::ZeroDuration()) {
    timer = std::thread([duration] {
      absl::SleepFor(duration);
      kill(getpid(), SIGTERM);
    });
    timer.detach();
  }

  (*server)->Run();  // the device thread

  stop = true;
  unix_listener.reset();
  if (grpc_server)
    grpc_server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::seconds(2));
  if (demo_thread.joinable()) demo_thread.join();
  if (snapshot_thread.joinable()) snapshot_thread.join();
  kill(getpid(), SIGTERM);  // release the signal thread if it is still waiting
  signal_thread.join();
  exposer.reset();
  server->reset();
  device->reset();
  if (!temp_dir.empty()) std::filesystem::remove_all(temp_dir);
  VGPU_LOG(INFO) << "vgpu-displayd: stopped after " << store.frame_count()
                 << " frames";
  return 0;
}

}  // namespace
}  // namespace vgpu

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "vgpu-displayd: remote display server for virtual machines.\n"
      "  vgpu-displayd --vhost_user_socket=/run/vgpu.sock   # serve QEMU\n"
      "  vgpu-displayd --demo --snapshot=screen.ppm          # built-in guest");
  absl::ParseCommandLine(argc, argv);
  vgpu::KeepLargeBuffersInHeap();
  return vgpu::Run();
}
