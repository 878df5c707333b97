// The VNC bridge end to end in one process: the gRPC display service on a
// real unix socket, vgpu-vnc's feed and RFB screen, and libvncclient
// viewers asking for each encoding. What a viewer shows equals the frame
// (lossless encodings exactly, Tight JPEG within a PSNR bound), follows
// mode changes and the cursor shape, and survives the daemon going away.
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include <grpcpp/grpcpp.h>

#include "clients/vnc/scanout_feed.h"
#include "clients/vnc/test_viewer.h"
#include "clients/vnc/vnc_screen.h"
#include "common/eventually.h"
#include "common/notification.h"
#include "device/gpu/test_frames.h"
#include "server/frame_store.h"
#include "server/grpc/display_service.h"
#include "server/worker_pool.h"

namespace vgpu::vnc {
namespace {

// Console-like content: flat colour, text-like speckles and a gradient
// band, so every encoder has real work and misplaced rects show.
std::vector<uint32_t> Picture(uint32_t width, uint32_t height, uint32_t seed) {
  std::vector<uint32_t> pixels(size_t{width} * height);
  for (uint32_t y = 0; y < height; ++y) {
    for (uint32_t x = 0; x < width; ++x) {
      uint32_t p = 0x101820 + seed;
      if (((x * 7 + y * 3 + seed) % 11) == 0 && y % 16 < 12) p = 0xD0D0D0;
      if (y > height / 2 && y < height / 2 + 40)
        p = ((x * 255 / width) << 16) | ((y * 3) & 0xFF) << 8 | (seed & 0xFF);
      pixels[size_t{y} * width + x] = 0xFF000000u | p;
    }
  }
  return pixels;
}

class VncBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    address_ = "unix:" + ::testing::TempDir() + "/vnc-bridge-" +
               std::to_string(getpid()) + ".sock";
    StartServer();
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(64 << 20);
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    channel_ = grpc::CreateCustomChannel(
        address_, grpc::InsecureChannelCredentials(), arguments);
    auto screen = VncScreen::Create({}, 64, 64);
    ASSERT_TRUE(screen.ok()) << screen.status();
    screen_ = *std::move(screen);
    feed_ = std::make_unique<ScanoutFeed>(channel_, ScanoutFeedOptions{},
                                          screen_.get());
  }
  void TearDown() override {
    for (auto& release : held_)
      if (!release->HasBeenNotified()) release->Notify();
    feed_.reset();
    screen_.reset();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }
  void StartServer() {
    service_ = std::make_unique<server::DisplayService>(
        &store_, &pool_, server::DisplayServiceOptions{.num_scanouts = 1});
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address_, grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  // A new mode with its first frame, as the device reports a modeset.
  std::vector<uint32_t> ShowMode(uint32_t width, uint32_t height,
                                 uint32_t seed) {
    std::vector<uint32_t> pixels = Picture(width, height, seed);
    store_.OnScanoutMode(
        {0, true, width, height},
        gpu::FrameOfPixels(pixels, width, height, ++sequence_));
    return pixels;
  }
  std::unique_ptr<TestViewer> Viewer(const std::string& encodings,
                                     int quality = -1) {
    return TestViewer::Connect({.port = screen_->port(),
                                .encodings = encodings,
                                .quality_level = quality});
  }

  // A viewer that came with the daemon's workers held (HoldWorkers), so
  // nothing new from the daemon reached the bridge yet: watched for 300
  // ms, then the workers go on, until it shows `want`: "shown"; "stale"
  // when it showed something `stale` says is old meanwhile, "never" when
  // it did not get there.
  std::string FirstPictureAfterHold(TestViewer& viewer, Notification& held,
                                    const std::vector<uint32_t>& want,
                                    int width, int height,
                                    const std::function<bool()>& stale) {
    bool saw_stale = false;
    const absl::Time window_end = absl::Now() + absl::Milliseconds(300);
    viewer.Until([&] {
      saw_stale |= stale();
      return absl::Now() >= window_end;
    });
    held.Notify();
    const bool shown = viewer.Until([&] {
      saw_stale |= stale();
      return viewer.Shows(want, width, height);
    });
    return saw_stale ? "stale" : shown ? "shown" : "never";
  }
  // Holds the daemon's workers (both of pool_'s) until the notification,
  // or the end of the test: no stream sends anything meanwhile.
  std::shared_ptr<Notification> HoldWorkers() {
    auto release = std::make_shared<Notification>();
    held_.push_back(release);
    for (int i = 0; i < 2; ++i)
      pool_.PostAt(absl::Now(), [release] { release->WaitForNotification(); });
    return release;
  }

  std::string address_;
  server::FrameStore store_;
  server::WorkerPool pool_{2};
  std::unique_ptr<server::DisplayService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<VncScreen> screen_;
  std::unique_ptr<ScanoutFeed> feed_;
  uint64_t sequence_ = 0;
  // HoldWorkers's, released when the test ends, whatever happened.
  std::vector<std::shared_ptr<Notification>> held_;
};

struct EncodingCase {
  const char* encodings;
  int quality;  // -1: lossless
};

class VncBridgeEncodingTest
    : public VncBridgeTest,
      public ::testing::WithParamInterface<EncodingCase> {};

// Tight JPEG at quality level 6 (JPEG 79, 4:4:4): console text and
// gradients stay above this.
constexpr double kMinJpegPsnrDb = 28;

TEST_P(VncBridgeEncodingTest, ViewersSeeTheGuestsFramesAndFollowModes) {
  std::vector<uint32_t> first = ShowMode(320, 200, 1);
  feed_->Start();
  auto viewer = Viewer(GetParam().encodings, GetParam().quality);
  ASSERT_NE(viewer, nullptr);
  const bool lossless = GetParam().quality < 0;
  auto shows = [&](const std::vector<uint32_t>& want, int w, int h) {
    return lossless ? viewer->Shows(want, w, h)
                    : viewer->Psnr(want, w, h) >= kMinJpegPsnrDb;
  };
  EXPECT_TRUE(viewer->Until([&] { return shows(first, 320, 200); }))
      << "PSNR " << viewer->Psnr(first, 320, 200);
  // A flush of part of the screen.
  std::vector<uint32_t> second = first;
  for (uint32_t y = 40; y < 60; ++y)
    for (uint32_t x = 100; x < 180; ++x) second[y * 320 + x] = 0xFFFF8000u;
  store_.OnFrame(0, gpu::FrameOfPixels(second, 320, 200, ++sequence_),
                 {{100, 40, 80, 20}});
  EXPECT_TRUE(viewer->Until([&] { return shows(second, 320, 200); }));
  // A modeset.
  std::vector<uint32_t> third = ShowMode(200, 136, 2);
  EXPECT_TRUE(viewer->Until([&] { return shows(third, 200, 136); }))
      << viewer->width() << "x" << viewer->height();
  if (!lossless) {
    // JPEG was used (the gradient band), so the picture is not exact.
    const double psnr = viewer->Psnr(third, 200, 136);
    RecordProperty("psnr_db", std::to_string(psnr));
    EXPECT_LT(psnr, 100) << "no JPEG was negotiated";
  }
}

INSTANTIATE_TEST_SUITE_P(Encodings, VncBridgeEncodingTest,
                         ::testing::Values(EncodingCase{"copyrect tight", 6},
                                           EncodingCase{"copyrect tight", -1},
                                           EncodingCase{"copyrect zrle", -1},
                                           EncodingCase{"hextile", -1},
                                           EncodingCase{"raw", -1}));

// Encode once: Tight JPEG viewers get the daemon's JPEG for their quality,
// one subscription per quality shared by its viewers; their first screen
// and, once the picture settles, everything sent lossy come losslessly.
TEST_F(VncBridgeTest, TightJpegViewersShareTheDaemonsEncoding) {
  ForwardFeeds forward(channel_, 0);
  auto screen = VncScreen::Create(
      {.profiles_changed =
           [&forward](const std::set<ForwardProfile>& profiles) {
             forward.SetProfiles(profiles);
           }},
      64, 64);
  ASSERT_TRUE(screen.ok()) << screen.status();
  ScanoutFeed feed(channel_, ScanoutFeedOptions{}, screen->get());
  std::vector<uint32_t> first = ShowMode(640, 400, 1);
  feed.Start();
  forward.Start(screen->get());
  auto connect = [&](int quality) {
    return TestViewer::Connect({.port = (*screen)->port(),
                                .encodings = "copyrect tight",
                                .quality_level = quality});
  };
  std::vector<std::unique_ptr<TestViewer>> viewers;
  viewers.push_back(connect(6));
  viewers.push_back(connect(6));
  viewers.push_back(connect(2));
  for (auto& viewer : viewers) {
    ASSERT_NE(viewer, nullptr);
    EXPECT_TRUE(viewer->Until([&] { return viewer->Shows(first, 640, 400); }));
  }
  auto until = [&](const std::function<bool()>& done) {
    return viewers[0]->Until(done);
  };
  // Two qualities in use: two of the daemon's JPEG streams.
  EXPECT_TRUE(until([&] { return forward.active() == 2; }));
  // A new picture: JPEG from the daemon (the gradient band is not exact).
  std::vector<uint32_t> second = Picture(640, 400, 7);
  store_.OnFrame(0, gpu::FrameOfPixels(second, 640, 400, ++sequence_),
                 {{0, 0, 640, 400}});
  for (auto& viewer : viewers) {
    EXPECT_TRUE(viewer->Until([&] {
      return viewer->Psnr(second, 640, 400) >= kMinJpegPsnrDb;
    })) << "PSNR "
        << viewer->Psnr(second, 640, 400);
  }
  const VncScreenStats& stats = (*screen)->stats();
  EXPECT_GE(stats.forwarded_jpeg_rects.load(), 3u);
  // Still: the daemon's lossless refresh makes every viewer exact.
  for (auto& viewer : viewers) {
    EXPECT_TRUE(viewer->Until([&] { return viewer->Shows(second, 640, 400); }))
        << "PSNR " << viewer->Psnr(second, 640, 400);
  }
  RecordProperty("forwarded_jpeg_bytes",
                 std::to_string(stats.forwarded_bytes.load()));
  // The one viewer of the other quality leaves: its stream ends.
  viewers.pop_back();
  EXPECT_TRUE(until([&] { return forward.active() == 1; }));
  forward.Stop();
  feed.Stop();
}

TEST_F(VncBridgeTest, TheGuestCursorShapeReachesTheViewer) {
  ShowMode(320, 200, 3);
  auto image = std::make_shared<gpu::CursorImage>();
  image->hot_x = 4;
  image->hot_y = 5;
  for (size_t i = 0; i < 64 * 10 * 4; i += 4) image->pixels[i + 3] = 0xFF;
  store_.OnCursor({0, 10, 20, true, image});
  feed_->Start();
  auto viewer = Viewer("copyrect zrle");
  ASSERT_NE(viewer, nullptr);
  ASSERT_TRUE(viewer->Until([&] { return viewer->cursor_width() == 64; }));
  EXPECT_EQ(viewer->cursor_hot_x(), 4);
  EXPECT_EQ(viewer->cursor_hot_y(), 5);
  EXPECT_EQ(viewer->cursor_mask()[0], 1);
  EXPECT_EQ(viewer->cursor_mask()[64 * 10], 0);  // row 10: transparent
}

TEST_F(VncBridgeTest, ViewersStayThroughADaemonRestartAndGetTheNewScreen) {
  std::vector<uint32_t> before = ShowMode(320, 200, 4);
  feed_->Start();
  auto viewer = Viewer("copyrect zrle");
  ASSERT_NE(viewer, nullptr);
  ASSERT_TRUE(viewer->Until([&] { return viewer->Shows(before, 320, 200); }));
  // The daemon goes: the viewer keeps its connection and last frame.
  server_->Shutdown(std::chrono::system_clock::now());
  server_.reset();
  ASSERT_TRUE(viewer->Until([&] { return !feed_->connected(); }));
  EXPECT_TRUE(viewer->Shows(before, 320, 200));
  // It comes back with another guest screen of another size.
  std::vector<uint32_t> after = ShowMode(256, 160, 5);
  StartServer();
  EXPECT_TRUE(viewer->Until([&] { return viewer->Shows(after, 256, 160); }));
  EXPECT_EQ(feed_->subscriptions(), 2u);
}

// With no client for a while the copy's feed ends its stream. The next
// client is shown the guest as it is by then, never the copy from before
// the pause; with the daemon gone meanwhile, the last frame.
TEST_F(VncBridgeTest, AFeedPausedWithoutClientsShowsTheNextOneTheGuestNow) {
  // Destroyed in this order: the feed stopped, the screen (clients that
  // leave meanwhile report to the feed), the feed.
  std::atomic<ScanoutFeed*> feed_of_screen{nullptr};
  std::unique_ptr<ScanoutFeed> feed_holder;
  auto screen =
      VncScreen::Create({.clients_changed =
                             [&] {
                               if (ScanoutFeed* feed = feed_of_screen.load())
                                 feed->ClientsChanged();
                             }},
                        64, 64);
  ASSERT_TRUE(screen.ok()) << screen.status();
  struct StopFirst {
    std::unique_ptr<ScanoutFeed>& feed;
    ~StopFirst() {
      if (feed != nullptr) feed->Stop();
    }
  } stop_first{feed_holder};
  feed_holder = std::make_unique<ScanoutFeed>(
      channel_, ScanoutFeedOptions{.pause_after = absl::Milliseconds(200)},
      screen->get());
  ScanoutFeed& feed = *feed_holder;
  feed_of_screen = &feed;
  const std::vector<uint32_t> first = ShowMode(320, 200, 6);
  feed.Start();
  auto connect = [&] {
    return TestViewer::Connect(
        {.port = (*screen)->port(), .encodings = "copyrect zrle"});
  };
  {
    auto viewer = connect();
    ASSERT_NE(viewer, nullptr);
    ASSERT_TRUE(viewer->Until([&] { return viewer->Shows(first, 320, 200); }));
  }
  ASSERT_TRUE(Eventually([&] { return feed.paused() && !feed.connected(); }));
  const std::vector<uint32_t> second = Picture(320, 200, 7);
  store_.OnFrame(0, gpu::FrameOfPixels(second, 320, 200, ++sequence_),
                 {{0, 0, 320, 200}});
  // The daemon's workers are held, so the new stream's first frame waits:
  // what the viewer gets meanwhile can only come from the old copy.
  std::shared_ptr<Notification> held = HoldWorkers();
  auto viewer = connect();
  ASSERT_NE(viewer, nullptr);
  EXPECT_EQ(
      FirstPictureAfterHold(*viewer, *held, second, 320, 200,
                            [&] { return viewer->Shows(first, 320, 200); }),
      "shown");
  EXPECT_EQ(feed.subscriptions(), 2u);
  viewer.reset();
  // Paused again, and the daemon goes: a new client gets the last frame.
  ASSERT_TRUE(Eventually([&] { return feed.paused(); }));
  server_->Shutdown(std::chrono::system_clock::now());
  server_.reset();
  viewer = connect();
  ASSERT_NE(viewer, nullptr);
  EXPECT_TRUE(viewer->Until([&] { return viewer->Shows(second, 320, 200); }));
}

// A picture of many colours everywhere (the daemon sends it all as JPEG).
std::vector<uint32_t> Photo(uint32_t width, uint32_t height, uint32_t seed) {
  std::vector<uint32_t> pixels(size_t{width} * height);
  for (uint32_t y = 0; y < height; ++y) {
    for (uint32_t x = 0; x < width; ++x) {
      const uint32_t r = (x * 255 / width + seed * 37) & 0xFF;
      const uint32_t g = (y * 255 / height + seed * 59) & 0xFF;
      const uint32_t b = ((x + y) * 127 / (width + height) + seed * 13) & 0xFF;
      pixels[size_t{y} * width + x] = 0xFF000000u | r << 16 | g << 8 | b;
    }
  }
  return pixels;
}

// With every client forwarding the daemon's JPEG, the copy's feed takes
// frames only when something needs the copy: a video costs it nothing.
// What does need it gets the guest as it is, never the copy from before:
// a lossless viewer and a forwarding viewer that come meanwhile, and the
// daemon's lossless refresh once the picture settles.
TEST_F(VncBridgeTest, TheCopyTakesFramesOnlyWhenSomethingNeedsIt) {
  // Destroyed in this order: the feeds stopped, the screen (clients that
  // leave meanwhile report to the feed), the feeds.
  ForwardFeeds forward(channel_, 0);
  std::unique_ptr<ScanoutFeed> feed_holder;
  std::atomic<ScanoutFeed*> feed_of_screen{nullptr};
  auto to_feed = [&](void (ScanoutFeed::*method)()) {
    return [&feed_of_screen, method] {
      if (ScanoutFeed* feed = feed_of_screen.load()) (feed->*method)();
    };
  };
  auto screen = VncScreen::Create(
      {.profiles_changed =
           [&forward](const std::set<ForwardProfile>& profiles) {
             forward.SetProfiles(profiles);
           },
       .clients_changed = to_feed(&ScanoutFeed::ClientsChanged),
       .copy_wanted = to_feed(&ScanoutFeed::CopyWanted)},
      64, 64);
  ASSERT_TRUE(screen.ok()) << screen.status();
  struct StopFirst {
    ForwardFeeds& forward;
    std::unique_ptr<ScanoutFeed>& feed;
    ~StopFirst() {
      forward.Stop();
      if (feed != nullptr) feed->Stop();
    }
  } stop_first{forward, feed_holder};
  feed_holder = std::make_unique<ScanoutFeed>(
      channel_,
      ScanoutFeedOptions{.copy_on_demand = true,
                         .follow_after_wanted = absl::ZeroDuration()},
      screen->get());
  ScanoutFeed& feed = *feed_holder;
  feed_of_screen = &feed;
  const uint32_t w = 320, h = 200;
  std::vector<std::vector<uint32_t>> shown = {ShowMode(w, h, 1)};
  feed.Start();
  forward.Start(screen->get());
  auto connect = [&](int quality, const char* encodings) {
    return TestViewer::Connect({.port = (*screen)->port(),
                                .encodings = encodings,
                                .quality_level = quality});
  };
  auto watcher = connect(6, "copyrect tight");
  ASSERT_NE(watcher, nullptr);
  ASSERT_TRUE(watcher->Until([&] { return watcher->Shows(shown[0], w, h); }));
  // A video frame, which reaches the forwarding viewer as JPEG.
  auto frame = [&] {
    shown.push_back(Photo(w, h, static_cast<uint32_t>(shown.size())));
    store_.OnFrame(0, gpu::FrameOfPixels(shown.back(), w, h, ++sequence_),
                   {{0, 0, w, h}});
    EXPECT_TRUE(watcher->Until([&] {
      return watcher->Psnr(shown.back(), w, h) >= kMinJpegPsnrDb;
    })) << "frame "
        << shown.size();
  };
  // Frames until the copy lags (a viewer that came asked for it, so it
  // took a frame or two), then `frames` more: how many of those the copy
  // took.
  auto video = [&](uint32_t frames) -> uint64_t {
    for (int i = 0; i < 20 && !feed.copy_lagging(); ++i) frame();
    EXPECT_TRUE(feed.copy_lagging());
    const uint64_t copy_updates = feed.updates();
    for (uint32_t i = 0; i < frames; ++i) frame();
    return feed.updates() - copy_updates;
  };
  // Of four frames, the copy took at most the one the daemon may still
  // send unasked (two updates in flight).
  EXPECT_LE(video(4), 1u);
  EXPECT_TRUE(feed.copy_lagging());
  // Viewers that come now are painted from the copy: with the guest as it
  // is, once the copy caught up, never before. The daemon's workers are
  // held meanwhile, so the copy cannot catch up before they connect.
  auto shows_older = [&](TestViewer& viewer) {
    for (size_t i = 0; i + 1 < shown.size(); ++i)
      if (viewer.Shows(shown[i], w, h)) return true;
    return false;
  };
  for (const auto& [quality, encodings] :
       {std::pair{-1, "copyrect zrle"}, std::pair{6, "copyrect tight"}}) {
    std::shared_ptr<Notification> held = HoldWorkers();
    auto viewer = connect(quality, encodings);
    ASSERT_NE(viewer, nullptr);
    EXPECT_EQ(FirstPictureAfterHold(*viewer, *held, shown.back(), w, h,
                                    [&] { return shows_older(*viewer); }),
              "shown")
        << encodings;
    viewer.reset();
    ASSERT_TRUE(Eventually([&] { return (*screen)->stats().clients == 1; }));
    // The copy lags again, behind the forwarded frames.
    EXPECT_LE(video(4), 1u);
  }
  // The daemon's lossless refresh of the settled JPEG comes from the copy.
  EXPECT_TRUE(
      watcher->Until([&] { return watcher->Shows(shown.back(), w, h); }));
  // A mode change while the copy lags: the screen hears of it through the
  // copy's stream, which takes frames again for it.
  EXPECT_LE(video(4), 1u);
  const std::vector<uint32_t> resized = ShowMode(256, 160, 9);
  EXPECT_TRUE(watcher->Until([&] { return watcher->Shows(resized, 256, 160); }))
      << watcher->width() << "x" << watcher->height();
}

}  // namespace
}  // namespace vgpu::vnc
