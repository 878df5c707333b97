// stream_probe: a measuring StreamFrames viewer for the real-guest
// benchmark, the gRPC counterpart of ../shared/tools/rfb_probe.py (same
// modes, same JSON fields), so that the daemon and QEMU's VNC server are
// measured the same way.
//
//   stream_probe --server=unix:/run/grpc.sock --mode=stats --format=zstd
//       --duration=10s --json=out.json
//   stream_probe --server=... --mode=latency --trigger_path=serial.sock
//       --region=0,0,1280,32 --tries=30
//
// stats: updates per second, bytes per update (p50, p99, mean) and per
// second over --duration. Bytes are the serialized StreamFramesResponse
// messages of each update (every band; no gRPC or HTTP/2 framing, as
// rfb_probe counts RFB bytes without TCP/IP).
// latency: writes a trigger line (e.g. to the guest's serial console), and
// times until an update has changed most of --region.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "vgpu/display/v1/display.grpc.pb.h"
#include <grpcpp/grpcpp.h>

#include "clients/common/grpc_client.h"
#include "clients/watch/screen_model.h"
#include "common/allocator.h"
#include "common/cli.h"
#include "common/compact_update.h"
#include "common/mutex.h"
#include "device/gpu/frame.h"
#include "tests/bench/trigger_latency.h"

ABSL_FLAG(std::string, mode, "stats",
          "stats, latency, or first (the bytes of the first update: the whole "
          "screen).");
ABSL_FLAG(std::string, format, "zstd",
          "Encoding asked for: adaptive, indexed, zstd, jpeg, png, raw (a "
          "list, comma "
          "separated, in order of preference).");
ABSL_FLAG(uint32_t, quality, 60, "JPEG quality, 1..100.");
ABSL_FLAG(uint32_t, credits, 2, "Updates in flight before an ack.");
ABSL_FLAG(bool, copies, true,
          "Accept copy rects (scrolls sent as copies of what is shown).");
ABSL_FLAG(bool, compact, true,
          "Ask for compact updates (fields the client can derive left out).");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "stats: how long to count.");
ABSL_FLAG(absl::Duration, warmup, absl::ZeroDuration(),
          "stats: time after the first update before counting.");
ABSL_FLAG(std::string, json, "", "Also write the result as JSON here.");
ABSL_FLAG(std::string, dump, "",
          "stats: also write one line per message here (its bytes by field, "
          "each rect and copy), to see where an update's bytes go.");

namespace {

namespace pb = vgpu::display::v1;
using vgpu::bench::Percentile;

struct Update {
  absl::Time first, done;
  int64_t flush_time_ns = 0;  // the device's flush (0 in a refresh)
  uint64_t bytes = 0;
  uint32_t rects = 0;
  uint32_t jpeg_rects = 0;
  bool refresh = false;
  bool region_hit = false;
};

// Reads the stream on its own thread: applies every update to the model and
// keeps a record of each.
class Receiver {
 public:
  explicit Receiver(pb::Display::Stub* stub) : stub_(stub) {
    const std::string dump = absl::GetFlag(FLAGS_dump);
    if (!dump.empty()) dump_ = std::fopen(dump.c_str(), "w");
  }
  ~Receiver() {
    context_.TryCancel();
    if (thread_.joinable()) thread_.join();
    if (dump_ != nullptr) std::fclose(dump_);
  }

