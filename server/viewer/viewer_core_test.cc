// The viewer's scheduling, step by step: a fake clock, an executor that runs
// tasks only when told, and an output that drains only when told. No gRPC,
// no threads, no sleeps.
#include "server/viewer/viewer_core.h"

#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

#include "device/gpu/test_frames.h"
#include "server/viewer/testing.h"

namespace vgpu::server {
namespace {

namespace pb = vgpu::display::v1;

// A frame of `pixels` (B,G,R,X, rows `width` apart).
gpu::FramePtr FrameOf(const std::vector<uint32_t>& pixels, uint32_t width,
                      uint32_t height, uint64_t sequence) {
  return gpu::FrameOfPixels(pixels, width, height, sequence);
}

gpu::FramePtr Frame(uint32_t width, uint32_t height, uint64_t sequence,
                    uint32_t color) {
  std::vector<uint32_t> pixels(size_t{width} * height, color);
  // Not one colour, so updates carry pixels rather than solid rects.
  for (size_t i = 0; i < pixels.size(); i += 7) pixels[i] ^= 0x00FFFFFF;
  return FrameOf(pixels, width, height, sequence);
}

// The updates (by update_id) and mode changes in `messages`.
struct Received {
  std::vector<pb::Scanout> modes;
  std::map<uint64_t, std::vector<pb::FrameUpdate>> updates;
  explicit Received(const std::vector<pb::StreamFramesResponse>& messages) {
    for (const pb::StreamFramesResponse& m : messages) {
      if (m.has_mode_changed()) modes.push_back(m.mode_changed());
      if (m.has_update()) updates[m.update().update_id()].push_back(m.update());
    }
  }
  // Pixels covered by the rects of update `id`.
  uint64_t Area(uint64_t id) const {
    uint64_t area = 0;
    for (const pb::FrameUpdate& band : updates.at(id))
      for (const pb::EncodedRect& rect : band.rects())
        area += uint64_t{rect.rect().width()} * rect.rect().height();
    return area;
  }
};

class ViewerCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sequence_ = 1;
    store_.OnScanoutMode({0, true, 256, 128}, Frame(256, 128, 1, 1));
  }
  void TearDown() override {
    if (core_) core_->Stop(nullptr);
  }

  std::shared_ptr<ViewerCore> Start(ViewerSettings settings) {
    ViewerContext context;
    context.store = &store_;
    context.cache = &cache_;
    context.executor = &executor_;
    context.clock = &clock_;
    core_ = ViewerCore::Create(context, std::move(settings), &output_);
    core_->Start();
    return core_;
  }
  void Flush(const gpu::PixelRect& damage) {
    ++sequence_;
    store_.OnFrame(0, Frame(256, 128, sequence_, 0xFF000000u | sequence_),
                   {damage});
  }
  // JPEG (or `kind`) with lossless refresh in zstd 300 ms after.
  static ViewerSettings Refreshing(ImageKind kind, pb::ImageFormat format) {
    ViewerSettings settings;
    settings.encode.kind = kind;
    settings.encode.jpeg_quality = 60;
    settings.format = format;
    settings.refresh.after = absl::Milliseconds(300);
    settings.refresh.encode.kind = ImageKind::kZstdBgrx;
    settings.refresh.format = pb::IMAGE_FORMAT_ZSTD_BGRX;
    return settings;
  }
  // A raw viewer that takes copies, its first update applied to `screen`.
  std::shared_ptr<ViewerCore> StartRawWithCopies(struct RawScreen* screen);
  static ViewerSettings Raw() {
    ViewerSettings settings;
    settings.encode.kind = ImageKind::kRawBgrx;
    settings.format = pb::IMAGE_FORMAT_RAW_BGRX;
    return settings;
  }

  FakeClock clock_;
  ManualExecutor executor_{&clock_};
  FrameStore store_;
  EncodeCache cache_;
  FakeOutput output_;
  std::shared_ptr<ViewerCore> core_;
  uint64_t sequence_ = 0;
};

