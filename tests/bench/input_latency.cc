// input_latency: keystroke-to-pixel latency through vgpu-displayd. One gRPC
// viewer (StreamFrames, lossless) watches the screen while keys go in over
// the Input service (StreamInput, holding control); for each key: the time
// from sending its press to the first message and to the end of the update
// that shows its echo (the guest draws the character), p50/p99/max over
// --keys. Between keys the screen must be still for --quiet_ms.
//
//   input_latency --server=unix:/run/vgpu.grpc --keys=200
//
// Keys alternate between a letter and Backspace, so a line never fills; the
// guest must echo both: the demo guest's prompt, or a Linux VT reading a
// line (it erases with "\b \b").
#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "vgpu/display/v1/display.grpc.pb.h"
#include "vgpu/input/v1/input.grpc.pb.h"
#include <grpcpp/grpcpp.h>
#include <linux/input-event-codes.h>

#include "clients/common/grpc_client.h"
#include "common/cli.h"
#include "common/mutex.h"

ABSL_FLAG(uint32_t, keys, 200, "Keys to time.");
ABSL_FLAG(uint32_t, quiet_ms, 30,
          "The screen is still this long before each key.");
ABSL_FLAG(uint32_t, timeout_ms, 3000, "Most a key's echo may take.");
ABSL_FLAG(std::string, label, "gRPC", "Name of the result line.");

namespace {

namespace dpb = vgpu::display::v1;
namespace ipb = vgpu::input::v1;
constexpr absl::string_view kName = "input_latency";

// Updates with pixels, as they end; the first message's time of each.
class Watcher {
 public:
  explicit Watcher(std::shared_ptr<grpc::Channel> channel)
      : stub_(dpb::Display::NewStub(channel)) {}
  ~Watcher() {
    context_.TryCancel();
    if (thread_.joinable()) thread_.join();
  }
  bool Start() {
    stream_ = stub_->StreamFrames(&context_);
    dpb::StreamFramesRequest request;
    dpb::Subscribe* subscribe = request.mutable_subscribe();
    subscribe->add_formats(dpb::IMAGE_FORMAT_INDEXED);
    subscribe->set_max_in_flight(4);
    if (!stream_->Write(request)) return false;
    thread_ = std::thread([this] { Run(); });
    return true;
  }
  struct Seen {
    uint64_t updates = 0;
    absl::Time first = absl::InfinitePast();  // of the last update
    absl::Time done = absl::InfinitePast();
  };
  Seen seen() {
    vgpu::MutexLock lock(&mu_);
    return seen_;
  }
  // Waits for an update after `count`, up to `deadline`.
  std::optional<Seen> WaitPast(uint64_t count, absl::Time deadline) {
    vgpu::MutexLock lock(&mu_);
    mu_.AwaitUntil(
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return seen_.updates > count || ended_;
        },
        absl::ToChronoTime(deadline));
    if (seen_.updates <= count) return std::nullopt;
    return seen_;
  }

 private:
  void Run() {
    dpb::StreamFramesResponse event;
    absl::Time first = absl::InfinitePast();
    bool pixels = false;
    while (stream_->Read(&event)) {
      const absl::Time now = absl::Now();
      if (!event.has_update()) continue;
      const dpb::FrameUpdate& update = event.update();
      if (first == absl::InfinitePast()) first = now;
      pixels |= update.rects_size() > 0 || update.copies_size() > 0;
      if (!update.end_of_update()) continue;
      dpb::StreamFramesRequest ack;
      ack.mutable_ack()->set_update_id(update.update_id());
      stream_->Write(ack);
      vgpu::MutexLock lock(&mu_);
      if (pixels && !update.refresh()) {
        ++seen_.updates;
        seen_.first = first;
        seen_.done = now;
        mu_.NotifyAll();
      }
      first = absl::InfinitePast();
      pixels = false;
    }
    vgpu::MutexLock lock(&mu_);
    ended_ = true;
    mu_.NotifyAll();
  }