  absl::Status Start(const std::vector<pb::ImageFormat>& formats,
                     uint32_t quality, uint32_t credits) {
    stream_ = stub_->StreamFrames(&context_);
    pb::StreamFramesRequest request;
    pb::Subscribe* subscribe = request.mutable_subscribe();
    for (pb::ImageFormat format : formats) subscribe->add_formats(format);
    subscribe->set_jpeg_quality(quality);
    subscribe->set_max_in_flight(credits);
    subscribe->set_accept_copies(absl::GetFlag(FLAGS_copies));
    subscribe->set_compact_updates(absl::GetFlag(FLAGS_compact));
    if (!stream_->Write(request))
      return absl::UnavailableError("the daemon closed the stream");
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  // Waits until at least `count` updates arrived or `deadline` passed.
  bool WaitForUpdates(size_t count, absl::Time deadline) {
    vgpu::MutexLock lock(&mu_);
    return mu_.AwaitUntil(
               [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
                 return updates_.size() >= count || ended_;
               },
               absl::ToChronoTime(deadline)) &&
           updates_.size() >= count;
  }
  void set_region(const vgpu::gpu::PixelRect& region) {
    vgpu::MutexLock lock(&mu_);
    region_ = region;
  }
  // B,G,R of every 16th pixel of the region.
  std::vector<uint8_t> RegionSample() {
    vgpu::MutexLock lock(&mu_);
    std::vector<uint8_t> sample;
    for (uint32_t y = region_.y; y < region_.y + region_.height; y += 4)
      for (uint32_t x = region_.x; x < region_.x + region_.width; x += 4) {
        uint32_t pixel = model_.PixelAt(x, y);
        sample.push_back(static_cast<uint8_t>(pixel));
        sample.push_back(static_cast<uint8_t>(pixel >> 8));
        sample.push_back(static_cast<uint8_t>(pixel >> 16));
      }
    return sample;
  }
  std::vector<Update> updates() {
    vgpu::MutexLock lock(&mu_);
    return updates_;
  }
  size_t update_count() {
    vgpu::MutexLock lock(&mu_);
    return updates_.size();
  }
  std::string error() {
    vgpu::MutexLock lock(&mu_);
    return error_;
  }

 private:
  void Run() {
    pb::StreamFramesResponse event;
    Update current;
    bool in_update = false;
    while (stream_->Read(&event)) {
      const absl::Time now = absl::Now();
      vgpu::MutexLock lock(&mu_);
      if (!in_update && event.has_update()) {
        current = Update{now, now};
        in_update = true;
      }
      if (in_update) current.bytes += event.ByteSizeLong();
      if (dump_ != nullptr) Dump(event);
      if (event.has_update()) expander_.Expand(event.mutable_update());
      if (absl::Status status = model_.Apply(event); !status.ok()) {
        error_ = std::string(status.message());
        break;
      }
      if (!event.has_update()) continue;
      const pb::FrameUpdate& update = event.update();
      current.rects += static_cast<uint32_t>(update.rects_size());
      current.refresh = update.refresh();
      current.flush_time_ns = update.flush_time_unix_ns();
      for (const pb::EncodedRect& rect : update.rects()) {
        const vgpu::gpu::PixelRect r{rect.rect().x(), rect.rect().y(),
                                     rect.rect().width(), rect.rect().height()};
        current.region_hit |= !vgpu::gpu::Intersect(r, region_).empty();
        current.jpeg_rects +=
            !rect.solid() && rect.format() == pb::IMAGE_FORMAT_JPEG;
      }
      if (!update.end_of_update()) continue;
      current.done = now;
      updates_.push_back(current);
      in_update = false;
      pb::StreamFramesRequest ack;
      ack.mutable_ack()->set_update_id(update.update_id());
      mu_.Unlock();
      stream_->Write(ack);
      mu_.Lock();
      mu_.NotifyAll();
    }
    vgpu::MutexLock lock(&mu_);
    ended_ = true;
    mu_.NotifyAll();
  }

  // One line: the message's bytes, the envelope's (all but rects and
  // copies), then each rect (x,y,w,h format bytes-of-data) and copy.
  void Dump(const pb::StreamFramesResponse& event) {
    std::string line = absl::StrCat(event.ByteSizeLong());
    if (event.has_update()) {
      pb::StreamFramesResponse envelope = event;
      envelope.mutable_update()->clear_rects();
      envelope.mutable_update()->clear_copies();
      absl::StrAppend(&line, " envelope=", envelope.ByteSizeLong());
      for (const pb::EncodedRect& r : event.update().rects())
        absl::StrAppend(&line, " rect=", r.rect().x(), ",", r.rect().y(), ",",
                        r.rect().width(), "x", r.rect().height(), ":",
                        r.solid() ? "solid" : pb::ImageFormat_Name(r.format()),
                        ":", r.data().size(), "/", r.ByteSizeLong());
      for (const pb::CopyRect& c : event.update().copies())
        absl::StrAppend(&line, " copy=", c.rect().height(), "rows");
    } else {
      absl::StrAppend(&line, " ", event.GetDescriptor()->name(), " ",
                      event.ShortDebugString().substr(0, 60));
    }
    std::fprintf(dump_, "%s\n", line.c_str());
  }

  pb::Display::Stub* const stub_;
  FILE* dump_ = nullptr;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::StreamFramesRequest,
                                           pb::StreamFramesResponse>>
      stream_;
  std::thread thread_;
  vgpu::UpdateExpander expander_;  // only on thread_
  vgpu::Mutex mu_;
  vgpu::watch::ScreenModel model_ VGPU_GUARDED_BY(mu_);
  std::vector<Update> updates_ VGPU_GUARDED_BY(mu_);
  vgpu::gpu::PixelRect region_ VGPU_GUARDED_BY(mu_);
  bool ended_ VGPU_GUARDED_BY(mu_) = false;
  std::string error_ VGPU_GUARDED_BY(mu_);
};

void Emit(const std::string& line, const std::string& json) {
  std::printf("%s\n", line.c_str());
  const std::string path = absl::GetFlag(FLAGS_json);
  if (path.empty()) return;
  if (FILE* f = path == "-" ? stdout : std::fopen(path.c_str(), "w")) {
    std::fprintf(f, "%s\n", json.c_str());
    if (f != stdout) std::fclose(f);
  }
}

int Stats(Receiver& receiver) {
  if (!receiver.WaitForUpdates(1, absl::Now() + absl::Seconds(20))) {
    std::fprintf(stderr, "stream_probe: no first update\n");
    return 6;
  }
  const absl::Time t0 = absl::Now() + absl::GetFlag(FLAGS_warmup);
  const absl::Time t1 = t0 + absl::GetFlag(FLAGS_duration);
  absl::SleepFor(t1 - absl::Now());
  std::vector<double> sizes, rects;
  uint64_t bytes = 0, refreshes = 0;
  for (const Update& u : receiver.updates()) {
    if (u.done < t0 || u.done > t1) continue;
    sizes.push_back(static_cast<double>(u.bytes));
    rects.push_back(u.rects);
    bytes += u.bytes;
    refreshes += u.refresh;
  }
  const double seconds = absl::ToDoubleSeconds(t1 - t0);
  double mean = sizes.empty() ? 0 : static_cast<double>(bytes) / sizes.size();
  const std::string json = absl::StrFormat(
      "{\"duration_s\": %.3f, \"updates\": %d, \"refresh_updates\": %d, "
      "\"updates_per_s\": %.2f, \"bytes\": %d, \"bytes_per_s\": %.1f, "
      "\"bytes_per_update_p50\": %.0f, \"bytes_per_update_p99\": %.0f, "
      "\"bytes_per_update_mean\": %.1f, \"rects_per_update_p50\": %.0f}",
      seconds, sizes.size(), refreshes, sizes.size() / seconds, bytes,
      bytes / seconds, Percentile(sizes, 50), Percentile(sizes, 99), mean,
      Percentile(rects, 50));
  Emit(absl::StrFormat(
           "stats over %.1f s: %d updates (%.1f/s, %d refreshes), bytes/update "
           "p50 %.0f p99 %.0f, %.1f kB/s, rects/update p50 %.0f",
           seconds, sizes.size(), sizes.size() / seconds, refreshes,
           Percentile(sizes, 50), Percentile(sizes, 99), bytes / seconds / 1e3,
           Percentile(rects, 50)),
       json);
  return 0;
}

int First(Receiver& receiver) {
  if (!receiver.WaitForUpdates(1, absl::Now() + absl::Seconds(20))) {
    std::fprintf(stderr, "stream_probe: no first update\n");
    return 6;
  }
  const Update first = receiver.updates().front();
  Emit(absl::StrFormat("first update: %d bytes, %d rects (%d JPEG)",
                       first.bytes, first.rects, first.jpeg_rects),
       absl::StrFormat("{\"first_update_bytes\": %d, \"rects\": %d, "
                       "\"jpeg_rects\": %d}",
                       first.bytes, first.rects, first.jpeg_rects));
  return 0;
}

int Latency(Receiver& receiver) {
  const std::optional<vgpu::bench::Region> region =
      vgpu::bench::RegionFromFlag();
  if (!region) {
    std::fprintf(stderr, "stream_probe: --region needs X,Y,W,H\n");
    return 2;
  }
  receiver.set_region({region->x, region->y, region->width, region->height});
  if (!receiver.WaitForUpdates(1, absl::Now() + absl::Seconds(20))) {
    std::fprintf(stderr, "stream_probe: no first update\n");
    return 6;
  }
  size_t seen_count = 0;
  vgpu::bench::LatencyViewer viewer = {
      .idle = [](absl::Duration gap) { absl::SleepFor(gap); },
      .sample =
          [&] {
            seen_count = receiver.update_count();
            return receiver.RegionSample();
          },
      .wait = [&](const std::vector<uint8_t>& before,
                  absl::Time deadline) -> std::optional<vgpu::bench::MarkSeen> {
        while (receiver.WaitForUpdates(seen_count + 1, deadline)) {
          std::vector<Update> all = receiver.updates();
          for (; seen_count < all.size(); ++seen_count) {
            const Update& update = all[seen_count];
            if (!update.region_hit ||
                !vgpu::bench::MostlyChanged(before, receiver.RegionSample()))
              continue;
            vgpu::bench::MarkSeen seen = {.first = update.first,
                                          .done = update.done};
            if (update.flush_time_ns > 0)
              seen.flush = absl::FromUnixNanos(update.flush_time_ns);
            return seen;
          }
        }
        return std::nullopt;
      }};
  absl::StatusOr<vgpu::bench::TriggerLatencyResult> result =
      vgpu::bench::MeasureTriggerLatency(
          vgpu::bench::TriggerLatencyOptionsFromFlags(), viewer);
  if (!result.ok()) {
    std::fprintf(stderr, "stream_probe: %s\n",
                 std::string(result.status().message()).c_str());
    return 1;
  }
  Emit(vgpu::bench::LatencyLine(*result), vgpu::bench::LatencyJson(*result));
  return result->missed == 0 ? 0 : 6;
}

}  // namespace

int main(int argc, char** argv) {
  vgpu::cli::ParseOrExit(
      argc, argv,
      {"stream_probe",
       "A measuring StreamFrames viewer (stats, latency) for benchmarks."});
  vgpu::KeepLargeBuffersInHeap();
  vgpu::clients::QuietGrpcLogs();
  std::vector<pb::ImageFormat> formats;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_format), ',')) {
    if (name == "indexed")
      formats.push_back(pb::IMAGE_FORMAT_INDEXED);
    else if (name == "adaptive")
      formats.push_back(pb::IMAGE_FORMAT_ADAPTIVE);
    else if (name == "zstd")
      formats.push_back(pb::IMAGE_FORMAT_ZSTD_BGRX);
    else if (name == "jpeg")
      formats.push_back(pb::IMAGE_FORMAT_JPEG);
    else if (name == "png")
      formats.push_back(pb::IMAGE_FORMAT_PNG);
    else if (name == "raw")
      formats.push_back(pb::IMAGE_FORMAT_RAW_BGRX);
    else {
      std::fprintf(stderr, "stream_probe: unknown --format %s\n",
                   std::string(name).c_str());
      return 2;
    }
  }
  absl::StatusOr<vgpu::clients::Connection> connection =
      vgpu::clients::ConnectFromFlags(64 << 20);
  if (!connection.ok()) {
    std::fprintf(stderr, "stream_probe: %s\n",
                 std::string(connection.status().message()).c_str());
    return 1;
  }
  auto stub = pb::Display::NewStub(connection->channel);
  int code;
  {
    Receiver receiver(stub.get());
    if (absl::Status s = receiver.Start(formats, absl::GetFlag(FLAGS_quality),
                                        absl::GetFlag(FLAGS_credits));
        !s.ok()) {
      std::fprintf(stderr, "stream_probe: %s\n",
                   std::string(s.message()).c_str());
      return 3;
    }
    const std::string mode = absl::GetFlag(FLAGS_mode);
    code = mode == "latency" ? Latency(receiver)
           : mode == "first" ? First(receiver)
                             : Stats(receiver);
    if (!receiver.error().empty()) {
      std::fprintf(stderr, "stream_probe: %s\n", receiver.error().c_str());
      code = 5;
    }
  }
  return code;
}
