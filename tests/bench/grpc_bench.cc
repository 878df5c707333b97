// Display-service benchmarks (issue figures), printed as a report:
//  1. flush-to-update-received latency, p50/p99, 1080p full-screen updates,
//     raw and JPEG, over a unix socket and loopback TCP;
//  2. server CPU for 1, 10 and 100 viewers of one 1080p JPEG stream (the
//     viewers run in a separate process, so only the server is measured);
//  3. JPEG encoding through the service's encoder beside plain TurboJPEG on
//     the same frames;
//  4. bytes per update while "typing" on a console (one 8x16 cell per update);
//  5. a viewer stalled for 2 s: server memory, and whether its first update
//     after resuming is the latest frame.
//
//   build/release/tests/bench/grpc_bench            (about a minute)
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include <grpcpp/grpcpp.h>
#include <turbojpeg.h>

#include "common/allocator.h"
#include "common/log.h"
#include "device/guest_sim/scenes.h"
#include "server/encode/image_encoder.h"
#include "server/frame_store.h"
#include "server/grpc/display_service.h"
#include "server/grpc/unix_listener.h"
#include "server/worker_pool.h"

extern char** environ;

namespace vgpu {
namespace {

namespace pb = vgpu::display::v1;
constexpr uint32_t kWidth = 1920, kHeight = 1080;

// A guest screen in a tile grid: draw with `pixels`, publish what changed.
class Screen {
 public:
  Screen(uint32_t width, uint32_t height)
      : width_(width),
        height_(height),
        grid_(width, height),
        pixels_(size_t{width} * height) {}
  uint32_t* pixels() { return pixels_.data(); }
  // Copies `rect` of pixels into the grid (new tile versions) and makes a
  // frame.
  gpu::FramePtr Commit(const gpu::PixelRect& rect) {
    gpu::GridStats stats;
    grid_.WritePixels(rect,
                      reinterpret_cast<const uint8_t*>(
                          &pixels_[size_t{rect.y} * width_ + rect.x]),
                      size_t{width_} * 4, &stats);
    return std::make_shared<gpu::Frame>(width_, height_, 0, 0, grid_.Snapshot(),
                                        grid_.columns(), ++sequence_);
  }

 private:
  uint32_t width_, height_;
  gpu::TileGrid grid_;
  std::vector<uint32_t> pixels_;
  uint64_t sequence_ = 0;
};

// The service on a socket, fed by a publisher.
class Server {
 public:
  explicit Server(const std::string& address) {
    service_ = std::make_unique<server::DisplayService>(
        &store_, &pool_,
        server::DisplayServiceOptions{.num_scanouts = 1, .max_viewers = 1000});
    grpc::ServerBuilder builder;
    int port = 0;
    // As vgpu-displayd does: unix sockets through the project's listener.
    const bool unix_socket = address.rfind("unix:", 0) == 0;
    if (!unix_socket)
      builder.AddListeningPort(address, grpc::InsecureServerCredentials(),
                               &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    if (unix_socket) {
      auto listener =
          server::UnixSocketListener::Start(address.substr(5), server_.get());
      if (!listener.ok()) {
        std::fprintf(stderr, "%s\n",
                     std::string(listener.status().message()).c_str());
        std::exit(1);
      }
      listener_ = *std::move(listener);
    }
    address_ = unix_socket ? address : "127.0.0.1:" + std::to_string(port);
    store_.OnScanoutMode({0, true, kWidth, kHeight}, nullptr);
  }
  ~Server() {
    listener_.reset();
    server_->Shutdown(std::chrono::system_clock::now());
  }
  const std::string& address() const { return address_; }
  server::FrameStore& store() { return store_; }

 private:
  server::FrameStore store_;
  server::WorkerPool pool_{2};
  std::unique_ptr<server::DisplayService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<server::UnixSocketListener> listener_;
  std::string address_;
};

std::unique_ptr<pb::Display::Stub> Connect(const std::string& address) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(64 << 20);
  arguments.SetInt("grpc.use_local_subchannel_pool",
                   1);  // a connection per viewer
  return pb::Display::NewStub(grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), arguments));
}

