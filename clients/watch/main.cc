// vgpu-watch: subscribes to a scanout over gRPC (StreamFrames), keeps a
// local copy of the screen, and prints frames per second, flush-to-receive
// latency and bandwidth every second. It can record the stream to a file
// and replay a recording without a server.
//
//   vgpu-watch --server=127.0.0.1:50051 --format=zstd --duration=10s
//   vgpu-watch --server=unix:/run/vgpu.grpc --record=session.vgpurec
//   vgpu-watch --replay=session.vgpurec --out=last.ppm
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "vgpu/display/v1/display.grpc.pb.h"
#include <grpcpp/grpcpp.h>

#include "clients/common/subsampling_flag.h"
#include "clients/watch/screen_model.h"
#include "common/allocator.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051",
          "vgpu-displayd's gRPC address.");
ABSL_FLAG(uint32_t, scanout, 0, "Scanout to watch.");
ABSL_FLAG(std::string, format, "zstd",
          "Preferred encoding: zstd, raw (BGRX), rgbx, png or jpeg.");
ABSL_FLAG(uint32_t, quality, 80, "JPEG quality, 1..100.");
ABSL_FLAG(std::string, subsampling, "420", vgpu::clients::kSubsamplingHelp);
ABSL_FLAG(uint32_t, max_fps, 0,
          "Most updates per second (0: as fast as they come).");
ABSL_FLAG(uint32_t, credits, 2, "Updates in flight before an ack.");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "Stop after this long (0: never).");
ABSL_FLAG(std::string, record, "", "Record the stream to this file.");
ABSL_FLAG(std::string, replay, "", "Replay a recording instead of connecting.");
ABSL_FLAG(std::string, out, "",
          "Write the last screen to this PPM file at the end.");

namespace {

namespace pb = vgpu::display::v1;
constexpr char kMagic[8] = {'V', 'G', 'P', 'U', 'R', 'E', 'C', '1'};

// Per-second and total figures.
class Stats {
 public:
  void Event(const pb::StreamFramesResponse& event, int64_t received_ns) {
    bytes_ += event.ByteSizeLong();
    if (event.has_update() && event.update().end_of_update()) {
      ++updates_;
      ++total_updates_;
      if (event.update().refresh()) ++refreshes_;
      int64_t flush = event.update().flush_time_unix_ns();
      if (flush > 0)
        latencies_ms_.push_back(static_cast<double>(received_ns - flush) / 1e6);
    }
  }
  void Report(double seconds) {
    std::sort(latencies_ms_.begin(), latencies_ms_.end());
    auto percentile = [this](double p) {
      return latencies_ms_.empty()
                 ? 0.0
                 : latencies_ms_[static_cast<size_t>(
                       p * static_cast<double>(latencies_ms_.size() - 1))];
    };
    std::printf("%6.1f fps  latency p50 %6.2f ms p99 %6.2f ms  %8.2f MB/s\n",
                static_cast<double>(updates_) / seconds, percentile(0.5),
                percentile(0.99), static_cast<double>(bytes_) / seconds / 1e6);
    std::fflush(stdout);
    updates_ = 0;
    bytes_ = 0;
    latencies_ms_.clear();
  }
  uint64_t total_updates() const { return total_updates_; }
  uint64_t refreshes() const { return refreshes_; }

 private:
  uint64_t updates_ = 0, total_updates_ = 0, refreshes_ = 0, bytes_ = 0;
  std::vector<double> latencies_ms_;
};

pb::ImageFormat ParseFormat(const std::string& name) {
  if (name == "raw") return pb::IMAGE_FORMAT_RAW_BGRX;
  if (name == "rgbx") return pb::IMAGE_FORMAT_RAW_RGBX;
  if (name == "png") return pb::IMAGE_FORMAT_PNG;
  if (name == "jpeg" || name == "jpg") return pb::IMAGE_FORMAT_JPEG;
  if (name == "zstd") return pb::IMAGE_FORMAT_ZSTD_BGRX;
  return pb::IMAGE_FORMAT_UNSPECIFIED;
}

int Finish(const vgpu::watch::ScreenModel& screen, const Stats& stats) {
  std::printf("%llu updates (%llu lossless refreshes); screen %ux%u\n",
              static_cast<unsigned long long>(stats.total_updates()),
              static_cast<unsigned long long>(stats.refreshes()),
              screen.width(), screen.height());
  if (std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    std::ofstream(out, std::ios::binary) << screen.ToPpm();
  }
  return 0;
}

int Replay(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) {
    std::fprintf(stderr, "vgpu-watch: %s is not a recording\n", path.c_str());
    return 1;
  }
  vgpu::watch::ScreenModel screen;
  Stats stats;
  int64_t first = -1, second_start = 0;
  while (true) {
    int64_t received;
    uint32_t length;
    if (!in.read(reinterpret_cast<char*>(&received), 8)) break;
    if (!in.read(reinterpret_cast<char*>(&length), 4) || length > (64u << 20)) {
      std::fprintf(stderr, "vgpu-watch: truncated recording\n");
      return 1;
    }
    std::string bytes(length, '\0');
    pb::StreamFramesResponse event;
    if (!in.read(bytes.data(), length) || !event.ParseFromString(bytes)) {
      std::fprintf(stderr, "vgpu-watch: corrupt recording\n");
      return 1;
    }
    if (first < 0) first = second_start = received;
    if (received - second_start >= 1000000000) {
      stats.Report(static_cast<double>(received - second_start) / 1e9);
      second_start = received;
    }
    stats.Event(event, received);
    if (absl::Status status = screen.Apply(event); !status.ok()) {
      std::fprintf(stderr, "vgpu-watch: %s\n",
                   std::string(status.message()).c_str());
      return 1;
    }
  }
  return Finish(screen, stats);
}