TEST_F(ViewerCoreTest, StartsWithTheModeThenTheWholeScreen) {
  auto core = Start(Raw());
  EXPECT_EQ(output_.queued(), 0u);  // nothing before its task runs
  ASSERT_EQ(executor_.RunDue(), 1);
  Received got(output_.Drain(*core));
  ASSERT_EQ(got.modes.size(), 1u);
  EXPECT_EQ(got.modes[0].width(), 256u);
  ASSERT_EQ(got.updates.size(), 1u);
  EXPECT_EQ(got.Area(1), 256u * 128);
  EXPECT_TRUE(got.updates.at(1).back().end_of_update());
  EXPECT_EQ(executor_.RunDue(), 0);  // nothing more to do
  EXPECT_EQ(executor_.queued(), 0u);
}

TEST_F(ViewerCoreTest, ASlowViewerGetsTheLatestFrameOnce) {
  auto core = Start(Raw());
  executor_.RunDue();
  // Three flushes while the first update is still being written.
  Flush({0, 0, 64, 64});
  Flush({128, 64, 64, 64});
  Flush({64, 0, 64, 64});
  EXPECT_EQ(executor_.RunDue(), 0);  // no round while the output is busy
  Received first(output_.Drain(*core));
  ASSERT_EQ(executor_.RunDue(), 1);
  Received second(output_.Drain(*core));
  ASSERT_EQ(second.updates.size(), 1u);
  const pb::FrameUpdate& last = second.updates.at(2).back();
  EXPECT_EQ(last.frame_sequence(), sequence_);  // the latest
  EXPECT_EQ(last.flushes(), 3u);
  EXPECT_EQ(second.Area(2), 3u * 64 * 64);  // the three damaged tiles only
}

TEST_F(ViewerCoreTest, ManySmallChangesStayAsPreciseAsTheyCame) {
  auto core = Start(Raw());
  executor_.RunDue();
  // Forty characters typed (a line and a bit) while the first update is
  // still being written: forty 8x16 cells, not their bounding box.
  for (uint32_t i = 0; i < 40; ++i) Flush({i % 32 * 8, i / 32 * 16, 8, 16});
  output_.Drain(*core);
  ASSERT_EQ(executor_.RunDue(), 1);
  Received got(output_.Drain(*core));
  ASSERT_EQ(got.updates.size(), 1u);
  EXPECT_EQ(got.updates.begin()->second.back().flushes(), 40u);
  EXPECT_EQ(got.Area(got.updates.begin()->first), 40u * 8 * 16);
}

// A viewer's copy of the screen from raw updates, copies included.
struct RawScreen {
  uint32_t width = 0, height = 0;
  std::vector<uint32_t> pixels;
  uint64_t copies = 0, pixels_sent = 0;
  void Apply(const std::vector<pb::StreamFramesResponse>& messages) {
    for (const pb::StreamFramesResponse& m : messages) {
      if (m.has_mode_changed()) {
        width = m.mode_changed().width();
        height = m.mode_changed().height();
        pixels.assign(size_t{width} * height, 0);
      }
      if (!m.has_update()) continue;
      for (const pb::CopyRect& c : m.update().copies()) {
        ++copies;
        std::vector<uint32_t> before = pixels;  // as through a buffer
        for (uint32_t y = 0; y < c.rect().height(); ++y)
          for (uint32_t x = 0; x < c.rect().width(); ++x)
            pixels[size_t{c.rect().y() + y} * width + c.rect().x() + x] =
                before[size_t{c.src_y() + y} * width + c.src_x() + x];
      }
      for (const pb::EncodedRect& r : m.update().rects()) {
        pixels_sent += uint64_t{r.rect().width()} * r.rect().height();
        for (uint32_t y = 0; y < r.rect().height(); ++y)
          for (uint32_t x = 0; x < r.rect().width(); ++x) {
            uint32_t pixel = r.solid_bgrx();
            if (!r.solid())
              std::memcpy(
                  &pixel,
                  r.data().data() + (size_t{y} * r.rect().width() + x) * 4, 4);
            pixels[size_t{r.rect().y() + y} * width + r.rect().x() + x] = pixel;
          }
      }
    }
  }
};

