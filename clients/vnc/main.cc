// vgpu-vnc: the VNC bridge. Serves each scanout of a vgpu-displayd to VNC
// clients (one RFB listener per scanout, as QEMU's head=), fed by the
// daemon's StreamFrames over its unix socket or TCP. VNC clients stay
// connected while the daemon restarts and see the new screen when it is
// back.
//
//   vgpu-vnc --server=unix:/run/vgpu.grpc
//   vgpu-vnc --server=127.0.0.1:50051 --listen=127.0.0.1:5901 --scanouts=0,1
#include <prometheus/exposer.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "vgpu/display/v1/display.grpc.pb.h"
#include <grpcpp/grpcpp.h>

#include "clients/common/grpc_client.h"
#include "clients/vnc/input_forwarder.h"
#include "clients/vnc/scanout_feed.h"
#include "clients/vnc/vnc_metrics.h"
#include "clients/vnc/vnc_screen.h"
#include "clients/vnc/web_console.h"
#include "common/allocator.h"
#include "common/cli.h"
#include "common/listen_address.h"
#include "common/log.h"
#include "common/stop_signals.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:5900",
          "RFB listener of the first scanout, IPv4 or [IPv6] host and port; "
          "each further scanout takes the next port. Port 0: the first free "
          "from 5900.");
ABSL_FLAG(std::string, scanouts, "0",
          "Scanouts to serve, comma-separated (0..15).");
ABSL_FLAG(std::string, password_file, "",
          "File whose first line is the VNC password for full control (VNC "
          "authentication uses its first 8 characters).");
ABSL_FLAG(std::string, view_password_file, "",
          "File whose first line is a VNC password for viewing only.");
ABSL_FLAG(uint32_t, max_clients, 16,
          "VNC clients at once per scanout; more are refused.");
ABSL_FLAG(bool, insecure_network, false,
          "Allow listening on a non-loopback address without TLS and a "
          "password: anyone who can reach it sees the VM's screen.");
ABSL_FLAG(std::string, name, "vgpu", "Desktop name VNC clients show.");
ABSL_FLAG(std::string, web_listen, "",
          "Serve the browser console (noVNC) on this IPv4 host:port, page and "
          "websockets on one port (port 0: any free one); empty: off.");
ABSL_FLAG(std::string, metrics_listen, "",
          "Serve Prometheus metrics on this IPv4 host:port (/metrics); empty: "
          "off.");
ABSL_FLAG(std::string, web_tls_cert, "",
          "Serve the console over HTTPS (and its websockets as wss) with this "
          "PEM certificate chain; needs --web_tls_key.");
ABSL_FLAG(std::string, web_tls_key, "",
          "The PEM private key of --web_tls_cert.");
ABSL_FLAG(absl::Duration, idle_pause, absl::Seconds(5),
          "With no VNC client of a scanout for this long, stop taking the "
          "daemon's stream for it (the daemon then encodes nothing for the "
          "bridge); the next client waits for a fresh first frame. 0: never.");
ABSL_FLAG(bool, encode_once, true,
          "Send VNC clients that take Tight JPEG (noVNC, TigerVNC, TurboVNC) "
          "the daemon's JPEG as it is, one encoding shared by every client "
          "with the same quality; false: libvncserver encodes for each "
          "client.");
ABSL_FLAG(std::string, input, "take",
          "VNC clients' keys and pointer go to the guest through the daemon's "
          "Input service: take (control, from another viewer too), ask "
          "(refused while another viewer controls) or off (view only).");
ABSL_FLAG(std::string, keyboard_layout, "us",
          "XKB layout of the guest's keyboard, for VNC clients that send "
          "keysyms (not QEMU key events).");
ABSL_FLAG(std::string, keyboard_variant, "",
          "XKB variant of --keyboard_layout.");
ABSL_FLAG(std::string, input_token_file, "",
          "The daemon's input token (its --input_token_file).");
ABSL_FLAG(std::string, web_dir, VGPU_WEB_DIR, "The console page's folder.");
ABSL_FLAG(std::string, novnc_dir, "/usr/share/novnc",
          "noVNC's folder (Debian package novnc).");

