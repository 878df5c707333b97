// vgpu-watch: subscribes to a scanout over gRPC (StreamFrames), keeps a
// local copy of the screen, and prints frames per second, flush-to-receive
// latency and bandwidth every second. It can record the stream to a file
// and replay a recording without a server.
//
//   vgpu-watch --server=127.0.0.1:50051 --format=zstd --duration=10s
//   vgpu-watch --server=unix:/run/vgpu.grpc --record=session.vgpurec
//   vgpu-watch --replay=session.vgpurec --out=last.ppm
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "vgpu/display/v1/display.grpc.pb.h"
#include <grpcpp/grpcpp.h>

#include "clients/common/grpc_client.h"
#include "clients/common/output_file.h"
#include "clients/common/subsampling_flag.h"
#include "clients/watch/screen_model.h"
#include "common/allocator.h"
#include "common/cli.h"
#include "common/compact_update.h"
#include "common/mutex.h"
#include "common/stop_signals.h"

ABSL_FLAG(uint32_t, scanout, 0, "Scanout to watch.");
ABSL_FLAG(std::string, format, "zstd",
          "Preferred encoding: zstd, indexed (lossless, text as a palette), "
          "adaptive (indexed text, JPEG pictures), raw (BGRX), rgbx, png or "
          "jpeg.");
ABSL_FLAG(uint32_t, quality, 80, "JPEG quality, 1..100.");
ABSL_FLAG(std::string, subsampling, "420", vgpu::clients::kSubsamplingHelp);
ABSL_FLAG(uint32_t, max_fps, 0,
          "Most updates per second (0: as fast as they come).");
ABSL_FLAG(uint32_t, credits, 2, "Updates in flight before an ack.");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "Stop after this long, with a unit (10s, 2m); 0: until Ctrl-C or the "
          "daemon ends the stream.");
ABSL_FLAG(std::string, record, "",
          "Record the stream to this file (replay with --replay). Recordings "
          "hold the stream as sent: in raw or rgbx about 120 MB/s at 1080p "
          "and 30 fps, far less in zstd or jpeg.");
ABSL_FLAG(std::string, replay, "", "Replay a recording instead of connecting.");
ABSL_FLAG(std::string, out, "",
          "Write the last screen to this PPM file at the end, however the "
          "watch ends (also on Ctrl-C or when the daemon stops).");