// A moving video-like picture (so JPEG has real work) at frame `i`.
void DrawVideo(Screen& screen, uint32_t i) {
  uint32_t* p = screen.pixels();
  for (uint32_t y = 0; y < kHeight; ++y) {
    for (uint32_t x = 0; x < kWidth; ++x) {
      uint32_t r = (x + i * 7) & 0xFF, g = (y + i * 3) & 0xFF,
               b = ((x ^ y) + i * 5) & 0xFF;
      p[size_t{y} * kWidth + x] = 0xFF000000u | r << 16 | g << 8 | b;
    }
  }
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p * (values.size() - 1))];
}

// A StreamFrames viewer that acks at once and records latency and bytes.
struct ViewerResult {
  std::vector<double> latency_ms;
  // Parts of it: flush to the first band's send, that send to the receipt
  // of the last band.
  std::vector<double> to_send_ms, transfer_ms;
  std::vector<size_t> update_bytes;
  uint64_t updates = 0;
};

// Runs until `context` is cancelled (by whoever owns it).
// With a stall, `resumed` gets {frame shown, latest frame} of the first
// update the server made after the viewer came back (updates already in
// flight when it stopped reading arrive first and do not count).
void RunViewer(const std::string& address, pb::ImageFormat format,
               grpc::ClientContext* context, ViewerResult* result,
               absl::Duration stall_after = absl::InfiniteDuration(),
               absl::Duration stall = absl::ZeroDuration(),
               std::vector<uint64_t>* resumed = nullptr,
               const server::FrameStore* store = nullptr) {
  auto stub = Connect(address);
  auto stream = stub->StreamFrames(context);
  pb::StreamFramesRequest subscribe;
  subscribe.mutable_subscribe()->add_formats(format);
  subscribe.mutable_subscribe()->set_jpeg_quality(80);
  subscribe.mutable_subscribe()->set_max_in_flight(2);
  stream->Write(subscribe);
  pb::StreamFramesResponse event;
  size_t bytes = 0;
  absl::Time start = absl::Now();
  bool stalled = false;
  int64_t resumed_ns = 0;
  int64_t first_band_sent_ns =
      -1;  // send time of the current update's first band
  while (stream->Read(&event)) {
    bytes += event.ByteSizeLong();
    if (event.has_update() && first_band_sent_ns < 0) {
      first_band_sent_ns = event.update().send_time_unix_ns();
    }
    if (!event.has_update() || !event.update().end_of_update()) continue;
    int64_t update_sent_ns = std::exchange(first_band_sent_ns, -1);
    double latency =
        (absl::ToUnixNanos(absl::Now()) - event.update().flush_time_unix_ns()) /
        1e6;
    if (stalled && resumed && update_sent_ns >= resumed_ns) {
      resumed->push_back(event.update().frame_sequence());
      resumed->push_back(store->State(0).sequence);
      stalled = false;
    }
    result->latency_ms.push_back(latency);
    result->to_send_ms.push_back(
        (update_sent_ns - event.update().flush_time_unix_ns()) / 1e6);
    result->transfer_ms.push_back(
        (absl::ToUnixNanos(absl::Now()) - update_sent_ns) / 1e6);
    result->update_bytes.push_back(bytes);
    bytes = 0;
    ++result->updates;
    pb::StreamFramesRequest ack;
    ack.mutable_ack()->set_update_id(event.update().update_id());
    stream->Write(ack);
    if (!stalled && absl::Now() - start > stall_after &&
        stall > absl::ZeroDuration()) {
      absl::SleepFor(stall);  // neither read nor ack
      resumed_ns = absl::ToUnixNanos(absl::Now());
      stall = absl::ZeroDuration();
      stalled = true;
    }
  }
}

long ResidentKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Publishes `frames` full-screen video frames at `fps`.
void PublishVideo(Server& server, Screen& screen, uint32_t frames, double fps) {
  absl::Time next = absl::Now();
  for (uint32_t i = 0; i < frames; ++i) {
    DrawVideo(screen, i);
    server.store().OnFrame(0, screen.Commit({0, 0, kWidth, kHeight}),
                           {{0, 0, kWidth, kHeight}});
    next += absl::Seconds(1.0 / fps);
    absl::SleepFor(next - absl::Now());
  }
}

// `only_transport`: "unix", "tcp" or empty for both.
void LatencySection(const std::string& only_transport) {
  std::printf(
      "\n1. flush-to-update-received latency, 1080p full-screen, 30 fps, 90 "
      "frames\n");
  for (const char* transport : {"unix", "tcp"}) {
    if (!only_transport.empty() && only_transport != transport) continue;
    for (pb::ImageFormat format :
         {pb::IMAGE_FORMAT_RAW_BGRX, pb::IMAGE_FORMAT_JPEG}) {
      std::string address =
          std::string(transport) == "unix"
              ? "unix:/tmp/vgpu-bench-" + std::to_string(getpid()) + ".sock"
              : "127.0.0.1:0";
      Server server(address);
      Screen screen(kWidth, kHeight);
      grpc::ClientContext context;
      ViewerResult result;
      std::thread viewer(RunViewer, server.address(), format, &context, &result,
                         absl::InfiniteDuration(), absl::ZeroDuration(),
                         nullptr, nullptr);
      absl::SleepFor(absl::Milliseconds(300));
      PublishVideo(server, screen, 90, 30);
      absl::SleepFor(absl::Milliseconds(300));
      context.TryCancel();
      viewer.join();
      // The first update (the subscription's full screen) is not a flush.
      for (auto* values :
           {&result.latency_ms, &result.to_send_ms, &result.transfer_ms}) {
        if (!values->empty()) values->erase(values->begin());
      }
      std::printf(
          "   %-4s %-4s  p50 %7.2f ms  p99 %7.2f ms  (%zu updates; "
          "p50 to send %.2f, transfer %.2f ms)%s\n",
          transport, format == pb::IMAGE_FORMAT_JPEG ? "jpeg" : "raw",
          Percentile(result.latency_ms, 0.5),
          Percentile(result.latency_ms, 0.99), result.latency_ms.size(),
          Percentile(result.to_send_ms, 0.5),
          Percentile(result.transfer_ms, 0.5),
          std::string(transport) == "unix" &&
                  format == pb::IMAGE_FORMAT_RAW_BGRX
              ? "   target p50 <= 5 ms, p99 <= 15 ms"
              : "");
    }
  }
}

// The viewers' process: N StreamFrames clients until killed.
int ViewersMain(const std::string& address, int count) {
  std::vector<ViewerResult> results(static_cast<size_t>(count));
  std::vector<grpc::ClientContext> contexts(static_cast<size_t>(count));
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) {
    threads.emplace_back(RunViewer, address, pb::IMAGE_FORMAT_JPEG,
                         &contexts[i], &results[i], absl::InfiniteDuration(),
                         absl::ZeroDuration(), nullptr, nullptr);
  }
  for (auto& t : threads) t.join();
  return 0;
}

