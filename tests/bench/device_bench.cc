// Device engine benchmarks (Google Benchmark), all through real rings:
//  * TRANSFER_TO_HOST_2D + RESOURCE_FLUSH of a full frame at 1080p and 4K,
//    copied (2D resource) and shared (guest blob), beside a plain memcpy of
//    the same bytes out of the same guest memory in the same run; every
//    update brings new pixels ("full"), or the same ones again ("same": the
//    device compares and copies nothing);
//  * a 64x64 update (transfer + flush, one kick) on a 1080p scanout, new
//    pixels every time.
// The sink keeps the latest frame, as the display server does, so
// copy-on-write costs are included. After the runs a summary prints the
// ratios to memcpy and the bytes each TRANSFER copied.
//
//   build/release/tests/bench/device_bench [--benchmark_repetitions=5]
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"

#include "common/log.h"
#include "device/guest_sim/simulated_guest.h"

namespace vgpu {
namespace {

using gpu::wire::Rect;
using guest_sim::Bytes;
using guest_sim::Hdr;
using guest_sim::SimulatedGuest;

enum class Kind { kCopied, kShared };
enum class Content { kNew, kSame };

// One resource on scanout 0 plus pre-written TRANSFER and FLUSH commands, so
// the timed loop is what a guest driver does per update: post two chains,
// kick once, reap. New content: a copied resource's backing holds two
// pictures and the transfers alternate between them (no guest write in the
// timed loop); a shared one is redrawn between updates with the clock
// paused.
class UpdateLoop {
 public:
  // Each Update() presents the next rect of `damage`, cycling.
  UpdateLoop(Kind kind, uint32_t width, uint32_t height,
             std::vector<Rect> damage, Content content)
      : kind_(kind),
        content_(content),
        width_(width),
        damage_(std::move(damage)) {
    guest_sim::SimulatedGuestOptions options;
    options.ram_bytes = uint64_t{width} * height * 4 + (64ull << 20);
    options.device.displays = {
        {std::min(width, 4095u), std::min(height, 4095u), true}};
    options.device.policy = gpu::ResourcePolicy::kCopy;
    guest_ = std::move(*SimulatedGuest::Create(options));
    guest_->sink().keep_frames =
        false;  // hold only the latest, as the server does
    uint64_t bytes = uint64_t{width} * height * 4;
    if (kind == Kind::kCopied) {
      (void)guest_->Create2d(kId, width, height);
      (void)guest_->AttachNewBacking(kId, 2 * bytes, &gpa_);
      (void)guest_->SetScanout(0, kId, Rect{0, 0, width, height});
    } else {
      gpa_ = *guest_->Alloc(bytes);
      gpu::wire::MemEntry entry{gpa_, static_cast<uint32_t>(bytes), 0};
      guest_->CreateBlob(kId, bytes, {&entry, 1});
      guest_->SetScanoutBlob(0, kId, width, height, width * 4, 0,
                             Rect{0, 0, width, height});
      guest_->Flush(kId, Rect{0, 0, width, height});
    }
    for (uint32_t picture = 0; picture < 2; ++picture) {
      pictures_[picture].resize(bytes);
      for (size_t i = 0; i < bytes; ++i)
        pictures_[picture][i] = static_cast<uint8_t>(i * 13 + picture * 101);
    }
    (void)guest_->WriteGuest(gpa_, pictures_[0]);
    if (kind == Kind::kCopied)
      (void)guest_->WriteGuest(gpa_ + bytes, pictures_[1]);
    // Each rect twice: from the first picture, then from the second.
    for (uint32_t picture = 0; picture < 2; ++picture) {
      for (const Rect& r : damage_) {
        gpu::wire::TransferToHost2d transfer{
            Hdr(gpu::wire::kCmdTransferToHost2d), r,
            picture * bytes + uint64_t{r.y} * width * 4 + r.x * 4, kId, 0};
        gpu::wire::ResourceFlush flush{Hdr(gpu::wire::kCmdResourceFlush), r,
                                       kId, 0};
        uint64_t transfer_gpa = *guest_->Alloc(256, 64);
        uint64_t flush_gpa = *guest_->Alloc(256, 64);
        (void)guest_->WriteGuest(transfer_gpa, Bytes(transfer));
        (void)guest_->WriteGuest(flush_gpa, Bytes(flush));
        commands_.push_back({transfer_gpa, flush_gpa});
      }
    }
  }