namespace {

namespace pb = vgpu::display::v1;
constexpr char kMagic[8] = {'V', 'G', 'P', 'U', 'R', 'E', 'C', '1'};

// Per-second and total figures.
class Stats {
 public:
  // Latency counts updates that answer a flush: not the first full update
  // after subscribing or a mode change (its flush may be long past on a
  // still screen), nor lossless refreshes (sent when the screen settled).
  // `wire_bytes`: the message as it came (before UpdateExpander).
  void Event(const pb::StreamFramesResponse& event, size_t wire_bytes,
             int64_t received_ns) {
    bytes_ += wire_bytes;
    if (event.has_started() || event.has_mode_changed()) skip_next_ = true;
    if (event.has_update() && event.update().end_of_update()) {
      ++updates_;
      ++total_updates_;
      if (event.update().refresh()) ++refreshes_;
      int64_t flush = event.update().flush_time_unix_ns();
      if (flush > 0 && !skip_next_ && !event.update().refresh())
        latencies_ms_.push_back(static_cast<double>(received_ns - flush) / 1e6);
      skip_next_ = false;
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
  bool skip_next_ = true;
  std::vector<double> latencies_ms_;
};

pb::ImageFormat ParseFormat(const std::string& name) {
  if (name == "raw") return pb::IMAGE_FORMAT_RAW_BGRX;
  if (name == "rgbx") return pb::IMAGE_FORMAT_RAW_RGBX;
  if (name == "png") return pb::IMAGE_FORMAT_PNG;
  if (name == "jpeg" || name == "jpg") return pb::IMAGE_FORMAT_JPEG;
  if (name == "zstd") return pb::IMAGE_FORMAT_ZSTD_BGRX;
  if (name == "indexed") return pb::IMAGE_FORMAT_INDEXED;
  if (name == "adaptive") return pb::IMAGE_FORMAT_ADAPTIVE;
  return pb::IMAGE_FORMAT_UNSPECIFIED;
}

constexpr absl::string_view kName = "vgpu-watch";

// Exit codes (also in --help).
constexpr int kEndedAsAsked = 0;  // --duration elapsed, or a replay ended
constexpr int kError = 1;         // cannot connect, stream or output error
constexpr int kServerEnded = 3;   // the daemon ended the stream
constexpr int kSignalBase = 128;  // + the signal: Ctrl-C is 130

void Error(absl::string_view message) { vgpu::cli::Failure(kName, message); }

// --out: checked at start so that a bad path is known before watching;
// written whole at the end (an earlier file stays if no screen came).
class ScreenFile {
 public:
  absl::Status Open(const std::string& path) {
    path_ = path;
    if (path.empty()) return absl::OkStatus();
    absl::Status writable = vgpu::clients::CheckWritable(path);
    if (!writable.ok()) {
      return absl::PermissionDeniedError(
          absl::StrCat("--out: ", writable.message()));
    }
    return absl::OkStatus();
  }
  bool Write(const vgpu::watch::ScreenModel& screen) {
    if (path_.empty()) return true;
    if (screen.width() == 0) {
      Error(absl::StrCat("no screen was received; ", path_, " not written"));
      return false;
    }
    absl::Status written =
        vgpu::clients::WriteFileAtomically(path_, screen.ToPpm());
    if (!written.ok()) Error(written.message());
    return written.ok();
  }

 private:
  std::string path_;
};

// Waits for SIGINT/SIGTERM (blocked in every thread from main on) and
// cancels what the watch is doing (the connection wait, the call, a
// replay), so that it ends through its normal path: last screen, summary.
class SignalWatcher {
 public:
  SignalWatcher() {
    thread_ = std::thread([this] {
      const sigset_t signals = vgpu::StopSignals();
      int received = 0;
      do {
        sigwait(&signals, &received);
        if (done_) return;
      } while (received == vgpu::kWakeSignal);
      MutexLock lock(&mu_);
      signal_ = received;
      if (context_ != nullptr) context_->TryCancel();
    });
  }
  ~SignalWatcher() {
    done_ = true;
    pthread_kill(thread_.native_handle(), vgpu::kWakeSignal);
    thread_.join();
  }
  // The call to cancel on a signal (nullptr: none); cancelled at once if a
  // signal came already.
  void Attach(grpc::ClientContext* context) {
    MutexLock lock(&mu_);
    context_ = context;
    if (context_ != nullptr && signal_ != 0) context_->TryCancel();
  }
  // 0, or the signal that asked the watch to stop.
  int signal() const {
    MutexLock lock(&mu_);
    return signal_;
  }

 private:
  using Mutex = vgpu::Mutex;
  using MutexLock = vgpu::MutexLock;
  std::atomic<bool> done_{false};
  mutable Mutex mu_;
  int signal_ VGPU_GUARDED_BY(mu_) = 0;
  grpc::ClientContext* context_ VGPU_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

// The end of every watch: the last screen, the summary, the exit code.
int Finish(const vgpu::watch::ScreenModel& screen, const Stats& stats,
           ScreenFile& out, int code) {
  if (code > kSignalBase) {
    std::printf("stopped by %s\n",
                code == kSignalBase + SIGINT ? "SIGINT" : "SIGTERM");
  }
  std::printf("%llu updates (%llu lossless refreshes); screen %ux%u\n",
              static_cast<unsigned long long>(stats.total_updates()),
              static_cast<unsigned long long>(stats.refreshes()),
              screen.width(), screen.height());
  std::fflush(stdout);
  if (!out.Write(screen) && code == kEndedAsAsked) return kError;
  return code;
}

int Replay(const std::string& path, const SignalWatcher& signals) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    Error(absl::StrCat("cannot read --replay=", path, ": ", strerror(errno)));
    return kError;
  }
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) {
    Error(absl::StrCat(path, " is not a recording"));
    return kError;
  }
  ScreenFile out;
  if (absl::Status opened = out.Open(absl::GetFlag(FLAGS_out)); !opened.ok()) {
    Error(opened.message());
    return kError;
  }
  vgpu::watch::ScreenModel screen;
  Stats stats;
  vgpu::UpdateExpander expander;
  int64_t first = -1, second_start = 0;
  while (true) {
    if (int signal = signals.signal(); signal != 0) {
      return Finish(screen, stats, out, kSignalBase + signal);
    }
    int64_t received;
    uint32_t length;
    if (!in.read(reinterpret_cast<char*>(&received), 8)) break;
    if (!in.read(reinterpret_cast<char*>(&length), 4) || length > (64u << 20)) {
      Error(absl::StrCat(path,
                         ": truncated recording; showing what came "
                         "before"));
      return Finish(screen, stats, out, kError);
    }
    std::string bytes(length, '\0');
    pb::StreamFramesResponse event;
    if (!in.read(bytes.data(), length) || !event.ParseFromString(bytes)) {
      Error(absl::StrCat(path,
                         ": corrupt recording; showing what came "
                         "before"));
      return Finish(screen, stats, out, kError);
    }
    if (first < 0) first = second_start = received;
    if (received - second_start >= 1000000000) {
      stats.Report(static_cast<double>(received - second_start) / 1e9);
      second_start = received;
    }
    const size_t wire_bytes = event.ByteSizeLong();
    if (event.has_update()) expander.Expand(event.mutable_update());
    stats.Event(event, wire_bytes, received);
    if (absl::Status status = screen.Apply(event); !status.ok()) {
      Error(absl::StrCat(path, ": ", status.message()));
      return Finish(screen, stats, out, kError);
    }
  }
  return Finish(screen, stats, out, kEndedAsAsked);
}

int Watch(SignalWatcher& signals) {
  const std::string format_name = absl::GetFlag(FLAGS_format);
  pb::ImageFormat format = ParseFormat(format_name);
  if (format == pb::IMAGE_FORMAT_UNSPECIFIED) {
    return vgpu::cli::UsageError(
        kName, "--format must be zstd, raw, rgbx, png or jpeg (got '" +
                   format_name + "')");
  }
  const uint32_t quality = absl::GetFlag(FLAGS_quality);
  if (absl::Status range = vgpu::cli::CheckRange("quality", quality, 1, 100);
      !range.ok()) {
    return vgpu::cli::UsageError(kName, range.message());
  }
  std::optional<pb::JpegSubsampling> subsampling =
      vgpu::clients::ParseSubsampling(absl::GetFlag(FLAGS_subsampling));
  if (!subsampling) {
    return vgpu::cli::UsageError(kName,
                                 "--subsampling must be 420, 422, 444 or gray");
  }
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  if (duration < absl::ZeroDuration()) {
    return vgpu::cli::UsageError(kName, "--duration must be 0 or more");
  }
  // Outputs first: a path that cannot be written is known before watching.
  ScreenFile out;
  if (absl::Status opened = out.Open(absl::GetFlag(FLAGS_out)); !opened.ok()) {
    Error(opened.message());
    return kError;
  }
  std::ofstream record;
  const std::string record_path = absl::GetFlag(FLAGS_record);
  if (!record_path.empty()) {
    record.open(record_path, std::ios::binary | std::ios::trunc);
    if (!record) {
      Error(absl::StrCat("cannot write --record=", record_path, ": ",
                         strerror(errno)));
      return kError;
    }
    record.write(kMagic, 8);
    if (format == pb::IMAGE_FORMAT_RAW_BGRX ||
        format == pb::IMAGE_FORMAT_RAW_RGBX) {
      Error(absl::StrCat(
          "warning: recording raw pixels to ", record_path,
          " grows by about 120 MB/s at 1080p and 30 fps; --format=zstd "
          "records the same pixels in far less"));
    }
  }
  absl::StatusOr<vgpu::clients::Connection> connection =
      vgpu::clients::ConnectFromFlags(
          64 << 20, [&signals] { return signals.signal() != 0; });
  if (!connection.ok()) {
    return vgpu::cli::UsageError(kName, connection.status().message());
  }
  auto stub = pb::Display::NewStub(connection->channel);
  grpc::ClientContext context;
  if (duration > absl::ZeroDuration()) {
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoMilliseconds(duration));
  }
  signals.Attach(&context);
  vgpu::clients::PrepareCall(*connection, &context);
  auto stream = stub->StreamFrames(&context);
  pb::StreamFramesRequest subscribe;
  pb::Subscribe* s = subscribe.mutable_subscribe();
  s->set_scanout_id(absl::GetFlag(FLAGS_scanout));
  s->add_formats(format);
  s->set_jpeg_quality(quality);
  s->set_jpeg_subsampling(*subsampling);
  s->set_max_fps(absl::GetFlag(FLAGS_max_fps));
  s->set_max_in_flight(absl::GetFlag(FLAGS_credits));
  s->set_accept_copies(true);    // ScreenModel applies them
  s->set_compact_updates(true);  // expanded as they come
  s->set_include_cursor(true);
  vgpu::watch::ScreenModel screen;
  Stats stats;
  bool output_failed = false;
  bool started = false;  // the daemon answered the subscription
  if (stream->Write(subscribe)) {
    absl::Time second_start = absl::Now();
    pb::StreamFramesResponse event;
    vgpu::UpdateExpander expander;
    while (stream->Read(&event)) {
      int64_t received = absl::ToUnixNanos(absl::Now());
      const size_t wire_bytes = event.ByteSizeLong();
      if (record.is_open() && !output_failed) {
        std::string bytes = event.SerializeAsString();
        uint32_t length = static_cast<uint32_t>(bytes.size());
        record.write(reinterpret_cast<const char*>(&received), 8);
        record.write(reinterpret_cast<const char*>(&length), 4);
        record.write(bytes.data(), length);
        if (!record) {
          Error(absl::StrCat("cannot write ", record_path, ": ",
                             strerror(errno)));
          output_failed = true;
          context.TryCancel();
        }
      }
      // Recordings hold what came; replay expands it the same way.
      if (event.has_update()) expander.Expand(event.mutable_update());
      stats.Event(event, wire_bytes, received);
      if (event.has_started()) {
        started = true;
        const auto& start = event.started();
        std::printf("subscribed: scanout %u %ux%u, format %s, %u credits%s%s\n",
                    start.scanout().id(), start.scanout().width(),
                    start.scanout().height(),
                    pb::ImageFormat_Name(start.format()).c_str(),
                    start.max_in_flight(),
                    start.refresh_format() != pb::IMAGE_FORMAT_UNSPECIFIED
                        ? ", lossless refresh in "
                        : "",
                    start.refresh_format() != pb::IMAGE_FORMAT_UNSPECIFIED
                        ? pb::ImageFormat_Name(start.refresh_format()).c_str()
                        : "");
      }
      if (absl::Status status = screen.Apply(event); !status.ok()) {
        Error(absl::StrCat("bad update from the daemon: ", status.message()));
        context.TryCancel();
        stream->Finish();
        signals.Attach(nullptr);
        return Finish(screen, stats, out, kError);
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
  }
  grpc::Status status = stream->Finish();
  signals.Attach(nullptr);
  if (record.is_open()) {
    record.close();
    if (!record && !output_failed) {
      Error(absl::StrCat("cannot write ", record_path, ": ", strerror(errno)));
      output_failed = true;
    }
  }
  int code = kEndedAsAsked;
  if (output_failed) {
    code = kError;
  } else if (signals.signal() != 0) {
    code = kSignalBase + signals.signal();
  } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
             duration > absl::ZeroDuration()) {
    std::printf("stopped after --duration=%s\n",
                absl::FormatDuration(duration).c_str());
  } else if (status.ok() || (started && status.error_code() ==
                                            grpc::StatusCode::UNAVAILABLE)) {
    // Served, then ended by the daemon (shut down or restarted).
    Error(status.error_message() == "Cancelling all calls"
              ? std::string("the daemon shut down")
              : absl::StrCat("the daemon ended the stream",
                             status.ok() ? "" : " (it stopped or restarted): ",
                             status.error_message()));
    code = kServerEnded;
  } else {
    Error(vgpu::clients::DescribeError(status, *connection));
    code = kError;
  }
  return Finish(screen, stats, out, code);
}

}  // namespace

int main(int argc, char** argv) {
  vgpu::BlockStopSignals();  // before gRPC starts its threads
  vgpu::cli::ParseOrExit(
      argc, argv,
      {kName,
       "watch a VM's screen from vgpu-displayd: frames per second, "
       "flush-to-receive latency and bandwidth every second; record a "
       "stream, replay it, keep the last screen.\n"
       "  vgpu-watch --server=127.0.0.1:50051 --format=zstd --duration=10s\n"
       "  vgpu-watch --replay=session.vgpurec --out=last.ppm\n"
       "Exit codes: 0 --duration elapsed (or the replay ended), 1 an error "
       "(connect, stream, output), 2 bad flags, 3 the daemon ended the "
       "stream, 130/143 stopped by SIGINT/SIGTERM. --out and the summary "
       "are written in every case."});
  vgpu::clients::QuietGrpcLogs();
  vgpu::KeepLargeBuffersInHeap();
  std::string replay = absl::GetFlag(FLAGS_replay);
  SignalWatcher signals;
  return replay.empty() ? Watch(signals) : Replay(replay, signals);
}