std::shared_ptr<ViewerCore> ViewerCoreTest::StartRawWithCopies(
    RawScreen* screen) {
  ViewerSettings settings = Raw();
  settings.copies = true;
  auto core = Start(settings);
  executor_.RunDue();
  screen->Apply(output_.Drain(*core));
  return core;
}

// Random scrolls of random bands of the screen, with new rows, stray
// changes and a viewer that sometimes falls behind: its copy of the screen
// is pixel-exact after every update, and most pixels travel as copies.
TEST_F(ViewerCoreTest, RandomScrollsReassemblePixelExactThroughCopies) {
  RawScreen screen;
  auto core = StartRawWithCopies(&screen);
  constexpr uint32_t kW = 256, kH = 128;
  std::vector<uint32_t> current(screen.pixels);
  std::mt19937 rng(3);
  auto lines = [&rng](std::vector<uint32_t>& pixels, uint32_t y) {
    for (uint32_t x = 0; x < kW; ++x)
      pixels[size_t{y} * kW + x] = rng() % 4 == 0 ? 0xFFE0E0E0 : 0xFF101820;
  };
  uint64_t scrolled = 0;
  for (int round = 0; round < 60; ++round) {
    const int scrolls = round % 3 == 0 ? 2 : 1;  // sometimes behind
    for (int s = 0; s < scrolls; ++s) {
      const uint32_t top = rng() % 32, bottom = kH - rng() % 32;
      const int32_t dy =
          static_cast<int32_t>(1 + rng() % 24) * (rng() % 3 == 0 ? -1 : 1);
      std::vector<uint32_t> next = current;
      for (uint32_t y = top; y < bottom; ++y) {
        const int64_t from = int64_t{y} + dy;
        if (from >= top && from < bottom) {
          std::copy_n(&current[size_t(from) * kW], kW, &next[size_t{y} * kW]);
        } else {
          lines(next, y);
        }
      }
      next[rng() % next.size()] ^= 0x00FFFFFF;
      scrolled += uint64_t{bottom - top} * kW;
      store_.OnFrame(0, FrameOf(next, kW, kH, ++sequence_), {{0, 0, kW, kH}});
      current = next;
    }
    ASSERT_EQ(executor_.RunDue(), 1);
    screen.Apply(output_.Drain(*core));
    ASSERT_EQ(screen.pixels, current) << "round " << round;
  }
  EXPECT_GT(screen.copies, 30u);
  EXPECT_LT(screen.pixels_sent, kW * kH + scrolled / 2);
}