int Watch() {
  pb::ImageFormat format = ParseFormat(absl::GetFlag(FLAGS_format));
  if (format == pb::IMAGE_FORMAT_UNSPECIFIED) {
    std::fprintf(stderr,
                 "vgpu-watch: --format must be zstd, raw, rgbx, png or jpeg\n");
    return 2;
  }
  std::ofstream record;
  if (std::string path = absl::GetFlag(FLAGS_record); !path.empty()) {
    record.open(path, std::ios::binary);
    record.write(kMagic, 8);
  }
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(64 << 20);
  auto stub = pb::Display::NewStub(
      grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                grpc::InsecureChannelCredentials(), arguments));
  grpc::ClientContext context;
  absl::Duration duration = absl::GetFlag(FLAGS_duration);
  if (duration > absl::ZeroDuration()) {
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoMilliseconds(duration));
  }
  auto stream = stub->StreamFrames(&context);
  pb::StreamFramesRequest subscribe;
  pb::Subscribe* s = subscribe.mutable_subscribe();
  s->set_scanout_id(absl::GetFlag(FLAGS_scanout));
  s->add_formats(format);
  s->set_jpeg_quality(absl::GetFlag(FLAGS_quality));
  std::optional<pb::JpegSubsampling> subsampling =
      vgpu::clients::ParseSubsampling(absl::GetFlag(FLAGS_subsampling));
  if (!subsampling) {
    std::fprintf(stderr,
                 "vgpu-watch: --subsampling must be 420, 422, 444 or gray\n");
    return 2;
  }
  s->set_jpeg_subsampling(*subsampling);
  s->set_max_fps(absl::GetFlag(FLAGS_max_fps));
  s->set_max_in_flight(absl::GetFlag(FLAGS_credits));
  s->set_include_cursor(true);
  if (!stream->Write(subscribe)) {
    grpc::Status status = stream->Finish();
    std::fprintf(stderr, "vgpu-watch: %s\n", status.error_message().c_str());
    return 1;
  }
  vgpu::watch::ScreenModel screen;
  Stats stats;
  absl::Time second_start = absl::Now();
  pb::StreamFramesResponse event;
  while (stream->Read(&event)) {
    int64_t received = absl::ToUnixNanos(absl::Now());
    if (record.is_open()) {
      std::string bytes = event.SerializeAsString();
      uint32_t length = static_cast<uint32_t>(bytes.size());
      record.write(reinterpret_cast<const char*>(&received), 8);
      record.write(reinterpret_cast<const char*>(&length), 4);
      record.write(bytes.data(), length);
    }
    stats.Event(event, received);
    if (event.has_started()) {
      std::printf(
          "subscribed: scanout %u %ux%u, format %s, %u credits%s%s\n",
          event.started().scanout().id(), event.started().scanout().width(),
          event.started().scanout().height(),
          pb::ImageFormat_Name(event.started().format()).c_str(),
          event.started().max_in_flight(),
          event.started().refresh_format() != pb::IMAGE_FORMAT_UNSPECIFIED
              ? ", lossless refresh in "
              : "",
          event.started().refresh_format() != pb::IMAGE_FORMAT_UNSPECIFIED
              ? pb::ImageFormat_Name(event.started().refresh_format()).c_str()
              : "");
    }
    if (absl::Status status = screen.Apply(event); !status.ok()) {
      std::fprintf(stderr, "vgpu-watch: %s\n",
                   std::string(status.message()).c_str());
      return 1;
    }
    if (event.has_update() && event.update().end_of_update()) {
      pb::StreamFramesRequest ack;
      ack.mutable_ack()->set_update_id(event.update().update_id());
      stream->Write(ack);
    }
    if (absl::Now() - second_start >= absl::Seconds(1)) {
      stats.Report(absl::ToDoubleSeconds(absl::Now() - second_start));
      second_start = absl::Now();
    }
  }
  grpc::Status status = stream->Finish();
  if (!status.ok() &&
      status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
    std::fprintf(stderr, "vgpu-watch: %s\n", status.error_message().c_str());
    return 1;
  }
  return Finish(screen, stats);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "vgpu-watch: watch a VM's screen from vgpu-displayd");
  absl::ParseCommandLine(argc, argv);
  vgpu::KeepLargeBuffersInHeap();
  std::string replay = absl::GetFlag(FLAGS_replay);
  return replay.empty() ? Watch() : Replay(replay);
}