void ViewersSection(const char* self) {
  std::printf(
      "\n2. server CPU, 1080p JPEG stream at 30 fps for 4 s, viewers in "
      "another process\n");
  double single = 0;
  for (int count : {1, 10, 100}) {
    std::string address =
        "unix:/tmp/vgpu-bench-v-" + std::to_string(getpid()) + ".sock";
    Server server(address);
    Screen screen(kWidth, kHeight);
    std::string count_arg = std::to_string(count);
    const char* argv[] = {self, "--viewers", address.c_str(), count_arg.c_str(),
                          nullptr};
    pid_t child;
    posix_spawn(&child, self, nullptr, nullptr, const_cast<char**>(argv),
                environ);
    absl::SleepFor(absl::Seconds(1 + count / 50));
    // Frames are drawn outside the measurement: only serving counts.
    std::vector<gpu::FramePtr> frames;
    for (uint32_t i = 0; i < 120; ++i) {
      DrawVideo(screen, i);
      frames.push_back(screen.Commit({0, 0, kWidth, kHeight}));
    }
    double before = CpuSeconds();
    absl::Time next = absl::Now();
    for (gpu::FramePtr& frame : frames) {
      server.store().OnFrame(0, std::move(frame), {{0, 0, kWidth, kHeight}});
      next += absl::Seconds(1.0 / 30);
      absl::SleepFor(next - absl::Now());
    }
    double cpu = CpuSeconds() - before;
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    if (count == 1) single = cpu;
    std::printf(
        "   %3d viewers: %.2f CPU s for 120 frames  (%.2fx one viewer)%s\n",
        count, cpu, cpu / single, count == 10 ? "   target <= 1.5x" : "");
  }
}

void JpegSection() {
  std::printf("\n3. JPEG encoding, 1080p, quality 80, 4:2:0, 20 frames\n");
  Screen screen(kWidth, kHeight);
  std::vector<gpu::FramePtr> frames;
  std::vector<std::vector<uint32_t>> buffers;
  for (uint32_t i = 0; i < 20; ++i) {
    DrawVideo(screen, i * 13);
    buffers.emplace_back(screen.pixels(),
                         screen.pixels() + size_t{kWidth} * kHeight);
    frames.push_back(screen.Commit({0, 0, kWidth, kHeight}));
  }
  server::EncodeOptions options{server::ImageKind::kJpeg, 80};
  absl::Time start = absl::Now();
  for (auto& frame : frames)
    (void)server::EncodeImage(*frame, {0, 0, kWidth, kHeight}, options);
  double ours = absl::ToDoubleSeconds(absl::Now() - start);
  tjhandle handle = tjInitCompress();
  std::vector<unsigned char> out(tjBufSize(kWidth, kHeight, TJSAMP_420));
  start = absl::Now();
  for (auto& buffer : buffers) {
    unsigned char* dst = out.data();
    unsigned long size = out.size();
    tjCompress2(handle, reinterpret_cast<unsigned char*>(buffer.data()), kWidth,
                0, kHeight, TJPF_BGRX, &dst, &size, TJSAMP_420, 80,
                TJFLAG_NOREALLOC | TJFLAG_FASTDCT);
  }
  double plain = absl::ToDoubleSeconds(absl::Now() - start);
  tjDestroy(handle);
  double mp = 20.0 * kWidth * kHeight / 1e6;
  std::printf(
      "   service encoder %.1f MP/s, plain TurboJPEG %.1f MP/s: %.2fx   target "
      ">= 0.8x\n",
      mp / ours, mp / plain, plain / ours);
}

void TypingSection() {
  std::printf(
      "\n4. bytes per update, console typing (one 8x16 cell per update), "
      "1080p\n");
  std::string address =
      "unix:/tmp/vgpu-bench-t-" + std::to_string(getpid()) + ".sock";
  for (pb::ImageFormat format : {pb::IMAGE_FORMAT_ZSTD_BGRX,
                                 pb::IMAGE_FORMAT_PNG, pb::IMAGE_FORMAT_JPEG}) {
    Server server(address);
    Screen screen(kWidth, kHeight);
    auto scene = synth::MakeScene("console", kWidth, kHeight);
    std::vector<synth::Damage> damage;
    (*scene)->Render(0, screen.pixels(), &damage);
    server.store().OnFrame(0, screen.Commit({0, 0, kWidth, kHeight}),
                           {{0, 0, kWidth, kHeight}});
    grpc::ClientContext context;
    ViewerResult result;
    std::thread viewer(RunViewer, server.address(), format, &context, &result,
                       absl::InfiniteDuration(), absl::ZeroDuration(), nullptr,
                       nullptr);
    absl::SleepFor(absl::Milliseconds(300));
    for (uint64_t i = 1; i <= 200; ++i) {
      damage.clear();
      (*scene)->Render(i, screen.pixels(), &damage);
      const synth::Damage& d = damage[0];
      gpu::PixelRect rect{d.x, d.y, d.width, d.height};
      server.store().OnFrame(0, screen.Commit(rect), {rect});
      absl::SleepFor(absl::Milliseconds(5));
    }
    absl::SleepFor(absl::Milliseconds(300));
    context.TryCancel();
    viewer.join();
    std::vector<double> sizes;
    for (size_t i = 1; i < result.update_bytes.size(); ++i)
      sizes.push_back(result.update_bytes[i]);
    const char* name = format == pb::IMAGE_FORMAT_ZSTD_BGRX ? "zstd"
                       : format == pb::IMAGE_FORMAT_PNG     ? "png"
                                                            : "jpeg";
    std::printf(
        "   %-4s median %6.0f B  p99 %6.0f B per update (%zu updates)%s\n",
        name, Percentile(sizes, 0.5), Percentile(sizes, 0.99), sizes.size(),
        format == pb::IMAGE_FORMAT_ZSTD_BGRX ? "   target median <= 2 KB" : "");
  }
}