// The store holds a new frame before it tells its listeners. A round that
// runs in between must not cut an update from that frame (it would send it
// only where earlier damage was: no single frame, and copies taken from it
// later would be wrong): it waits for the notification.
TEST_F(ViewerCoreTest, ARoundBeforeTheFramesDamageIsToldWaitsForIt) {
  static constexpr uint32_t kW = 256, kH = 128;
  auto frame_of = [this](const std::vector<uint32_t>& pixels) {
    return FrameOf(pixels, kW, kH, ++sequence_);
  };
  // Runs the viewer's round from inside the store's notification, before
  // the viewer itself is told.
  struct Racer : FrameListener {
    ManualExecutor* executor;
    bool armed = false;
    int ran = 0;
    void OnChange(const Change&) override {
      if (std::exchange(armed, false)) ran = executor->RunDue();
    }
  } racer;
  racer.executor = &executor_;
  store_.AddListener(&racer);
  RawScreen screen;
  auto core = StartRawWithCopies(&screen);

  std::mt19937 rng(5);
  std::vector<uint32_t> f1(size_t{kW} * kH);
  for (uint32_t& p : f1) p = 0xFF000000u | (rng() & 0xFFFFFF);
  for (size_t i = 0; i < f1.size() / 2; ++i) f1[i] = screen.pixels[i];
  store_.OnFrame(0, frame_of(f1), {{0, kH / 2, kW, kH / 2}});
  output_.Drain(*core);  // told, round not run: damage is pending
  // Frame 2 changes the top half; the round runs before it is told.
  std::vector<uint32_t> f2 = f1;
  for (size_t i = 0; i < f2.size() / 2; ++i) f2[i] = 0xFF0000FFu;
  racer.armed = true;
  store_.OnFrame(0, frame_of(f2), {{0, 0, kW, kH / 2}});
  EXPECT_EQ(racer.ran, 1);
  EXPECT_EQ(output_.queued(), 0u);   // it waited
  ASSERT_EQ(executor_.RunDue(), 1);  // told: now all of frame 2
  const std::vector<pb::StreamFramesResponse> messages = output_.Drain(*core);
  screen.Apply(messages);
  for (uint32_t& p : screen.pixels) p |= 0xFF000000u;  // solid rects drop X
  EXPECT_EQ(screen.pixels, f2);
  Received got(messages);
  ASSERT_EQ(got.updates.size(), 1u);
  EXPECT_EQ(got.updates.begin()->second.back().frame_sequence(), sequence_);
  EXPECT_EQ(got.updates.begin()->second.back().flushes(), 2u);
  // Frame 3 scrolls frame 2 up by 16 rows (damage: all of it).
  std::vector<uint32_t> f3(f2.begin() + 16 * kW, f2.end());
  f3.resize(f2.size(), 0xFF00FF00u);
  store_.OnFrame(0, frame_of(f3), {{0, 0, kW, kH}});
  ASSERT_EQ(executor_.RunDue(), 1);
  screen.Apply(output_.Drain(*core));
  // X is not kept by solid rects.
  for (uint32_t& p : screen.pixels) p |= 0xFF000000u;
  EXPECT_EQ(screen.pixels, f3);
  EXPECT_EQ(screen.copies, 1u);  // the scroll
  store_.RemoveListener(&racer);
}

// An encoder that fails sends nothing half-done, keeps the damage and tries
// again a moment later, not in a loop.
TEST_F(ViewerCoreTest, AFailedEncodingKeepsTheDamageAndRetriesLater) {
  ViewerSettings settings = Refreshing(ImageKind::kJpeg, pb::IMAGE_FORMAT_JPEG);
  settings.encode.jpeg_quality = 0;  // refused by the encoder
  auto core = Start(settings);
  ASSERT_EQ(executor_.RunDue(), 1);
  Received first(output_.Drain(*core));
  EXPECT_EQ(first.modes.size(), 1u);  // the mode goes; no update
  EXPECT_TRUE(first.updates.empty());
  EXPECT_EQ(executor_.RunDue(), 0);  // no busy retry
  Flush({0, 0, 8, 16});
  EXPECT_EQ(executor_.RunDue(), 0);
  clock_.Advance(absl::Milliseconds(100));
  ASSERT_EQ(executor_.RunDue(), 1);  // the damage is still there
  EXPECT_TRUE(Received(output_.Drain(*core)).updates.empty());
  EXPECT_EQ(core->updates_sent(), 0u);
}

TEST_F(ViewerCoreTest, AFlushThatChangedNothingSendsNothing) {
  auto core = Start(Raw());
  executor_.RunDue();
  output_.Drain(*core);
  ++sequence_;
  store_.OnFrame(0, Frame(256, 128, sequence_, 7), {});
  EXPECT_EQ(executor_.RunDue(), 0);
  Flush({0, 0, 8, 16});
  ASSERT_EQ(executor_.RunDue(), 1);
  Received got(output_.Drain(*core));
  ASSERT_EQ(got.updates.size(), 1u);
  EXPECT_EQ(got.updates.at(2).back().flushes(), 2u);  // both flushes counted
  EXPECT_EQ(got.Area(2), 8u * 16);
}