namespace {

constexpr absl::string_view kName = "vgpu-vnc";
constexpr uint32_t kMaxScanouts = 16;

absl::StatusOr<std::vector<uint32_t>> ParseScanouts(const std::string& text) {
  std::vector<uint32_t> scanouts;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    uint32_t id = 0;
    if (!absl::SimpleAtoi(part, &id) || id >= kMaxScanouts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--scanouts must list scanout numbers 0..", kMaxScanouts - 1,
          " separated by commas (got '", text, "')"));
    }
    for (uint32_t seen : scanouts) {
      if (seen == id) {
        return absl::InvalidArgumentError(
            absl::StrCat("--scanouts lists scanout ", id, " twice"));
      }
    }
    scanouts.push_back(id);
  }
  return scanouts;
}

// The first line of a password file; files readable by others are used
// with a warning (a password is a secret).
absl::StatusOr<std::string> ReadPassword(absl::string_view flag,
                                         const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, "=", path, ": cannot read: ", std::strerror(errno)));
  }
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
    line.pop_back();
  if (line.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": the first line is empty"));
  }
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
    VGPU_LOG(WARNING) << "--" << flag << "=" << path
                      << " is readable by other users (chmod 600 it)";
  }
  if (line.size() > 8) {
    VGPU_LOG(WARNING) << "--" << flag
                      << ": VNC authentication uses only the first 8 "
                         "characters of the password";
  }
  return line;
}