void StallSection() {
  std::printf(
      "\n5. a viewer stalled for 2 s while 1080p frames arrive at 30 fps "
      "(raw)\n");
  std::string address =
      "unix:/tmp/vgpu-bench-s-" + std::to_string(getpid()) + ".sock";
  Server server(address);
  Screen screen(kWidth, kHeight);
  grpc::ClientContext context;
  ViewerResult result;
  std::vector<uint64_t> resumed;
  std::thread viewer(RunViewer, server.address(), pb::IMAGE_FORMAT_RAW_BGRX,
                     &context, &result, absl::Milliseconds(500),
                     absl::Seconds(2), &resumed, &server.store());
  absl::SleepFor(absl::Milliseconds(300));
  long rss_before = ResidentKiB(), rss_peak = rss_before;
  absl::Time next = absl::Now();
  for (uint32_t i = 0; i < 120; ++i) {
    DrawVideo(screen, i);
    server.store().OnFrame(0, screen.Commit({0, 0, kWidth, kHeight}),
                           {{0, 0, kWidth, kHeight}});
    rss_peak = std::max(rss_peak, ResidentKiB());
    next += absl::Seconds(1.0 / 30);
    absl::SleepFor(next - absl::Now());
  }
  context.TryCancel();
  viewer.join();
  std::printf(
      "   server RSS %ld MiB before, %ld MiB peak (frames of 8 MiB kept: "
      "latest only)\n",
      rss_before / 1024, rss_peak / 1024);
  if (resumed.size() == 2) {
    std::printf(
        "   first update made after resuming: frame %llu; latest frame on "
        "arrival: %llu%s\n",
        static_cast<unsigned long long>(resumed[0]),
        static_cast<unsigned long long>(resumed[1]),
        resumed[0] + 1 >= resumed[1] ? " (the current screen)" : " (STALE)");
  }
  std::printf("   updates received: %llu of 120 frames\n",
              static_cast<unsigned long long>(result.updates));
}

}  // namespace
}  // namespace vgpu

int main(int argc, char** argv) {
  vgpu::SetMinLogSeverity(vgpu::LogSeverity::kError);
  vgpu::KeepLargeBuffersInHeap();  // as vgpu-displayd and vgpu-watch do
  if (argc == 4 && std::string(argv[1]) == "--viewers") {
    return vgpu::ViewersMain(argv[2], std::atoi(argv[3]));
  }
  std::string only = argc > 1 ? argv[1] : "";
  if (only.empty() || only == "latency")
    vgpu::LatencySection(argc > 2 ? argv[2] : "");
  if (only.empty() || only == "viewers") vgpu::ViewersSection(argv[0]);
  if (only.empty() || only == "jpeg") vgpu::JpegSection();
  if (only.empty() || only == "typing") vgpu::TypingSection();
  if (only.empty() || only == "stall") vgpu::StallSection();
  return 0;
}