  // Posts TRANSFER + FLUSH, kicks once, reaps both.
  void Update(benchmark::State& state) {
    size_t index = next_;
    next_ = (next_ + 1) % damage_.size();
    if (content_ == Content::kNew) {
      picture_ ^= 1;
      if (kind_ == Kind::kCopied) {
        index += picture_ * damage_.size();  // transfer from the other one
      } else {
        state.PauseTiming();  // the guest draws into its blob
        const Rect& r = damage_[index];
        for (uint32_t y = r.y; y < r.y + r.height; ++y) {
          const size_t offset = (size_t{y} * width_ + r.x) * 4;
          (void)guest_->WriteGuest(gpa_ + offset,
                                   absl::MakeConstSpan(pictures_[picture_])
                                       .subspan(offset, size_t{r.width} * 4));
        }
        state.ResumeTiming();
      }
    }
    const auto [transfer_gpa, flush_gpa] = commands_[index];
    virtio::GuestBuffer t_out{transfer_gpa,
                              sizeof(gpu::wire::TransferToHost2d)};
    virtio::GuestBuffer t_in{transfer_gpa + 128, 24};
    virtio::GuestBuffer f_out{flush_gpa, sizeof(gpu::wire::ResourceFlush)};
    virtio::GuestBuffer f_in{flush_gpa + 128, 24};
    (void)guest_->control().Add({&t_out, 1}, {&t_in, 1}, true);
    (void)guest_->control().Add({&f_out, 1}, {&f_in, 1}, true);
    (void)guest_->device().ProcessQueue(gpu::kControlQueue,
                                        guest_->control_device_queue());
    guest_->control().PopUsed();
    guest_->control().PopUsed();
  }

  const gpu::DeviceStats& stats() { return guest_->device().stats(); }
  // Average bytes per update.
  uint64_t pixel_bytes() const {
    uint64_t total = 0;
    for (const Rect& r : damage_) total += uint64_t{r.width} * r.height * 4;
    return total / damage_.size();
  }

 private:
  static constexpr uint32_t kId = 2;
  const Kind kind_;
  const Content content_;
  const uint32_t width_;
  std::unique_ptr<SimulatedGuest> guest_;
  std::vector<uint8_t> pictures_[2];
  uint32_t picture_ = 0;
  std::vector<Rect> damage_;
  std::vector<std::pair<uint64_t, uint64_t>>
      commands_;  // (transfer, flush) guest addresses
  size_t next_ = 0;
  uint64_t gpa_ = 0;
};

void ReportCopies(benchmark::State& state, UpdateLoop& loop,
                  uint64_t transfer_before, uint64_t flush_before,
                  uint64_t clone_before) {
  double n = static_cast<double>(state.iterations());
  state.counters["transfer_B"] =
      static_cast<double>(loop.stats().transfer_bytes_copied -
                          transfer_before) /
      n;
  state.counters["flush_B"] =
      static_cast<double>(loop.stats().flush_bytes_copied - flush_before) / n;
  state.counters["cow_B"] =
      static_cast<double>(loop.stats().grid.clone_bytes - clone_before) / n;
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * loop.pixel_bytes()));
}

void BM_Update(benchmark::State& state, Kind kind, uint32_t width,
               uint32_t height, std::vector<Rect> damage,
               Content content = Content::kNew) {
  UpdateLoop loop(kind, width, height, std::move(damage), content);
  uint64_t t0 = loop.stats().transfer_bytes_copied,
           f0 = loop.stats().flush_bytes_copied,
           c0 = loop.stats().grid.clone_bytes;
  for (auto _ : state) loop.Update(state);
  ReportCopies(state, loop, t0, f0, c0);
}

// memcpy of a full frame out of guest memory (memfd) into host memory.
void BM_Memcpy(benchmark::State& state, uint32_t width, uint32_t height) {
  uint64_t bytes = uint64_t{width} * height * 4;
  auto mapping = virtio::MemoryMapping::CreateMemfd(bytes, "bench");
  std::memset((*mapping)->data(), 0x5A, bytes);
  std::vector<uint8_t> dst(bytes);
  for (auto _ : state) {
    std::memcpy(dst.data(), (*mapping)->data(), bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

const std::vector<Rect> k1080 = {{0, 0, 1920, 1080}};
const std::vector<Rect> k2160 = {{0, 0, 3840, 2160}};
const std::vector<Rect> kSmallAligned = {{640, 320, 64, 64}};
const std::vector<Rect> kSmallUnaligned = {{650, 330, 64, 64}};

// A 64x64 box moving right 8 pixels per update; console typing: one 8x16
// cell after the other along a line.
std::vector<Rect> Moving(uint32_t width, uint32_t height, uint32_t step,
                         uint32_t count) {
  std::vector<Rect> rects;
  for (uint32_t i = 0; i < count; ++i)
    rects.push_back({8 + i * step, 330, width, height});
  return rects;
}
const std::vector<Rect> kSmallMoving = Moving(64, 64, 8, 200);
const std::vector<Rect> kTyping = Moving(8, 16, 8, 200);

BENCHMARK_CAPTURE(BM_Memcpy, 1080p, 1920, 1080)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Update, copied_full_1080p, Kind::kCopied, 1920, 1080,
                  k1080)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Update, shared_full_1080p, Kind::kShared, 1920, 1080,
                  k1080)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Update, copied_same_1080p, Kind::kCopied, 1920, 1080,
                  k1080, Content::kSame)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Update, shared_same_1080p, Kind::kShared, 1920, 1080,
                  k1080, Content::kSame)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Memcpy, 2160p, 3840, 2160)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Update, copied_full_2160p, Kind::kCopied, 3840, 2160,
                  k2160)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Update, shared_full_2160p, Kind::kShared, 3840, 2160,
                  k2160)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Update, copied_same_2160p, Kind::kCopied, 3840, 2160,
                  k2160, Content::kSame)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Update, shared_same_2160p, Kind::kShared, 3840, 2160,
                  k2160, Content::kSame)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Update, copied_64x64_aligned_1080p, Kind::kCopied, 1920,
                  1080, kSmallAligned);
