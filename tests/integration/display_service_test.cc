// The gRPC display service on a real unix socket, with real gRPC clients:
// screenshots with every wait mode, and several WatchFrames viewers, one of
// them deliberately slow, converging on the latest frame.
#include "server/grpc/display_service.h"

#include <unistd.h>
#include <zstd.h>

#include <atomic>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include <grpcpp/grpcpp.h>
#include <turbojpeg.h>

#include "clients/watch/screen_model.h"
#include "common/compact_update.h"
#include "common/eventually.h"
#include "common/notification.h"
#include "server/frame_store.h"
#include "server/worker_pool.h"

namespace vgpu::server {
namespace {

namespace pb = vgpu::display::v1;

// A solid-colour frame of `width` x `height`, sequence `sequence`.
gpu::FramePtr SolidFrame(uint32_t width, uint32_t height, uint32_t color,
                         uint64_t sequence) {
  gpu::TileGrid grid(width, height);
  gpu::GridStats stats;
  std::vector<uint32_t> pixels(size_t{width} * height, color);
  grid.WritePixels({0, 0, width, height},
                   reinterpret_cast<const uint8_t*>(pixels.data()),
                   size_t{width} * 4, &stats);
  return std::make_shared<gpu::Frame>(width, height, 0, 0, grid.Snapshot(),
                                      grid.columns(), sequence);
}

// A frame with a different colour in every 8x8 block, so misplaced rects show.
gpu::FramePtr PatternFrame(uint32_t width, uint32_t height, uint64_t sequence) {
  gpu::TileGrid grid(width, height);
  gpu::GridStats stats;
  std::vector<uint32_t> pixels(size_t{width} * height);
  for (uint32_t y = 0; y < height; ++y) {
    for (uint32_t x = 0; x < width; ++x) {
      pixels[size_t{y} * width + x] =
          0xFF000000u | ((x / 8 * 37) & 0xFF) << 16 |
          ((y / 8 * 53) & 0xFF) << 8 | ((x + y) / 8 * 11 & 0xFF);
    }
  }
  grid.WritePixels({0, 0, width, height},
                   reinterpret_cast<const uint8_t*>(pixels.data()),
                   size_t{width} * 4, &stats);
  return std::make_shared<gpu::Frame>(width, height, 0, 0, grid.Snapshot(),
                                      grid.columns(), sequence);
}

// A frame whose corners are `color` and whose other pixels vary around it,
// so updates carry real pixels (not one solid colour).
gpu::FramePtr CornersFrame(uint32_t width, uint32_t height, uint32_t color,
                           uint64_t sequence) {
  gpu::TileGrid grid(width, height);
  gpu::GridStats stats;
  std::vector<uint32_t> pixels(size_t{width} * height);
  for (uint32_t y = 0; y < height; ++y) {
    for (uint32_t x = 0; x < width; ++x) {
      pixels[size_t{y} * width + x] = color ^ (((x * 7 + y * 13) & 0x70) << 8);
    }
  }
  pixels.front() = pixels.back() = color;
  grid.WritePixels({0, 0, width, height},
                   reinterpret_cast<const uint8_t*>(pixels.data()),
                   size_t{width} * 4, &stats);
  return std::make_shared<gpu::Frame>(width, height, 0, 0, grid.Snapshot(),
                                      grid.columns(), sequence);
}

class DisplayServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    address_ = "unix:" + ::testing::TempDir() + "/display-" +
               std::to_string(getpid()) + ".sock";
    service_ = std::make_unique<DisplayService>(
        &store_, &pool_, DisplayServiceOptions{.num_scanouts = 2});
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address_, grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(
        address_, grpc::InsecureChannelCredentials(), arguments);
    stub_ = pb::Display::NewStub(channel_);
    store_.OnScanoutMode({0, true, 320, 200}, nullptr);
  }
  void TearDown() override { server_->Shutdown(); }

  void Publish(uint32_t color) {
    ++sequence_;
    store_.OnFrame(0, CornersFrame(320, 200, color, sequence_),
                   {{0, 0, 320, 200}});
  }

  grpc::Status Shot(pb::GetScreenshotRequest request, pb::Screenshot* shot) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    return stub_->GetScreenshot(&context, request, shot);
  }

  std::string address_;
  FrameStore store_;
  WorkerPool pool_{4};
  std::unique_ptr<DisplayService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Display::Stub> stub_;
  uint64_t sequence_ = 0;
};

TEST_F(DisplayServiceTest, ListScanoutsReportsModesAndSequences) {
  Publish(0xFF112233);
  grpc::ClientContext context;
  pb::ListScanoutsResponse response;
  ASSERT_TRUE(stub_->ListScanouts(&context, {}, &response).ok());
  ASSERT_EQ(response.scanouts_size(), 2);
  EXPECT_TRUE(response.scanouts(0).enabled());
  EXPECT_EQ(response.scanouts(0).width(), 320u);
  EXPECT_EQ(response.scanouts(0).frame_sequence(), 1u);
  EXPECT_FALSE(response.scanouts(1).enabled());
}

