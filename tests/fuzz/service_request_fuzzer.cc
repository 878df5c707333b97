// Fuzzes the display service's request handling without gRPC: the input is
// a kind byte and a serialized request (GetScreenshotRequest,
// WatchFramesRequest or Subscribe). Valid requests are carried out against
// a small frame store: a screenshot is taken and checked; a viewer core is
// run step by step through a flush, a mode change and time passing, and
// every update it sends must lie inside the mode it announced last.
#include <cstdint>
#include <cstdlib>

#include "common/log.h"
#include "server/viewer/requests.h"
#include "server/viewer/testing.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

namespace pb = vgpu::display::v1;
using vgpu::server::ScanoutState;

vgpu::gpu::FramePtr MakeFrame(uint32_t width, uint32_t height,
                              uint64_t sequence) {
  vgpu::gpu::TileGrid grid(width, height);
  vgpu::gpu::GridStats stats;
  std::vector<uint32_t> pixels(size_t{width} * height);
  for (size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = 0xFF000000u | static_cast<uint32_t>(i * 2654435761u >> 8);
  grid.WritePixels({0, 0, width, height},
                   reinterpret_cast<const uint8_t*>(pixels.data()),
                   size_t{width} * 4, &stats);
  return std::make_shared<vgpu::gpu::Frame>(
      width, height, 0, 0, grid.Snapshot(), grid.columns(), sequence);
}

// Every update must lie inside the last mode announced before it.
void CheckMessages(const std::vector<pb::StreamFramesResponse>& messages,
                   uint32_t* width, uint32_t* height) {
  for (const pb::StreamFramesResponse& m : messages) {
    if (m.has_mode_changed()) {
      *width = m.mode_changed().width();
      *height = m.mode_changed().height();
    }
    if (!m.has_update()) continue;
    for (const pb::EncodedRect& rect : m.update().rects()) {
      if (uint64_t{rect.rect().x()} + rect.rect().width() > *width ||
          uint64_t{rect.rect().y()} + rect.rect().height() > *height) {
        std::abort();
      }
    }
  }
}

void RunViewer(const vgpu::server::ViewerSettings& settings) {
  vgpu::server::FrameStore store;
  vgpu::server::EncodeCache cache(4 << 20);
  vgpu::server::FakeClock clock;
  vgpu::server::ManualExecutor executor(&clock);
  vgpu::server::FakeOutput output;
  store.OnScanoutMode({0, true, 96, 64}, MakeFrame(96, 64, 1));
  vgpu::server::ViewerContext context;
  context.store = &store;
  context.cache = &cache;
  context.executor = &executor;
  context.clock = &clock;
  auto core = vgpu::server::ViewerCore::Create(context, settings, &output);
  core->Start();
  uint32_t width = 0, height = 0;
  auto step = [&] {
    executor.RunDue();
    CheckMessages(output.Drain(*core), &width, &height);
    core->Acknowledge(core->updates_sent());
  };
  step();
  store.OnFrame(0, MakeFrame(96, 64, 2), {{10, 10, 70, 40}});
  step();
  store.OnScanoutMode({0, true, 40, 130}, MakeFrame(40, 130, 3));
  store.OnFrame(0, MakeFrame(40, 130, 4), {{0, 64, 40, 66}});
  step();
  clock.Advance(absl::Seconds(61));  // pacing and refresh deadlines pass
  step();
  step();
  core->Stop(nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vgpu::fuzz::QuietLogs();
  if (size < 1) return 0;
  const int kind = data[0] % 3;
  const void* body = data + 1;
  const int length = static_cast<int>(size - 1);
  constexpr uint32_t kScanouts = 2;
  constexpr size_t kBand = 16 << 10;
  if (kind == 0) {
    pb::GetScreenshotRequest request;
    if (!request.ParseFromArray(body, length)) return 0;
    auto plan = vgpu::server::PlanScreenshot(request, kScanouts, 1);
    if (!plan.ok()) return 0;
    ScanoutState state;
    state.mode = vgpu::gpu::ScanoutMode{0, true, 96, 64};
    state.frame = MakeFrame(96, 64, 1);
    state.sequence = 1;
    auto shot =
        vgpu::server::TakeScreenshot(request, *plan, state, absl::UnixEpoch());
    if (!shot.ok()) return 0;
    if (shot->width() == 0 || shot->height() == 0 || shot->width() > 96 ||
        shot->height() > 64) {
      std::abort();
    }
    if ((plan->format == pb::IMAGE_FORMAT_RAW_BGRX ||
         plan->format == pb::IMAGE_FORMAT_RAW_RGBX) &&
        shot->data().size() != size_t{shot->width()} * shot->height() * 4) {
      std::abort();
    }
    return 0;
  }
  absl::StatusOr<vgpu::server::ViewerSettings> settings;
  if (kind == 1) {
    pb::WatchFramesRequest request;
    if (!request.ParseFromArray(body, length)) return 0;
    settings = vgpu::server::WatchSettings(request, kScanouts, kBand);
  } else {
    pb::Subscribe subscribe;
    if (!subscribe.ParseFromArray(body, length)) return 0;
    settings = vgpu::server::SubscribeSettings(subscribe, kScanouts, kBand);
  }
  if (!settings.ok()) return 0;
  settings->scanout_id = 0;  // the scanout the store shows
  RunViewer(*settings);
  return 0;
}