BENCHMARK_CAPTURE(BM_Update, copied_64x64_unaligned_1080p, Kind::kCopied, 1920,
                  1080, kSmallUnaligned);
BENCHMARK_CAPTURE(BM_Update, shared_64x64_aligned_1080p, Kind::kShared, 1920,
                  1080, kSmallAligned);
BENCHMARK_CAPTURE(BM_Update, shared_64x64_unaligned_1080p, Kind::kShared, 1920,
                  1080, kSmallUnaligned);
BENCHMARK_CAPTURE(BM_Update, copied_64x64_moving_1080p, Kind::kCopied, 1920,
                  1080, kSmallMoving);
BENCHMARK_CAPTURE(BM_Update, shared_64x64_moving_1080p, Kind::kShared, 1920,
                  1080, kSmallMoving);
BENCHMARK_CAPTURE(BM_Update, copied_8x16_typing_1080p, Kind::kCopied, 1920,
                  1080, kTyping);

// Collects results to print the side-by-side summary after the normal output.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name != "median")
        continue;
      std::string name = run.benchmark_name();
      name = name.substr(0, name.find("_median"));
      Result& r = results_[name];
      r.bytes_per_second = run.counters.count("bytes_per_second")
                               ? run.counters.at("bytes_per_second").value
                               : 0;
      r.cpu_ns = run.GetAdjustedCPUTime();
      if (run.counters.count("transfer_B"))
        r.transfer_bytes = run.counters.at("transfer_B").value;
      if (run.counters.count("flush_B"))
        r.flush_bytes = run.counters.at("flush_B").value;
      if (run.counters.count("cow_B"))
        r.cow_bytes = run.counters.at("cow_B").value;
    }
  }
  void PrintSummary() {
    std::printf("\nSummary (median where repeated)\n");
    for (const char* size : {"1080p", "2160p"}) {
      double memcpy_rate = Rate(std::string("BM_Memcpy/") + size);
      for (const char* content : {"full", "same"}) {
        for (const char* kind : {"copied", "shared"}) {
          std::string name =
              std::string("BM_Update/") + kind + "_" + content + "_" + size;
          double rate = Rate(name);
          std::printf(
              "  %-6s %s frame %-6s %7.2f GB/s  memcpy %7.2f GB/s  ratio "
              "%.2fx  (target >= 0.80x)  copied %.0f B/op\n",
              size, std::strcmp(content, "full") == 0 ? "new " : "same", kind,
              rate / 1e9, memcpy_rate / 1e9,
              memcpy_rate > 0 ? rate / memcpy_rate : 0,
              results_[name].transfer_bytes + results_[name].flush_bytes);
        }
      }
    }
    for (const char* name :
         {"copied_64x64_aligned_1080p", "copied_64x64_unaligned_1080p",
          "copied_64x64_moving_1080p", "shared_64x64_aligned_1080p",
          "shared_64x64_unaligned_1080p", "shared_64x64_moving_1080p",
          "copied_8x16_typing_1080p"}) {
      const Result& r = results_[std::string("BM_Update/") + name];
      std::printf(
          "  small update %-30s %6.2f us CPU (64x64 target <= 2 us)  "
          "copy-on-write %.0f B/op\n",
          name, r.cpu_ns / 1000.0, r.cow_bytes);
    }
  }

 private:
  struct Result {
    double bytes_per_second = 0, cpu_ns = 0, transfer_bytes = 0,
           flush_bytes = 0, cow_bytes = 0;
  };
  double Rate(const std::string& name) {
    return results_[name].bytes_per_second;
  }
  std::map<std::string, Result> results_;
};

}  // namespace
}  // namespace vgpu

int main(int argc, char** argv) {
  vgpu::SetMinLogSeverity(vgpu::LogSeverity::kError);
  benchmark::Initialize(&argc, argv);
  vgpu::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintSummary();
  benchmark::Shutdown();
  return 0;
}