// An update says which picture it was cut from: a flush that changed
// nothing advances frame_sequence, not content_sequence.
TEST_F(ViewerCoreTest, AnUpdateSaysWhichPictureItWasCutFrom) {
  auto core = Start(Raw());
  executor_.RunDue();
  output_.Drain(*core);
  Flush({0, 0, 8, 16});
  ASSERT_EQ(executor_.RunDue(), 1);
  Received changed(output_.Drain(*core));
  ASSERT_EQ(changed.updates.size(), 1u);
  EXPECT_EQ(changed.updates.begin()->second.back().frame_sequence(), sequence_);
  EXPECT_EQ(changed.updates.begin()->second.back().content_sequence(), 0u);
  const uint64_t picture = sequence_;
  ++sequence_;
  store_.OnFrame(0, Frame(256, 128, sequence_, 0xFF000000u | picture), {});
  core->Refresh();  // the whole screen again, cut from the newest frame
  ASSERT_EQ(executor_.RunDue(), 1);
  Received again(output_.Drain(*core));
  ASSERT_EQ(again.updates.size(), 1u);
  const pb::FrameUpdate& last = again.updates.begin()->second.back();
  EXPECT_EQ(last.frame_sequence(), sequence_);
  EXPECT_EQ(last.content_sequence(), picture);
}

TEST_F(ViewerCoreTest, CreditsHoldUpdatesUntilAcknowledged) {
  ViewerSettings settings = Raw();
  settings.max_in_flight = 1;
  auto core = Start(settings);
  executor_.RunDue();
  output_.Drain(*core);
  Flush({0, 0, 64, 64});
  EXPECT_EQ(executor_.RunDue(), 0);  // update 1 not acknowledged
  EXPECT_EQ(output_.queued(), 0u);
  core->Acknowledge(1);
  ASSERT_EQ(executor_.RunDue(), 1);
  Received got(output_.Drain(*core));
  EXPECT_EQ(got.updates.count(2), 1u);
  core->Acknowledge(99);  // beyond what was sent: counts as 2
  Flush({0, 0, 64, 64});
  ASSERT_EQ(executor_.RunDue(), 1);
  EXPECT_EQ(Received(output_.Drain(*core)).updates.count(3), 1u);
}

TEST_F(ViewerCoreTest, MaxFpsSpacesUpdatesOnTheClock) {
  ViewerSettings settings = Raw();
  settings.max_fps = 10;
  auto core = Start(settings);
  executor_.RunDue();
  output_.Drain(*core);
  Flush({0, 0, 64, 64});
  EXPECT_EQ(executor_.RunDue(), 0);  // 100 ms have not passed
  clock_.Advance(absl::Milliseconds(99));
  EXPECT_EQ(executor_.RunDue(), 0);
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_EQ(executor_.RunDue(), 1);
  EXPECT_EQ(Received(output_.Drain(*core)).updates.size(), 1u);
}

TEST_F(ViewerCoreTest, LossyRegionsGoOutLosslesslyOnceSettled) {
  auto core = Start(Refreshing(ImageKind::kJpeg, pb::IMAGE_FORMAT_JPEG));
  executor_.RunDue();
  Received first(output_.Drain(*core));
  EXPECT_FALSE(first.updates.at(1).back().refresh());
  EXPECT_EQ(first.updates.at(1)[0].rects(0).format(), pb::IMAGE_FORMAT_JPEG);
  // One wake-up is queued for when the screen has settled.
  ASSERT_EQ(executor_.queued(), 1u);
  EXPECT_EQ(executor_.next(), clock_.Now() + absl::Milliseconds(300));
  clock_.Advance(absl::Milliseconds(200));
  Flush({0, 0, 64, 64});  // one cell changes again (sent lossy again)
  ASSERT_EQ(executor_.RunDue(), 1);
  output_.Drain(*core);
  clock_.Advance(absl::Milliseconds(100));  // the rest has settled
  executor_.RunDue();
  Received refresh(output_.Drain(*core));
  ASSERT_EQ(refresh.updates.size(), 1u);
  const pb::FrameUpdate& update = refresh.updates.begin()->second.back();
  EXPECT_TRUE(update.refresh());
  EXPECT_EQ(update.flushes(), 0u);
  EXPECT_EQ(refresh.updates.begin()->second[0].rects(0).format(),
            pb::IMAGE_FORMAT_ZSTD_BGRX);
  EXPECT_EQ(refresh.Area(update.update_id()), 256u * 128 - 64 * 64);
  clock_.Advance(absl::Milliseconds(200));  // the changed cell settles too
  executor_.RunDue();
  Received last(output_.Drain(*core));
  ASSERT_EQ(last.updates.size(), 1u);
  EXPECT_EQ(last.Area(last.updates.begin()->first), 64u * 64);
  // Then nothing is lossy: no wake-up is left, however long we wait.
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(executor_.RunDue(), 0);
  EXPECT_EQ(executor_.queued(), 0u);
}