TEST_F(DisplayServiceTest, ScreenshotNowInEveryFormat) {
  Publish(0xFF102030);
  pb::GetScreenshotRequest request;
  pb::Screenshot shot;
  request.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
  ASSERT_TRUE(Shot(request, &shot).ok());
  ASSERT_EQ(shot.data().size(), 320u * 200 * 4);
  EXPECT_EQ(static_cast<uint8_t>(shot.data()[0]), 0x30);  // B
  EXPECT_EQ(static_cast<uint8_t>(shot.data()[2]), 0x10);  // R
  request.set_format(pb::IMAGE_FORMAT_RAW_RGBX);
  ASSERT_TRUE(Shot(request, &shot).ok());
  ASSERT_EQ(shot.data().size(), 320u * 200 * 4);
  EXPECT_EQ(static_cast<uint8_t>(shot.data()[0]), 0x10);  // R
  EXPECT_EQ(static_cast<uint8_t>(shot.data()[2]), 0x30);  // B
  request.set_format(pb::IMAGE_FORMAT_PNG);
  ASSERT_TRUE(Shot(request, &shot).ok());
  EXPECT_EQ(shot.data().substr(1, 3), "PNG");
  request.set_format(pb::IMAGE_FORMAT_JPEG);
  ASSERT_TRUE(Shot(request, &shot).ok());
  EXPECT_EQ(static_cast<uint8_t>(shot.data()[0]), 0xFF);
  EXPECT_EQ(static_cast<uint8_t>(shot.data()[1]), 0xD8);
  request.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
  request.mutable_region()->set_x(300);
  request.mutable_region()->set_y(190);
  request.mutable_region()->set_width(100);
  request.mutable_region()->set_height(100);
  ASSERT_TRUE(Shot(request, &shot).ok());
  EXPECT_EQ(shot.width(), 20u);  // clipped to the scanout
  EXPECT_EQ(shot.height(), 10u);
}

