// Flush-to-VNC-client latency through the bridge, on the synthetic path: a
// 1920x1080 frame enters the daemon's frame store (as a guest's
// RESOURCE_FLUSH does), the display service streams it, vgpu-vnc's feeds
// hand it to the RFB screen, and a libvncclient viewer in this process
// times the FramebufferUpdate that shows it (receive and decode included).
// Two viewers kinds: ZRLE (libvncserver encodes from the bridge's copy) and
// Tight quality 6 (noVNC's setting: the daemon's encoding forwarded). Two
// damages: a 64x16 "character" (two colours) and the whole screen. Prints
// p50/p90/p99 in milliseconds over --changes changes per case.
//
// Usage: vnc_latency_bench [--changes=N]   (about 20 s)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include <grpcpp/grpcpp.h>

#include "clients/vnc/scanout_feed.h"
#include "clients/vnc/test_viewer.h"
#include "clients/vnc/vnc_screen.h"
#include "common/cli.h"
#include "common/log.h"
#include "device/gpu/test_frames.h"
#include "server/frame_store.h"
#include "server/grpc/display_service.h"
#include "server/worker_pool.h"

ABSL_FLAG(int, changes, 100, "Changes timed per case.");
ABSL_FLAG(int, copy_follow_ms, 1000,
          "How long the bridge's copy follows the guest after a client "
          "needed it (vgpu-vnc: 1000); 0 times every forwarded change with "
          "the copy lagging.");