int Serve() {
  absl::StatusOr<std::vector<uint32_t>> scanouts =
      ParseScanouts(absl::GetFlag(FLAGS_scanouts));
  if (!scanouts.ok()) {
    return vgpu::cli::UsageError(kName, scanouts.status().message());
  }
  absl::StatusOr<vgpu::ListenAddress> listen = vgpu::ParseListenAddress(
      "listen", absl::GetFlag(FLAGS_listen), /*allow_unix=*/false);
  if (!listen.ok())
    return vgpu::cli::UsageError(kName, listen.status().message());
  if (absl::Status range = vgpu::cli::CheckRange(
          "max_clients", absl::GetFlag(FLAGS_max_clients), 1, 256);
      !range.ok()) {
    return vgpu::cli::UsageError(kName, range.message());
  }
  if (listen->port != 0 &&
      uint32_t{listen->port} + scanouts->size() - 1 > 65535) {
    return vgpu::cli::UsageError(kName,
                                 "--listen: not enough ports above it for "
                                 "every scanout");
  }
  vgpu::vnc::VncScreenOptions options;
  options.name = absl::GetFlag(FLAGS_name);
  options.host = listen->host;
  options.max_clients = absl::GetFlag(FLAGS_max_clients);
  if (const std::string path = absl::GetFlag(FLAGS_password_file);
      !path.empty()) {
    absl::StatusOr<std::string> password = ReadPassword("password_file", path);
    if (!password.ok())
      return vgpu::cli::UsageError(kName, password.status().message());
    options.passwords.push_back(*password);
  }
  if (const std::string path = absl::GetFlag(FLAGS_view_password_file);
      !path.empty()) {
    absl::StatusOr<std::string> password =
        ReadPassword("view_password_file", path);
    if (!password.ok())
      return vgpu::cli::UsageError(kName, password.status().message());
    options.view_only_passwords.push_back(*password);
  }
  if (!listen->loopback && !absl::GetFlag(FLAGS_insecure_network)) {
    return vgpu::cli::UsageError(
        kName,
        absl::StrCat("--listen=", absl::GetFlag(FLAGS_listen),
                     " is not a loopback address, and RFB over TCP is not "
                     "encrypted: anyone on the network could see the VM's "
                     "screen (and, without --password_file, control it). "
                     "Listen on loopback and tunnel, or say "
                     "--insecure_network"));
  }
  if (!options.passwords.empty() && !options.view_only_passwords.empty() &&
      options.passwords[0].substr(0, 8) ==
          options.view_only_passwords[0].substr(0, 8)) {
    return vgpu::cli::UsageError(
        kName, "the full-control and view-only passwords are the same");
  }

  if (absl::GetFlag(FLAGS_web_tls_cert).empty() !=
      absl::GetFlag(FLAGS_web_tls_key).empty()) {
    return vgpu::cli::UsageError(
        kName, "--web_tls_cert and --web_tls_key go together");
  }
  if (!absl::GetFlag(FLAGS_web_tls_cert).empty() &&
      absl::GetFlag(FLAGS_web_listen).empty()) {
    return vgpu::cli::UsageError(
        kName, "--web_tls_cert is for the console: give --web_listen too");
  }
  std::optional<vgpu::ListenAddress> web;
  if (const std::string text = absl::GetFlag(FLAGS_web_listen); !text.empty()) {
    absl::StatusOr<vgpu::ListenAddress> parsed = vgpu::ParseListenAddress(
        "web_listen", text, /*allow_unix=*/false, /*ipv4_only=*/true);
    if (!parsed.ok())
      return vgpu::cli::UsageError(kName, parsed.status().message());
    const bool tls = !absl::GetFlag(FLAGS_web_tls_cert).empty();
    if (!parsed->loopback && !(tls && !options.passwords.empty()) &&
        !absl::GetFlag(FLAGS_insecure_network)) {
      return vgpu::cli::UsageError(
          kName,
          absl::StrCat("--web_listen=", text,
                       " is not a loopback address and the console ",
                       tls ? "has no password (--password_file)"
                           : "is plain HTTP (--web_tls_cert, --web_tls_key)",
                       "; say --insecure_network to serve it to the network "
                       "anyway"));
    }
    web = *parsed;
  }

  std::optional<vgpu::ListenAddress> metrics;
  if (const std::string text = absl::GetFlag(FLAGS_metrics_listen);
      !text.empty()) {
    absl::StatusOr<vgpu::ListenAddress> parsed = vgpu::ParseListenAddress(
        "metrics_listen", text, /*allow_unix=*/false, /*ipv4_only=*/true);
    if (!parsed.ok())
      return vgpu::cli::UsageError(kName, parsed.status().message());
    // prometheus-cpp reports a failed bind by throwing, which this build
    // cannot catch: find out first.
    if (absl::Status free = vgpu::CheckTcpListenable(*parsed); !free.ok()) {
      return vgpu::cli::UsageError(
          kName, absl::StrCat("--metrics_listen: ", free.message()));
    }
    metrics = *parsed;
  }

  absl::StatusOr<vgpu::clients::Connection> connection =
      vgpu::clients::ConnectFromFlags(64 << 20);
  if (!connection.ok())
    return vgpu::cli::UsageError(kName, connection.status().message());

  // A client's SetDesktopSize asks the guest through the daemon.
  auto layout_stub = vgpu::display::v1::Display::NewStub(connection->channel);
  // Keys and pointer to the daemon; the guest's LEDs back to every screen
  // (made below, before the forwarder starts). The screens go first: their
  // leaving clients still report to their inputs.
  std::unique_ptr<vgpu::vnc::InputForwarder> forwarder;
  std::vector<std::unique_ptr<vgpu::vnc::VncInput>> screen_inputs;
  std::vector<std::unique_ptr<vgpu::vnc::VncScreen>> screens;
  if (const std::string mode = absl::GetFlag(FLAGS_input); mode != "off") {
    if (mode != "take" && mode != "ask")
      return vgpu::cli::UsageError(kName, "--input is take, ask or off");
    vgpu::vnc::InputForwarderOptions input_options;
    input_options.layout = absl::GetFlag(FLAGS_keyboard_layout);
    input_options.variant = absl::GetFlag(FLAGS_keyboard_variant);
    input_options.take = mode == "take";
    if (const std::string file = absl::GetFlag(FLAGS_input_token_file);
        !file.empty()) {
      absl::StatusOr<std::string> token =
          vgpu::cli::ReadTokenFlag("input_token_file", file);
      if (!token.ok())
        return vgpu::cli::UsageError(kName, token.status().message());
      input_options.token = *std::move(token);
    }
    input_options.leds = [&screens](uint8_t leds) {
      for (auto& screen : screens) screen->SetLedState(leds);
    };
    forwarder = std::make_unique<vgpu::vnc::InputForwarder>(
        connection->channel, std::move(input_options));
  }
  // Every listener first, so a port in use is an error before anything
  // runs.
  // Encode-once feeds: stopped before the screens go, destroyed after them
  // (a leaving client still reports to them).
  std::vector<std::unique_ptr<vgpu::vnc::ForwardFeeds>> forward_feeds;
  // Each screen's copy feed, made after the screen; its clients are
  // counted to it from then on (a feed outlives its screen).
  std::vector<std::atomic<vgpu::vnc::ScanoutFeed*>> copy_feed_of(
      scanouts->size());
  for (size_t i = 0; i < scanouts->size(); ++i) {
    vgpu::vnc::VncScreenOptions screen_options = options;
    if (forwarder != nullptr) {
      screen_inputs.push_back(forwarder->ForScanout((*scanouts)[i]));
      screen_options.input = screen_inputs.back().get();
    }
    screen_options.clients_changed = [feed = &copy_feed_of[i]] {
      if (vgpu::vnc::ScanoutFeed* copy = feed->load()) copy->ClientsChanged();
    };
    screen_options.copy_wanted = [feed = &copy_feed_of[i]] {
      if (vgpu::vnc::ScanoutFeed* copy = feed->load()) copy->CopyWanted();
    };
    if (absl::GetFlag(FLAGS_encode_once)) {
      forward_feeds.push_back(std::make_unique<vgpu::vnc::ForwardFeeds>(
          connection->channel, (*scanouts)[i]));
      screen_options.profiles_changed =
          [feeds = forward_feeds.back().get()](
              const std::set<vgpu::vnc::ForwardProfile>& profiles) {
            feeds->SetProfiles(profiles);
          };
    }
    screen_options.resize = [stub = layout_stub.get(),
                             scanout = (*scanouts)[i]](uint32_t width,
                                                       uint32_t height) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(2));
      vgpu::display::v1::RequestLayoutRequest request;
      request.set_scanout_id(scanout);
      request.set_enabled(true);
      request.set_width(width);
      request.set_height(height);
      vgpu::display::v1::RequestLayoutResponse response;
      grpc::Status status = stub->RequestLayout(&context, request, &response);
      VGPU_LOG(INFO) << "scanout " << scanout << ": a VNC client asked for "
                     << width << "x" << height << ": "
                     << (!status.ok() ? status.error_message()
                         : response.guest_notified()
                             ? std::string("the guest was told")
                             : std::string("the guest was not told"));
      return status.ok() && response.guest_notified();
    };
    if (listen->port != 0)
      screen_options.port = static_cast<uint16_t>(listen->port + i);
    if (scanouts->size() > 1) {
      screen_options.name =
          absl::StrCat(options.name, " (scanout ", (*scanouts)[i], ")");
    }
    auto screen = vgpu::vnc::VncScreen::Create(screen_options, 640, 480);
    if (!screen.ok()) {
      return vgpu::cli::UsageError(
          kName, absl::StrCat("--listen: ", screen.status().message()));
    }
    screens.push_back(*std::move(screen));
  }
  std::unique_ptr<vgpu::vnc::WebConsole> console;
  if (web.has_value()) {
    std::map<uint32_t, vgpu::vnc::VncScreen*> by_scanout;
    for (size_t i = 0; i < scanouts->size(); ++i)
      by_scanout[(*scanouts)[i]] = screens[i].get();
    absl::StatusOr<std::unique_ptr<vgpu::vnc::WebConsole>> started =
        vgpu::vnc::WebConsole::Start(
            {.host = web->host,
             .port = web->port,
             .page_dir = absl::GetFlag(FLAGS_web_dir),
             .novnc_dir = absl::GetFlag(FLAGS_novnc_dir),
             .max_connections = 8 + 2 * options.max_clients *
                                        static_cast<uint32_t>(scanouts->size()),
             .tls_cert_file = absl::GetFlag(FLAGS_web_tls_cert),
             .tls_key_file = absl::GetFlag(FLAGS_web_tls_key)},
            by_scanout);
    if (!started.ok()) {
      return vgpu::cli::UsageError(
          kName, absl::StrCat("--web_listen: ", started.status().message()));
    }
    console = *std::move(started);
  }
  std::vector<std::unique_ptr<vgpu::vnc::ScanoutFeed>> feeds;
  for (size_t i = 0; i < scanouts->size(); ++i) {
    vgpu::vnc::ScanoutFeedOptions feed_options;
    feed_options.scanout_id = (*scanouts)[i];
    // On the same machine the copy's pixels travel raw: encoding them (zstd
    // for a video) cost the daemon and the bridge a quarter of a core at
    // 1280x800, 10 frames/s, even with no VNC client.
    if (absl::StartsWith(connection->server, "unix:"))
      feed_options.copy_format = vgpu::display::v1::IMAGE_FORMAT_RAW_BGRX;
    if (const absl::Duration pause = absl::GetFlag(FLAGS_idle_pause);
        pause > absl::ZeroDuration()) {
      feed_options.pause_after = pause;
    }
    // With encode once, while every client forwards the daemon's JPEG the
    // copy takes frames only when something needs it: on a 1280x800 video
    // its raw frames were a third of the daemon's and the bridge's CPU.
    feed_options.copy_on_demand = !forward_feeds.empty();
    feeds.push_back(std::make_unique<vgpu::vnc::ScanoutFeed>(
        connection->channel, feed_options, screens[i].get()));
    copy_feed_of[i] = feeds.back().get();
    feeds.back()->Start();
    if (!forward_feeds.empty()) forward_feeds[i]->Start(screens[i].get());
    const std::string host = !absl::StrContains(listen->host, ':')
                                 ? listen->host
                                 : absl::StrCat("[", listen->host, "]");
    std::printf("vgpu-vnc: scanout %u on vnc://%s:%u%s\n", (*scanouts)[i],
                host.c_str(), screens[i]->port(),
                options.passwords.empty() && options.view_only_passwords.empty()
                    ? " (no password)"
                    : "");
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  std::shared_ptr<vgpu::ScrapeCollector> collector;  // the exposer's is weak
  if (metrics.has_value()) {
    std::vector<vgpu::vnc::MeteredScanout> metered;
    for (size_t i = 0; i < scanouts->size(); ++i)
      metered.push_back(
          {(*scanouts)[i], screens[i].get(), feeds[i].get(),
           forward_feeds.empty() ? nullptr : forward_feeds[i].get()});
    exposer = std::make_unique<prometheus::Exposer>(metrics->ToString(),
                                                    /*threads=*/1);
    collector = vgpu::vnc::MakeVncCollector(metered);
    exposer->RegisterCollectable(collector);
    std::vector<int> ports = exposer->GetListeningPorts();
    std::printf("vgpu-vnc: Prometheus metrics on http://%s:%d/metrics\n",
                metrics->host.c_str(), ports.empty() ? 0 : ports[0]);
  }
  if (console != nullptr) {
    std::printf("vgpu-vnc: web console on %s://%s:%u/%s\n",
                console->tls() ? "https" : "http", web->host.c_str(),
                console->port(),
                scanouts->size() > 1 ? "  (?scanout=N for the others)" : "");
  }
  if (forwarder != nullptr) forwarder->Start();
  std::printf("vgpu-vnc: fed by %s%s\n", connection->server.c_str(),
              forwarder != nullptr ? ", keys and pointer to its Input service"
                                   : " (view only: --input=off)");
  std::fflush(stdout);

  const sigset_t signals = vgpu::StopSignals();
  int received = 0;
  do {
    sigwait(&signals, &received);
  } while (received == vgpu::kWakeSignal);
  VGPU_LOG(INFO) << "vgpu-vnc: stopping on "
                 << (received == SIGINT ? "SIGINT" : "SIGTERM");
  exposer.reset();
  console.reset();
  if (forwarder != nullptr) forwarder->Stop();  // before the screens go
  for (auto& feed : feeds) feed->Stop();
  for (auto& feed : forward_feeds) feed->Stop();
  // Clients leaving meanwhile still report to the feeds.
  screens.clear();
  feeds.clear();
  forward_feeds.clear();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  vgpu::BlockStopSignals();  // before gRPC and libvncserver start threads
  signal(SIGPIPE, SIG_IGN);  // a VNC client that goes away mid-write
  // libvncserver select()s on its sockets: a descriptor at FD_SETSIZE or
  // above would abort (FORTIFY). Capped, accept() fails instead.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur > FD_SETSIZE) {
    files.rlim_cur = FD_SETSIZE;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  vgpu::cli::ParseOrExit(
      argc, argv,
      {kName,
       "the VNC bridge: serves vgpu-displayd's scanouts to VNC clients, one "
       "RFB listener per scanout.\n"
       "  vgpu-vnc --server=unix:/run/vgpu.grpc\n"
       "  vgpu-vnc --listen=127.0.0.1:5901 --scanouts=0,1 "
       "--password_file=vnc.pass"});
  vgpu::clients::QuietGrpcLogs();
  vgpu::KeepLargeBuffersInHeap();
  return Serve();
}