TEST_F(DisplayServiceTest, JpegUsesTheSubsamplingTheClientChose) {
  Publish(0xFF102030);
  pb::GetScreenshotRequest request;
  request.set_format(pb::IMAGE_FORMAT_JPEG);
  tjhandle handle = tjInitDecompress();
  for (auto [asked, want] :
       {std::pair{pb::JPEG_SUBSAMPLING_UNSPECIFIED, TJSAMP_420},
        std::pair{pb::JPEG_SUBSAMPLING_420, TJSAMP_420},
        std::pair{pb::JPEG_SUBSAMPLING_422, TJSAMP_422},
        std::pair{pb::JPEG_SUBSAMPLING_444, TJSAMP_444},
        std::pair{pb::JPEG_SUBSAMPLING_GRAY, TJSAMP_GRAY}}) {
    request.set_jpeg_subsampling(asked);
    pb::Screenshot shot;
    ASSERT_TRUE(Shot(request, &shot).ok());
    int width = 0, height = 0, subsampling = -1, colorspace = -1;
    ASSERT_EQ(
        tjDecompressHeader3(
            handle, reinterpret_cast<const uint8_t*>(shot.data().data()),
            shot.data().size(), &width, &height, &subsampling, &colorspace),
        0);
    EXPECT_EQ(width, 320);
    EXPECT_EQ(subsampling, want) << pb::JpegSubsampling_Name(asked);
  }
  tjDestroy(handle);
  request.set_jpeg_subsampling(static_cast<pb::JpegSubsampling>(77));
  pb::Screenshot shot;
  EXPECT_EQ(Shot(request, &shot).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Adaptive is per rect: streams only.
  request.set_jpeg_subsampling(pb::JPEG_SUBSAMPLING_420);
  request.set_format(pb::IMAGE_FORMAT_ADAPTIVE);
  EXPECT_EQ(Shot(request, &shot).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(DisplayServiceTest, ScreenshotWaitsForTheNextFlushAndAfterASequence) {
  Publish(0xFF000001);
  // Each frame is published once the request waiting for it is pending.
  std::thread publisher([this] {
    for (uint32_t color : {0xFF000002u, 0xFF000003u}) {
      ASSERT_TRUE(Eventually(
          [&] { return service_->pending_screenshot_waits() == 1; }));
      Publish(color);
    }
  });
  pb::GetScreenshotRequest request;
  request.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
  request.set_next_flush(true);
  pb::Screenshot shot;
  ASSERT_TRUE(Shot(request, &shot).ok());
  EXPECT_EQ(shot.frame_sequence(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(shot.data()[0]), 2);
  request.set_after_sequence(2);
  ASSERT_TRUE(Shot(request, &shot).ok());
  EXPECT_EQ(shot.frame_sequence(), 3u);
  publisher.join();
}

// Waits cost memory, not a thread: with a hundred of them pending, a
// screenshot "now" is answered and a viewer keeps getting every update; each
// wait then ends on the flush that meets it (or when its client goes).
TEST_F(DisplayServiceTest, AHundredPendingWaitsStallNothing) {
  Publish(0xFF000001);
  constexpr int kWaits = 100;
  pb::GetScreenshotRequest wait;
  wait.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
  wait.set_after_sequence(10);
  wait.set_timeout_ms(120000);
  struct Call {
    grpc::ClientContext context;
    pb::Screenshot shot;
    grpc::Status status;
    Notification done;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < kWaits + 1; ++i) {
    auto call = std::make_unique<Call>();
    Call* raw = call.get();
    stub_->async()->GetScreenshot(&raw->context, &wait, &raw->shot,
                                  [raw](grpc::Status status) {
                                    raw->status = std::move(status);
                                    raw->done.Notify();
                                  });
    calls.push_back(std::move(call));
  }
  ASSERT_TRUE(Eventually(
      [&] { return service_->pending_screenshot_waits() == kWaits + 1; }));

  pb::GetScreenshotRequest now;
  now.set_format(pb::IMAGE_FORMAT_PNG);
  pb::Screenshot shot;
  ASSERT_TRUE(Shot(now, &shot).ok());
  EXPECT_EQ(shot.frame_sequence(), 1u);

  // A viewer gets frames 2..9 while every wait is still pending.
  grpc::ClientContext watch_context;
  pb::WatchFramesRequest watch;
  watch.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
  auto reader = stub_->WatchFrames(&watch_context, watch);
  uint64_t seen = 0;
  pb::FrameEvent event;
  while (seen < 9 && reader->Read(&event)) {
    if (!event.has_update() || !event.update().end_of_update()) continue;
    seen = event.update().frame_sequence();
    EXPECT_EQ(service_->pending_screenshot_waits(), size_t{kWaits} + 1);
    if (seen < 9) Publish(0xFF000000u | static_cast<uint32_t>(seen + 1));
  }
  EXPECT_EQ(seen, 9u);
  watch_context.TryCancel();

  // One client gives up: its wait goes.
  calls.back()->context.TryCancel();
  ASSERT_TRUE(
      calls.back()->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(calls.back()->status.error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(Eventually(
      [&] { return service_->pending_screenshot_waits() == kWaits; }));
  calls.pop_back();

  Publish(0xFF00000A);  // sequence 10: not yet
  Publish(0xFF00000B);  // 11 meets them all
  for (auto& call : calls) {
    ASSERT_TRUE(call->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    ASSERT_TRUE(call->status.ok()) << call->status.error_message();
    EXPECT_EQ(call->shot.frame_sequence(), 11u);
  }
  EXPECT_EQ(service_->pending_screenshot_waits(), 0u);
}

// Every kind of server stream, cancelled by its client while the server has
// writes in flight (a 1080p raw update is 16 bands) or about to start:
// each ends exactly once and nothing of it is left.
TEST_F(DisplayServiceTest, StreamsCancelledDuringAWriteEndOnce) {
  store_.OnScanoutMode({0, true, 1920, 1080}, nullptr);
  auto publish = [this] {
    ++sequence_;
    store_.OnFrame(0, PatternFrame(1920, 1080, sequence_),
                   {{0, 0, 1920, 1080}});
  };
  publish();
  for (int round = 0; round < 10; ++round) {
    {
      grpc::ClientContext context;
      pb::WatchFramesRequest request;
      request.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
      auto reader = stub_->WatchFrames(&context, request);
      pb::FrameEvent event;
      ASSERT_TRUE(reader->Read(&event));
      publish();
      context.TryCancel();
      while (reader->Read(&event)) {
      }
      EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
    }
    {
      grpc::ClientContext context;
      auto stream = stub_->StreamFrames(&context);
      pb::StreamFramesRequest subscribe;
      subscribe.mutable_subscribe()->add_formats(pb::IMAGE_FORMAT_RAW_BGRX);
      subscribe.mutable_subscribe()->set_max_in_flight(8);
      ASSERT_TRUE(stream->Write(subscribe));
      pb::StreamFramesResponse response;
      ASSERT_TRUE(stream->Read(&response));  // started
      ASSERT_TRUE(stream->Read(&response));  // the mode; bands follow
      publish();
      context.TryCancel();
      while (stream->Read(&response)) {
      }
      EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
    }
    {
      grpc::ClientContext context;
      auto reader = stub_->WatchScanouts(&context, {});
      pb::Scanout scanout;
      ASSERT_TRUE(reader->Read(&scanout));
      // Mode changes keep the writer busy while the cancel lands.
      std::thread modes([this] {
        for (uint32_t i = 0; i < 50; ++i)
          store_.OnScanoutMode({1, (i & 1) != 0, 640, 480}, nullptr);
      });
      context.TryCancel();
      modes.join();
      while (reader->Read(&scanout)) {
      }
      EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
    }
  }
  EXPECT_TRUE(Eventually([&] { return service_->streams_open() == 0; }))
      << service_->streams_open() << " streams left";
}

TEST_F(DisplayServiceTest, ScreenshotStableWaitsForQuiet) {
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    for (int i = 0; i < 8; ++i) {
      Publish(0xFF000000u | static_cast<uint32_t>(i));
      absl::SleepFor(absl::Milliseconds(40));
    }
    stop = true;
  });
  absl::Time start = absl::Now();
  pb::GetScreenshotRequest request;
  request.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
  request.set_stable_for_ms(500);  // frames come every 40 ms until they stop
  pb::Screenshot shot;
  ASSERT_TRUE(Shot(request, &shot).ok());
  EXPECT_TRUE(stop);  // it could not have been stable while frames kept coming
  EXPECT_EQ(shot.frame_sequence(), 8u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  busy.join();
}

TEST_F(DisplayServiceTest, ScreenshotErrorsAreClear) {
  pb::GetScreenshotRequest request;
  pb::Screenshot shot;
  EXPECT_EQ(Shot(request, &shot).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  Publish(0xFF000001);
  request.set_next_flush(true);
  request.set_timeout_ms(200);
  EXPECT_EQ(Shot(request, &shot).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  request.set_scanout_id(7);
  EXPECT_EQ(Shot(request, &shot).error_code(), grpc::StatusCode::NOT_FOUND);
  request.set_scanout_id(0);
  request.clear_wait();
  request.set_format(static_cast<pb::ImageFormat>(99));
  EXPECT_EQ(Shot(request, &shot).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.set_format(pb::IMAGE_FORMAT_PNG);
  request.mutable_region()->set_x(1000);
  request.mutable_region()->set_width(10);
  request.mutable_region()->set_height(10);
  EXPECT_EQ(Shot(request, &shot).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// Reads a WatchFrames stream; `delay` between reads makes a slow viewer,
// and a `resume` notification one that stops reading after its first
// update until it is notified.
struct Viewer {
  std::vector<uint64_t> sequences;
  uint32_t last_color = 0;
  bool saw_mode = false;
  void Run(pb::Display::Stub* stub, absl::Duration delay,
           uint64_t until_sequence, const Notification* resume = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
    pb::WatchFramesRequest request;
    request.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
    auto reader = stub->WatchFrames(&context, request);
    pb::FrameEvent event;
    while (reader->Read(&event)) {
      if (event.has_mode_changed()) saw_mode = true;
      if (event.has_update() && event.update().end_of_update()) {
        sequences.push_back(event.update().frame_sequence());
        const std::string& data =
            event.update().rects(event.update().rects_size() - 1).data();
        const pb::EncodedRect& last =
            event.update().rects(event.update().rects_size() - 1);
        if (last.solid()) {
          last_color = last.solid_bgrx();
        } else {
          std::memcpy(&last_color, data.data() + data.size() - 4, 4);
        }
        last_color &= 0x00FFFFFFu;  // X is not part of the picture
        if (sequences.back() >= until_sequence) break;
        if (resume != nullptr) resume->WaitForNotification();
      }
      absl::SleepFor(delay);
    }
    context.TryCancel();
  }
};

TEST_F(DisplayServiceTest, ViewersConvergeOnTheLatestFrameAndASlowOneSkips) {
  Publish(0xFF000000);
  constexpr uint64_t kLast = 200;
  Viewer fast1, fast2, slow;
  Notification published;  // the slow viewer reads nothing until then
  std::thread t1([&] { fast1.Run(stub_.get(), absl::ZeroDuration(), kLast); });
  std::thread t2([&] { fast2.Run(stub_.get(), absl::ZeroDuration(), kLast); });
  std::thread t3(
      [&] { slow.Run(stub_.get(), absl::ZeroDuration(), kLast, &published); });
  ASSERT_TRUE(Eventually([&] { return service_->streams_open() == 3; }));
  for (uint64_t i = 2; i <= kLast; ++i) {
    Publish(0xFF000000u | static_cast<uint32_t>(i));
    absl::SleepFor(absl::Microseconds(500));
  }
  published.Notify();
  t1.join();
  t2.join();
  t3.join();
  for (Viewer* viewer : {&fast1, &fast2, &slow}) {
    EXPECT_TRUE(viewer->saw_mode);
    ASSERT_FALSE(viewer->sequences.empty());
    EXPECT_EQ(viewer->sequences.back(), kLast);
    EXPECT_EQ(viewer->last_color, kLast);
    EXPECT_TRUE(
        std::is_sorted(viewer->sequences.begin(), viewer->sequences.end()));
  }
  // The slow viewer got coalesced updates, not a queue of stale ones: after
  // its first, what the socket buffers and gRPC's flow-control window held
  // already (16 MiB, 64 updates of 256 KiB, were seen on a loaded
  // sanitizer build), then the latest.
  EXPECT_LT(slow.sequences.size(), kLast / 2);
}

TEST_F(DisplayServiceTest, FullHdRawUpdatesAreSplitIntoBandsUnder4MiB) {
  store_.OnScanoutMode({0, true, 1920, 1080}, nullptr);
  ++sequence_;
  store_.OnFrame(0, PatternFrame(1920, 1080, sequence_), {{0, 0, 1920, 1080}});
  grpc::ClientContext context;
  pb::WatchFramesRequest request;
  request.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
  auto reader = stub_->WatchFrames(&context, request);
  pb::FrameEvent event;
  size_t bytes = 0, messages = 0;
  while (reader->Read(&event)) {
    if (!event.has_update()) continue;
    ++messages;
    EXPECT_LT(event.ByteSizeLong(), 4u << 20);
    for (const auto& rect : event.update().rects()) bytes += rect.data().size();
    if (event.update().end_of_update()) break;
  }
  context.TryCancel();
  EXPECT_EQ(bytes, 1920u * 1080 * 4);
  EXPECT_GE(messages, 2u);
}

TEST_F(DisplayServiceTest, StreamFramesHonoursCreditsAndAcks) {
  Publish(0xFF000001);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  auto stream = stub_->StreamFrames(&context);
  pb::StreamFramesRequest subscribe;
  subscribe.mutable_subscribe()->add_formats(
      static_cast<pb::ImageFormat>(77));  // unknown
  subscribe.mutable_subscribe()->add_formats(pb::IMAGE_FORMAT_ZSTD_BGRX);
  subscribe.mutable_subscribe()->set_max_in_flight(1);
  ASSERT_TRUE(stream->Write(subscribe));
  pb::StreamFramesResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_started());
  EXPECT_EQ(response.started().format(), pb::IMAGE_FORMAT_ZSTD_BGRX);
  EXPECT_EQ(response.started().max_in_flight(), 1u);
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_TRUE(response.has_mode_changed());
  // The first (full) update uses the one credit.
  uint64_t first_id = 0;
  size_t raw_bytes = 0;
  while (stream->Read(&response)) {
    ASSERT_TRUE(response.has_update());
    for (const auto& rect : response.update().rects()) {
      size_t size = size_t{rect.rect().width()} * rect.rect().height() * 4;
      uint32_t color;
      if (rect.solid()) {  // a one-colour screen travels as colours only
        color = rect.solid_bgrx();
      } else {
        std::string pixels(size, '\0');
        ASSERT_EQ(ZSTD_decompress(pixels.data(), pixels.size(),
                                  rect.data().data(), rect.data().size()),
                  size);
        std::memcpy(&color, pixels.data(), 4);
      }
      if (rect.rect().x() == 0 && rect.rect().y() == 0) {
        EXPECT_EQ(color & 0x00FFFFFFu, 0x000001u);  // the frame's corner
      }
      raw_bytes += size;
    }
    if (response.update().end_of_update()) {
      first_id = response.update().update_id();
      break;
    }
  }
  EXPECT_EQ(raw_bytes, 320u * 200 * 4);
  EXPECT_EQ(first_id, 1u);
  // New frames while no credit is left: nothing may arrive...
  for (uint32_t i = 2; i < 6; ++i) Publish(0xFF000000u | i);
  absl::SleepFor(absl::Milliseconds(300));
  // ...until the ack returns the credit; then the latest screen comes.
  pb::StreamFramesRequest ack;
  ack.mutable_ack()->set_update_id(first_id);
  ASSERT_TRUE(stream->Write(ack));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_update());
  EXPECT_EQ(response.update().update_id(), 2u);
  EXPECT_EQ(response.update().frame_sequence(), 5u);
  EXPECT_EQ(response.update().flushes(), 4u);
  stream->WritesDone();
  context.TryCancel();
}

// A compact stream and a complete one, frame by frame: once expanded the
// compact one says the same (flush times to the microsecond) in fewer bytes.
TEST_F(DisplayServiceTest, CompactUpdatesExpandToWhatCompleteOnesSay) {
  Publish(0xFF000001);
  struct AckingViewer {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<pb::StreamFramesRequest,
                                             pb::StreamFramesResponse>>
        stream;
    UpdateExpander expander;
    size_t wire_bytes = 0, updates = 0;
    uint64_t instance_id = 0;
    // The next whole update, expanded, acknowledged.
    pb::FrameUpdate Next() {
      pb::StreamFramesResponse response;
      while (stream->Read(&response)) {
        if (response.has_started())
          instance_id = response.started().instance_id();
        if (!response.has_update()) continue;
        wire_bytes += response.ByteSizeLong();
        expander.Expand(response.mutable_update());
        if (!response.update().end_of_update()) continue;
        ++updates;
        pb::StreamFramesRequest ack;
        ack.mutable_ack()->set_update_id(response.update().update_id());
        stream->Write(ack);
        return response.update();
      }
      ADD_FAILURE() << "the stream ended";
      return {};
    }
  } viewers[2];
  for (int i = 0; i < 2; ++i) {
    viewers[i].context.set_deadline(std::chrono::system_clock::now() +
                                    std::chrono::seconds(30));
    viewers[i].stream = stub_->StreamFrames(&viewers[i].context);
    pb::StreamFramesRequest subscribe;
    subscribe.mutable_subscribe()->add_formats(pb::IMAGE_FORMAT_ZSTD_BGRX);
    subscribe.mutable_subscribe()->set_compact_updates(i == 1);
    ASSERT_TRUE(viewers[i].stream->Write(subscribe));
    viewers[i].Next();  // the whole screen
  }
  // Both streams number the same daemon's frames.
  EXPECT_NE(viewers[0].instance_id, 0u);
  EXPECT_EQ(viewers[0].instance_id, viewers[1].instance_id);
  for (AckingViewer& viewer : viewers) viewer.wire_bytes = viewer.updates = 0;
  for (uint32_t i = 2; i < 12; ++i) {
    ++sequence_;
    // A small change (one character cell), now and then two frames at once.
    store_.OnFrame(0, CornersFrame(320, 200, 0xFF000000u | i, sequence_),
                   {{8 * i, 16, 8, 16}});
    if (i % 4 == 0) {
      ++sequence_;
      store_.OnFrame(0, CornersFrame(320, 200, 0xFF000100u | i, sequence_),
                     {{8 * i, 32, 8, 16}});
    }
    // Each viewer may get both frames in one update or in two: read up to
    // the frame just published.
    pb::FrameUpdate last[2];
    const uint32_t published = i % 4 == 0 ? 2 : 1;
    for (int v = 0; v < 2; ++v) {
      uint32_t flushes = 0;
      while (flushes < published && !HasFailure()) {
        last[v] = viewers[v].Next();
        flushes += last[v].flushes();
      }
      EXPECT_EQ(flushes, published);
    }
    EXPECT_EQ(last[1].frame_sequence(), sequence_);
    EXPECT_EQ(last[1].frame_sequence(), last[0].frame_sequence());
    EXPECT_EQ(last[1].flush_time_unix_ns(),
              last[0].flush_time_unix_ns() / 1000 * 1000);
    EXPECT_EQ(last[1].send_time_unix_ns(), 0);
    EXPECT_GT(last[0].send_time_unix_ns(), 0);
  }
  // About 17 bytes less per update (send time, absolute flush time, frame
  // sequence).
  EXPECT_LT(viewers[1].wire_bytes / viewers[1].updates + 10,
            viewers[0].wire_bytes / viewers[0].updates);
  for (AckingViewer& viewer : viewers) {
    viewer.stream->WritesDone();
    viewer.context.TryCancel();
  }
}

TEST_F(DisplayServiceTest, StreamFramesSendsTheCursorWhenAsked) {
  Publish(0xFF000001);
  auto image = std::make_shared<gpu::CursorImage>();
  image->hot_x = 3;
  image->pixels[0] = 0x7F;
  store_.OnCursor({0, 10, 20, true, image});
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  auto stream = stub_->StreamFrames(&context);
  pb::StreamFramesRequest subscribe;
  subscribe.mutable_subscribe()->add_formats(pb::IMAGE_FORMAT_RAW_BGRX);
  subscribe.mutable_subscribe()->set_include_cursor(true);
  ASSERT_TRUE(stream->Write(subscribe));
  pb::StreamFramesResponse response;
  bool shape = false, moved = false;
  while (stream->Read(&response)) {
    if (response.has_cursor_shape()) {
      shape = true;
      EXPECT_EQ(response.cursor_shape().hot_x(), 3u);
      EXPECT_EQ(response.cursor_shape().bgra().size(), 64u * 64 * 4);
      EXPECT_EQ(static_cast<uint8_t>(response.cursor_shape().bgra()[0]), 0x7F);
    }
    if (response.has_cursor_position() &&
        response.cursor_position().x() == 50) {
      moved = true;
      break;
    }
    if (shape && response.has_cursor_position())
      store_.OnCursor({0, 50, 60, true, nullptr});
  }
  EXPECT_TRUE(shape);
  EXPECT_TRUE(moved);
  context.TryCancel();
}

TEST_F(DisplayServiceTest, StreamFramesRejectsABadFirstMessage) {
  grpc::ClientContext context;
  auto stream = stub_->StreamFrames(&context);
  pb::StreamFramesRequest ack;
  ack.mutable_ack()->set_update_id(1);
  stream->Write(ack);
  stream->WritesDone();
  pb::StreamFramesResponse response;
  while (stream->Read(&response)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(DisplayServiceTest, WatchScanoutsSendsStateThenChanges) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  auto reader = stub_->WatchScanouts(&context, {});
  pb::Scanout scanout;
  ASSERT_TRUE(reader->Read(&scanout));
  EXPECT_EQ(scanout.id(), 0u);
  EXPECT_TRUE(scanout.enabled());
  ASSERT_TRUE(reader->Read(&scanout));
  EXPECT_EQ(scanout.id(), 1u);
  EXPECT_FALSE(scanout.enabled());
  store_.OnScanoutMode({1, true, 800, 600}, nullptr);
  ASSERT_TRUE(reader->Read(&scanout));
  EXPECT_EQ(scanout.id(), 1u);
  EXPECT_TRUE(scanout.enabled());
  EXPECT_EQ(scanout.width(), 800u);
  context.TryCancel();
}

TEST_F(DisplayServiceTest,
       RequestLayoutReachesTheDeviceAndSaysWhenTheGuestCannotKnow) {
  std::vector<gpu::DisplayConfig> applied;
  service_->set_layout_function(
      [&applied](uint32_t, const gpu::DisplayConfig& display,
                 std::function<void(absl::Status, bool)> done) {
        applied.push_back(display);
        done(absl::FailedPreconditionError(
                 "no display event over this transport"),
             false);
      });
  pb::RequestLayoutRequest request;
  request.set_scanout_id(0);
  request.set_enabled(true);
  request.set_width(1024);
  request.set_height(768);
  pb::RequestLayoutResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub_->RequestLayout(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].width, 1024u);
  request.set_scanout_id(5);
  grpc::ClientContext context2;
  EXPECT_EQ(stub_->RequestLayout(&context2, request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(DisplayServiceTest, ViewersOfTheSameFramesShareOneEncoding) {
  Publish(0xFF000000);
  std::vector<std::thread> viewers;
  std::atomic<int> done{0};
  for (int v = 0; v < 3; ++v) {
    viewers.emplace_back([this, &done] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(20));
      pb::WatchFramesRequest request;
      request.set_format(pb::IMAGE_FORMAT_ZSTD_BGRX);
      auto reader = stub_->WatchFrames(&context, request);
      pb::FrameEvent event;
      while (reader->Read(&event)) {
        if (event.has_update() && event.update().frame_sequence() >= 20) break;
      }
      ++done;
      context.TryCancel();
    });
  }
  ASSERT_TRUE(Eventually([&] { return service_->streams_open() == 3; }));
  for (uint32_t i = 2; i <= 20; ++i) {
    Publish(0xFF000000u | i);
    absl::SleepFor(absl::Milliseconds(20));  // every viewer sees every frame
  }
  for (std::thread& viewer : viewers) viewer.join();
  EXPECT_EQ(done, 3);
  // Each (tile version, profile) is encoded once: the other two viewers hit.
  EncodeCacheStats stats = service_->cache().stats();
  EXPECT_GE(stats.hits, stats.misses * 3 / 2)
      << stats.hits << " hits, " << stats.misses << " misses";
}

TEST_F(DisplayServiceTest, AOneColourScreenTravelsAsColoursOnly) {
  store_.OnScanoutMode({0, true, 1920, 1080}, nullptr);
  store_.OnFrame(0, SolidFrame(1920, 1080, 0xFF204060, ++sequence_),
                 {{0, 0, 1920, 1080}});
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  auto stream = stub_->StreamFrames(&context);
  pb::StreamFramesRequest subscribe;
  subscribe.mutable_subscribe()->add_formats(pb::IMAGE_FORMAT_RAW_BGRX);
  ASSERT_TRUE(stream->Write(subscribe));
  watch::ScreenModel screen;
  pb::StreamFramesResponse event;
  size_t bytes = 0;
  while (stream->Read(&event)) {
    ASSERT_TRUE(screen.Apply(event).ok());
    if (!event.has_update()) continue;
    bytes += event.ByteSizeLong();
    for (const auto& rect : event.update().rects()) EXPECT_TRUE(rect.solid());
    if (event.update().end_of_update()) break;
  }
  context.TryCancel();
  EXPECT_LT(bytes, 4096u);  // instead of 8 MiB of raw pixels
  EXPECT_EQ(screen.PixelAt(1919, 1079) & 0x00FFFFFFu, 0x204060u);
  EXPECT_EQ(service_->cache().stats().solid, 17u);  // one run per tile row
}

// The largest per-channel difference between the viewer's copy and `frame`.
int WorstError(const watch::ScreenModel& screen, const gpu::Frame& frame) {
  int worst = 0;
  for (uint32_t y = 0; y < frame.height(); ++y) {
    for (uint32_t x = 0; x < frame.width(); ++x) {
      uint32_t want = frame.PixelAt(x, y), got = screen.PixelAt(x, y);
      for (int shift = 0; shift < 24; shift += 8) {
        worst =
            std::max(worst, std::abs(static_cast<int>((want >> shift) & 0xFF) -
                                     static_cast<int>((got >> shift) & 0xFF)));
      }
    }
  }
  return worst;
}

// A StreamFrames viewer that applies every update to its copy and acks it.
struct AckingViewer {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<pb::StreamFramesRequest,
                                           pb::StreamFramesResponse>>
      stream;
  watch::ScreenModel screen;
  pb::Started started;

  AckingViewer(pb::Display::Stub* stub, pb::Subscribe subscribe) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    stream = stub->StreamFrames(&context);
    pb::StreamFramesRequest request;
    *request.mutable_subscribe() = std::move(subscribe);
    stream->Write(request);
  }
  ~AckingViewer() { context.TryCancel(); }

  // Reads up to the end of the next update (applied and acked); false when
  // the stream ended.
  bool NextUpdate(pb::FrameUpdate* last_band) {
    pb::StreamFramesResponse event;
    while (stream->Read(&event)) {
      if (event.has_started()) started = event.started();
      if (!screen.Apply(event).ok()) return false;
      if (!event.has_update() || !event.update().end_of_update()) continue;
      *last_band = event.update();
      pb::StreamFramesRequest ack;
      ack.mutable_ack()->set_update_id(event.update().update_id());
      stream->Write(ack);
      return true;
    }
    return false;
  }
};

TEST_F(DisplayServiceTest, LossyRegionsAreSentAgainLosslesslyOnceTheySettle) {
  store_.OnScanoutMode({0, true, 320, 200}, nullptr);
  gpu::FramePtr frame = PatternFrame(320, 200, ++sequence_);
  store_.OnFrame(0, frame, {{0, 0, 320, 200}});
  pb::Subscribe subscribe;
  subscribe.add_formats(pb::IMAGE_FORMAT_JPEG);
  subscribe.add_formats(pb::IMAGE_FORMAT_ZSTD_BGRX);
  subscribe.set_jpeg_quality(40);
  subscribe.set_lossless_refresh_ms(100);
  AckingViewer viewer(stub_.get(), subscribe);
  pb::FrameUpdate update;
  ASSERT_TRUE(viewer.NextUpdate(&update));
  EXPECT_EQ(viewer.started.format(), pb::IMAGE_FORMAT_JPEG);
  EXPECT_EQ(viewer.started.refresh_format(), pb::IMAGE_FORMAT_ZSTD_BGRX);
  EXPECT_FALSE(update.refresh());
  EXPECT_GT(WorstError(viewer.screen, *frame), 8);  // JPEG at quality 40

  // The settled screen comes again, exact (when: server/viewer tests, on a
  // fake clock).
  ASSERT_TRUE(viewer.NextUpdate(&update));
  EXPECT_TRUE(update.refresh());
  EXPECT_EQ(update.flushes(), 0u);
  EXPECT_EQ(WorstError(viewer.screen, *frame), 0);

  // One 64x64 cell keeps changing for 400 ms: it travels as JPEG, nothing
  // is refreshed meanwhile; once it stops, only that cell is refreshed.
  gpu::TileGrid grid(320, 200);
  gpu::GridStats stats;
  std::vector<uint32_t> pixels(320 * 200);
  frame->ReadPixels({0, 0, 320, 200}, reinterpret_cast<uint8_t*>(pixels.data()),
                    320 * 4);
  std::atomic<bool> drawing{true};
  std::thread painter([&] {
    for (uint32_t i = 1; i <= 20; ++i) {
      for (uint32_t y = 64; y < 128; ++y)
        for (uint32_t x = 128; x < 192; ++x)
          pixels[y * 320 + x] = 0xFF000000u | ((x * i * 7) & 0xFF) << 16 |
                                ((y * i * 3) & 0xFF) << 8 |
                                ((x + y + i) & 0xFF);
      grid.WritePixels({0, 0, 320, 200},
                       reinterpret_cast<const uint8_t*>(pixels.data()), 320 * 4,
                       &stats);
      frame = std::make_shared<gpu::Frame>(320, 200, 0, 0, grid.Snapshot(),
                                           grid.columns(), ++sequence_);
      store_.OnFrame(0, frame, {{128, 64, 64, 64}});
      absl::SleepFor(absl::Milliseconds(20));
    }
    drawing = false;
  });
  std::vector<pb::FrameUpdate> while_drawing;
  while (true) {
    ASSERT_TRUE(viewer.NextUpdate(&update));
    if (update.refresh()) break;
    while_drawing.push_back(update);
  }
  painter.join();
  EXPECT_GE(while_drawing.size(), 5u);
  for (const pb::FrameUpdate& u : while_drawing) {
    for (const pb::EncodedRect& rect : u.rects()) {
      EXPECT_EQ(rect.format(), pb::IMAGE_FORMAT_JPEG);
    }
  }
  ASSERT_EQ(update.rects_size(), 1);
  EXPECT_EQ(update.rects(0).rect().x(), 128u);
  EXPECT_EQ(update.rects(0).rect().y(), 64u);
  EXPECT_EQ(update.rects(0).rect().width(), 64u);
  EXPECT_EQ(WorstError(viewer.screen, *frame), 0);

  // Settled and exact: nothing more comes until the screen changes.
  absl::SleepFor(absl::Milliseconds(400));
  store_.OnFrame(0, frame, {{0, 0, 1, 1}});
  ASSERT_TRUE(viewer.NextUpdate(&update));
  EXPECT_FALSE(update.refresh());
  EXPECT_EQ(update.flushes(), 1u);
}

TEST_F(DisplayServiceTest, LosslessRefreshCanBeTunedOrTurnedOff) {
  Publish(0xFF336699);
  auto open =
      [&](pb::WatchFramesRequest request,
          grpc::ClientContext* context) -> std::optional<pb::FrameEvent> {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(10));
    auto reader = stub_->WatchFrames(context, request);
    pb::FrameEvent event;
    if (!reader->Read(&event)) return std::nullopt;
    return event;
  };
  pb::WatchFramesRequest request;
  request.set_format(pb::IMAGE_FORMAT_JPEG);
  request.set_refresh_format(pb::IMAGE_FORMAT_JPEG);
  {
    grpc::ClientContext context;
    EXPECT_FALSE(open(request, &context));  // refresh must be lossless
  }
  request.set_refresh_format(pb::IMAGE_FORMAT_PNG);
  request.set_lossless_refresh_ms(70000);
  {
    grpc::ClientContext context;
    EXPECT_FALSE(open(request, &context));  // at most a minute
  }
  // WatchFrames refreshes in PNG by default; off means JPEG stays.
  for (bool disabled : {false, true}) {
    request = {};
    request.set_format(pb::IMAGE_FORMAT_JPEG);
    request.set_lossless_refresh_ms(50);
    request.set_disable_lossless_refresh(disabled);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    auto reader = stub_->WatchFrames(&context, request);
    pb::FrameEvent event;
    std::vector<pb::FrameUpdate> updates;
    while (reader->Read(&event)) {
      if (!event.has_update() || !event.update().end_of_update()) continue;
      updates.push_back(event.update());
      if (updates.size() == 1) {  // the full screen; then quiet, then a marker
        absl::SleepFor(absl::Milliseconds(300));
        Publish(0xFF336699);
      } else if (updates.back().flushes() > 0) {
        break;
      }
    }
    context.TryCancel();
    ASSERT_GE(updates.size(), 2u);
    if (disabled) {
      EXPECT_EQ(updates.size(), 2u) << "no refresh between";
    } else {
      ASSERT_EQ(updates.size(), 3u);
      EXPECT_TRUE(updates[1].refresh());
      EXPECT_EQ(updates[1].rects(0).format(), pb::IMAGE_FORMAT_PNG);
    }
  }
}

class StreamedScreenTest
    : public DisplayServiceTest,
      public ::testing::WithParamInterface<pb::ImageFormat> {};

TEST_P(StreamedScreenTest, TheViewersCopyMatchesTheFrame) {
  store_.OnScanoutMode({0, true, 300, 170}, nullptr);
  gpu::FramePtr frame = PatternFrame(300, 170, ++sequence_);
  store_.OnFrame(0, frame, {{0, 0, 300, 170}});
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  auto stream = stub_->StreamFrames(&context);
  pb::StreamFramesRequest subscribe;
  subscribe.mutable_subscribe()->add_formats(GetParam());
  subscribe.mutable_subscribe()->set_jpeg_quality(95);
  ASSERT_TRUE(stream->Write(subscribe));
  watch::ScreenModel screen;
  pb::StreamFramesResponse event;
  while (stream->Read(&event)) {
    ASSERT_TRUE(screen.Apply(event).ok());
    if (event.has_update() && event.update().end_of_update()) break;
  }
  context.TryCancel();
  ASSERT_EQ(screen.width(), 300u);
  int worst = 0;
  double total = 0;
  for (uint32_t y = 0; y < 170; ++y) {
    for (uint32_t x = 0; x < 300; ++x) {
      uint32_t want = frame->PixelAt(x, y), got = screen.PixelAt(x, y);
      for (int shift = 0; shift < 24; shift += 8) {
        int error = std::abs(static_cast<int>((want >> shift) & 0xFF) -
                             static_cast<int>((got >> shift) & 0xFF));
        worst = std::max(worst, error);
        total += error;
      }
    }
  }
  if (GetParam() == pb::IMAGE_FORMAT_JPEG) {
    // Lossy (4:2:0 smears chroma at sharp edges), but the right picture in
    // the right place: a small mean error.
    EXPECT_LT(total / (300.0 * 170 * 3), 12.0);
  } else {
    EXPECT_EQ(worst, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryFormat, StreamedScreenTest,
                         ::testing::Values(pb::IMAGE_FORMAT_RAW_BGRX,
                                           pb::IMAGE_FORMAT_RAW_RGBX,
                                           pb::IMAGE_FORMAT_ZSTD_BGRX,
                                           pb::IMAGE_FORMAT_PNG,
                                           pb::IMAGE_FORMAT_JPEG));

}  // namespace
}  // namespace vgpu::server