// A lossless refresh whose encoding fails keeps its cells lossy and is
// tried again 100 ms later, not in a loop.
TEST_F(ViewerCoreTest, AFailedRefreshIsTriedAgainLater) {
  ViewerSettings settings = Refreshing(ImageKind::kJpeg, pb::IMAGE_FORMAT_JPEG);
  settings.refresh.encode = {ImageKind::kJpeg, 0};  // refused by the encoder
  auto core = Start(settings);
  executor_.RunDue();
  EXPECT_EQ(Received(output_.Drain(*core)).updates.size(), 1u);
  for (int attempt = 0; attempt < 3; ++attempt) {
    clock_.Advance(absl::Milliseconds(attempt == 0 ? 300 : 100));
    EXPECT_GE(executor_.RunDue(), 1) << attempt;  // the refresh is tried
    EXPECT_TRUE(Received(output_.Drain(*core)).updates.empty());
    EXPECT_EQ(executor_.RunDue(), 0);  // and not again at once
  }
  EXPECT_EQ(core->updates_sent(), 1u);
}

TEST_F(ViewerCoreTest, AdaptiveRectsSayWhatTheyAreAndOnlyJpegIsRefreshed) {
  // Left half: text (two colours); right half: a picture.
  gpu::TileGrid grid(256, 128);
  gpu::GridStats stats;
  std::vector<uint32_t> pixels(256 * 128);
  for (uint32_t y = 0; y < 128; ++y)
    for (uint32_t x = 0; x < 256; ++x)
      pixels[y * 256 + x] =
          x < 128 ? ((x / 3 + y / 5) % 4 ? 0xFF101820 : 0xFFE0E0E0)
                  : 0xFF000000u | (x * 977 + y * 131) * 7919;
  grid.WritePixels({0, 0, 256, 128},
                   reinterpret_cast<const uint8_t*>(pixels.data()), 256 * 4,
                   &stats);
  store_.OnFrame(0,
                 std::make_shared<gpu::Frame>(256, 128, 0, 0, grid.Snapshot(),
                                              grid.columns(), ++sequence_),
                 {{0, 0, 256, 128}});
  auto core =
      Start(Refreshing(ImageKind::kAdaptive, pb::IMAGE_FORMAT_ADAPTIVE));
  // Two rects: the first update sends the whole screen; make the halves
  // separate damage so each is judged on its own.
  executor_.RunDue();
  output_.Drain(*core);
  store_.OnFrame(0,
                 std::make_shared<gpu::Frame>(256, 128, 0, 0, grid.Snapshot(),
                                              grid.columns(), ++sequence_),
                 {{0, 0, 64, 128}, {192, 0, 64, 128}});
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_EQ(executor_.RunDue(), 1);
  Received got(output_.Drain(*core));
  std::map<int, uint64_t> area;  // by format
  for (const pb::FrameUpdate& band : got.updates.begin()->second)
    for (const pb::EncodedRect& rect : band.rects())
      area[rect.format()] +=
          uint64_t{rect.rect().width()} * rect.rect().height();
  EXPECT_EQ(area[pb::IMAGE_FORMAT_INDEXED], 64u * 128);
  EXPECT_EQ(area[pb::IMAGE_FORMAT_JPEG], 64u * 128);
  // Once settled, only what went out as JPEG comes again, losslessly.
  clock_.Advance(absl::Seconds(1));
  executor_.RunDue();
  Received refresh(output_.Drain(*core));
  ASSERT_EQ(refresh.updates.size(), 1u);
  const pb::FrameUpdate& update = refresh.updates.begin()->second.back();
  EXPECT_TRUE(update.refresh());
  // (The first, whole-screen update was JPEG on the right half too.)
  for (const pb::FrameUpdate& band : refresh.updates.begin()->second)
    for (const pb::EncodedRect& rect : band.rects())
      EXPECT_GE(rect.rect().x(), 128u) << "text was sent exactly already";
}