namespace vgpu::vnc {
namespace {

constexpr uint32_t kW = 1920, kH = 1080;
constexpr uint32_t kMarkX = 600, kMarkY = 500, kMarkW = 64, kMarkH = 16;

// A photo-like background (gradients and texture), `phase` moving it.
std::vector<uint32_t> Background(uint32_t phase) {
  std::vector<uint32_t> pixels(size_t{kW} * kH);
  for (uint32_t y = 0; y < kH; ++y) {
    for (uint32_t x = 0; x < kW; ++x) {
      const uint32_t r = (x + phase * 7) & 0xFF;
      const uint32_t g = (y + phase * 3) & 0xFF;
      const uint32_t b = ((x ^ y) + phase) & 0xFF;
      pixels[size_t{y} * kW + x] = 0xFF000000u | r << 16 | g << 8 | b;
    }
  }
  return pixels;
}

// Two colours, as a character of text is (the daemon sends it lossless, so
// a forwarding client gets it from the bridge's copy; one colour would go
// as a fill).
void Mark(std::vector<uint32_t>* pixels, uint32_t colour) {
  for (uint32_t y = kMarkY; y < kMarkY + kMarkH; ++y)
    for (uint32_t x = kMarkX; x < kMarkX + kMarkW; ++x)
      (*pixels)[size_t{y} * kW + x] =
          0xFF000000u | ((x - kMarkX) % 4 == 3 ? 0x101010u : colour);
}

bool Near(uint32_t a, uint32_t b) {
  for (int shift = 0; shift < 24; shift += 8) {
    if (std::abs(static_cast<int>((a >> shift) & 0xFF) -
                 static_cast<int>((b >> shift) & 0xFF)) > 24)
      return false;
  }
  return true;
}

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const auto i =
      static_cast<size_t>(p * static_cast<double>(values.size() - 1));
  return values[i];
}

int Run() {
  const std::string address =
      "unix:/tmp/vnc-latency-bench-" + std::to_string(getpid()) + ".sock";
  server::FrameStore store;
  server::WorkerPool pool(2);
  server::DisplayService service(&store, &pool, {.num_scanouts = 1});
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "cannot listen on %s\n", address.c_str());
    return 1;
  }
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), arguments);

  ForwardFeeds forward(channel, 0);
  // Wired as vgpu-vnc wires them (the feed comes after the screen).
  std::atomic<ScanoutFeed*> feed_of_screen{nullptr};
  auto to_feed = [&feed_of_screen](void (ScanoutFeed::*method)()) {
    return [&feed_of_screen, method] {
      if (ScanoutFeed* copy = feed_of_screen.load()) (copy->*method)();
    };
  };
  auto screen = VncScreen::Create(
      {.max_clients = 4,
       .profiles_changed =
           [&forward](const std::set<ForwardProfile>& profiles) {
             forward.SetProfiles(profiles);
           },
       .clients_changed = to_feed(&ScanoutFeed::ClientsChanged),
       .copy_wanted = to_feed(&ScanoutFeed::CopyWanted)},
      kW, kH);
  if (!screen.ok()) {
    std::fprintf(stderr, "%s\n", screen.status().ToString().c_str());
    return 1;
  }
  ScanoutFeed feed(channel,
                   {.copy_on_demand = true,
                    .follow_after_wanted = absl::Milliseconds(
                        absl::GetFlag(FLAGS_copy_follow_ms))},
                   screen->get());
  feed_of_screen = &feed;
  uint64_t sequence = 0;
  std::vector<uint32_t> frame = Background(0);
  store.OnScanoutMode({0, true, kW, kH},
                      gpu::FrameOfPixels(frame, kW, kH, ++sequence));
  feed.Start();
  forward.Start(screen->get());

  const int changes = absl::GetFlag(FLAGS_changes);
  std::printf(
      "flush -> VNC client, %ux%u, %d changes per case (ms), the copy "
      "following for %d ms after a client needed it\n",
      kW, kH, changes, absl::GetFlag(FLAGS_copy_follow_ms));
  std::printf("%-22s %-12s %8s %8s %8s\n", "viewer", "damage", "p50", "p90",
              "p99");
  struct Case {
    const char* name;
    const char* encodings;
    int quality;
  };
  for (const Case& c : {Case{"ZRLE (encoded here)", "copyrect zrle", -1},
                        Case{"Tight q6 (forwarded)", "copyrect tight", 6}}) {
    auto viewer = TestViewer::Connect({.port = (*screen)->port(),
                                       .encodings = c.encodings,
                                       .quality_level = c.quality});
    if (viewer == nullptr) {
      std::fprintf(stderr, "viewer did not connect\n");
      return 1;
    }
    if (!viewer->Until([&] { return viewer->width() == int{kW}; })) return 1;
    for (bool full : {false, true}) {
      std::vector<double> ms;
      for (int i = 0; i < changes; ++i) {
        // Distinct, far apart colours.
        const uint32_t colour = (i % 2 == 0 ? 0xF02000u : 0x20F0F0u) ^
                                static_cast<uint32_t>(i * 0x050301);
        if (full) frame = Background(static_cast<uint32_t>(i + 1));
        Mark(&frame, colour);
        gpu::FramePtr next = gpu::FrameOfPixels(frame, kW, kH, ++sequence);
        const gpu::PixelRect damage =
            full ? gpu::PixelRect{0, 0, kW, kH}
                 : gpu::PixelRect{kMarkX, kMarkY, kMarkW, kMarkH};
        const auto start = std::chrono::steady_clock::now();
        store.OnFrame(0, std::move(next), {&damage, 1});
        if (!viewer->Until([&] {
              return Near(viewer->PixelAt(kMarkX + 8, kMarkY + 8), colour);
            })) {
          std::fprintf(stderr, "%s: change %d never showed\n", c.name, i);
          return 1;
        }
        ms.push_back(std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - start)
                         .count());
      }
      std::printf("%-22s %-12s %8.2f %8.2f %8.2f\n", c.name,
                  full ? "full screen" : "64x16", Percentile(ms, 0.5),
                  Percentile(ms, 0.9), Percentile(ms, 0.99));
      std::fflush(stdout);
    }
  }
  forward.Stop();
  feed.Stop();
  feed_of_screen = nullptr;
  server->Shutdown(std::chrono::system_clock::now());
  return 0;
}

}  // namespace
}  // namespace vgpu::vnc

int main(int argc, char** argv) {
  vgpu::cli::ParseOrExit(
      argc, argv,
      {"vnc_latency_bench",
       "flush-to-VNC-client latency through the bridge at 1920x1080.\n"
       "  vnc_latency_bench --changes=100"});
  return vgpu::vnc::Run();
}