  std::unique_ptr<dpb::Display::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<dpb::StreamFramesRequest,
                                           dpb::StreamFramesResponse>>
      stream_;
  std::thread thread_;
  vgpu::Mutex mu_;
  Seen seen_ VGPU_GUARDED_BY(mu_);
  bool ended_ VGPU_GUARDED_BY(mu_) = false;
};

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t at = std::min(
      values.size() - 1, static_cast<size_t>(p * (values.size() - 1) + 0.5));
  return values[at];
}

int Run() {
  absl::StatusOr<vgpu::clients::Connection> connection =
      vgpu::clients::ConnectFromFlags(64 << 20);
  if (!connection.ok())
    return vgpu::cli::UsageError(kName, connection.status().message());
  Watcher watcher(connection->channel);
  if (!watcher.Start()) {
    std::fprintf(stderr, "input_latency: no StreamFrames\n");
    return 1;
  }
  auto stub = ipb::Input::NewStub(connection->channel);
  grpc::ClientContext context;
  auto input = stub->StreamInput(&context);
  ipb::StreamInputRequest control;
  control.mutable_control()->set_take(true);
  if (!input->Write(control)) {
    std::fprintf(stderr, "input_latency: no StreamInput\n");
    return 1;
  }
  const absl::Duration quiet =
      absl::Milliseconds(absl::GetFlag(FLAGS_quiet_ms));
  const absl::Duration timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_timeout_ms));
  const uint32_t keys = absl::GetFlag(FLAGS_keys);
  static constexpr uint16_t kLetters[] = {KEY_A, KEY_S, KEY_D, KEY_F, KEY_G,
                                          KEY_H, KEY_J, KEY_K, KEY_L};
  std::vector<double> first_ms, done_ms;
  uint32_t missed = 0;
  auto send = [&input](uint16_t code, bool down) {
    ipb::StreamInputRequest request;
    request.mutable_key()->set_code(code);
    request.mutable_key()->set_down(down);
    return input->Write(request);
  };
  for (uint32_t i = 0; i < keys; ++i) {
    // Still for `quiet` first: nothing of the last key is left to come.
    while (true) {
      const Watcher::Seen before = watcher.seen();
      if (!watcher.WaitPast(before.updates, absl::Now() + quiet)) break;
    }
    const uint16_t code =
        i % 2 == 1 ? KEY_BACKSPACE : kLetters[(i / 2) % std::size(kLetters)];
    const uint64_t count = watcher.seen().updates;
    const absl::Time sent = absl::Now();
    if (!send(code, true)) {
      std::fprintf(stderr, "input_latency: the input stream ended\n");
      return 1;
    }
    std::optional<Watcher::Seen> seen = watcher.WaitPast(count, sent + timeout);
    send(code, false);
    if (!seen) {
      ++missed;
      continue;
    }
    first_ms.push_back(absl::ToDoubleMilliseconds(seen->first - sent));
    done_ms.push_back(absl::ToDoubleMilliseconds(seen->done - sent));
  }
  input->WritesDone();
  context.TryCancel();
  std::printf(
      "%s keystroke-to-pixel: %zu keys, %u without an echo within %u ms; "
      "first byte p50 %.2f ms p99 %.2f ms; update complete p50 %.2f ms p99 "
      "%.2f ms max %.2f ms\n",
      absl::GetFlag(FLAGS_label).c_str(), done_ms.size(), missed,
      absl::GetFlag(FLAGS_timeout_ms), Percentile(first_ms, 0.5),
      Percentile(first_ms, 0.99), Percentile(done_ms, 0.5),
      Percentile(done_ms, 0.99), Percentile(done_ms, 1.0));
  return missed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  vgpu::cli::ParseOrExit(
      argc, argv,
      {kName, "keystroke-to-pixel latency through vgpu-displayd (gRPC)."});
  vgpu::clients::QuietGrpcLogs();
  return Run();
}