TEST_F(ViewerCoreTest, UpdatesAreCutIntoBands) {
  ViewerSettings settings = Raw();
  settings.band_bytes = 32 << 10;  // 256x128x4 = 128 KiB: several bands
  auto core = Start(settings);
  executor_.RunDue();
  Received got(output_.Drain(*core));
  const std::vector<pb::FrameUpdate>& bands = got.updates.at(1);
  ASSERT_GE(bands.size(), 4u);
  for (size_t i = 0; i < bands.size(); ++i) {
    EXPECT_EQ(bands[i].end_of_update(), i + 1 == bands.size());
    size_t bytes = 0;
    for (const pb::EncodedRect& rect : bands[i].rects())
      bytes += rect.data().size();
    EXPECT_LE(bytes, settings.band_bytes);
  }
  EXPECT_EQ(got.Area(1), 256u * 128);
}

TEST_F(ViewerCoreTest, AModeChangeIsToldThenTheNewFrameGoesWhole) {
  auto core = Start(Raw());
  executor_.RunDue();
  output_.Drain(*core);
  Flush({0, 0, 64, 64});
  store_.OnScanoutMode({0, true, 128, 64}, Frame(128, 64, ++sequence_, 9));
  ASSERT_EQ(executor_.RunDue(), 1);
  Received got(output_.Drain(*core));
  ASSERT_EQ(got.modes.size(), 1u);
  EXPECT_EQ(got.modes[0].width(), 128u);
  ASSERT_EQ(got.updates.size(), 1u);
  EXPECT_EQ(got.Area(2), 128u * 64);
  // Disabled: told, and no update follows.
  store_.OnScanoutMode({0, false, 0, 0}, nullptr);
  ASSERT_EQ(executor_.RunDue(), 1);
  Received off(output_.Drain(*core));
  ASSERT_EQ(off.modes.size(), 1u);
  EXPECT_FALSE(off.modes[0].enabled());
  EXPECT_TRUE(off.updates.empty());
}

TEST_F(ViewerCoreTest, AChangeUndoneBetweenRoundsIsNotAnnounced) {
  auto core = Start(Raw());
  executor_.RunDue();
  output_.Drain(*core);
  store_.OnScanoutMode({0, true, 128, 64}, Frame(128, 64, ++sequence_, 9));
  store_.OnScanoutMode({0, true, 256, 128}, Frame(256, 128, ++sequence_, 5));
  ASSERT_EQ(executor_.RunDue(), 1);
  Received got(output_.Drain(*core));
  // Told once more (a mode change happened) and given the whole frame.
  EXPECT_LE(got.modes.size(), 1u);
  EXPECT_EQ(got.Area(2), 256u * 128);
  EXPECT_EQ(got.updates.at(2).back().frame_sequence(), sequence_);
}

TEST_F(ViewerCoreTest, AfterStopQueuedTasksTouchNothing) {
  auto core = Start(Raw());
  bool stopped = false;
  core->Stop([&] { stopped = true; });
  EXPECT_TRUE(stopped);  // no task was running
  executor_.RunDue();    // the queued first round returns at once
  EXPECT_EQ(output_.queued(), 0u);
  Flush({0, 0, 64, 64});  // no longer listening
  EXPECT_EQ(executor_.queued(), 0u);
  core_ = nullptr;
}

}  // namespace
}  // namespace vgpu::server
