// Property: a mode and the frame any reader sees are one consistent pair.
// Random sequences of create / attach / set-scanout (resizes included) /
// transfer / flush / unref / disable drive the real device, across resource
// policies and 1-4 scanouts, into the real frame store and gRPC service. After
// every event the store never pairs a mode with a frame of another size;
// every viewer (a real gRPC client keeping a copy of the screen) never gets
// an update reaching outside the last mode it was told, gets the whole frame
// first after each mode change, and ends on the last mode with its pixels.
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include <grpcpp/grpcpp.h>

#include "clients/watch/screen_model.h"
#include "common/mutex.h"
#include "device/guest_sim/simulated_guest.h"
#include "server/frame_store.h"
#include "server/grpc/display_service.h"
#include "server/worker_pool.h"

namespace vgpu {
namespace {

namespace pb = vgpu::display::v1;
using gpu::wire::Rect;
constexpr uint32_t kOk = gpu::wire::kRespOkNodata;

// Checks the store after every change, on the device thread.
class StoreChecker : public server::FrameListener {
 public:
  explicit StoreChecker(server::FrameStore* store) : store_(store) {}
  void OnChange(const server::Change& change) override {
    server::ScanoutState state = store_->State(change.scanout_id);
    if (!state.frame) return;
    if (!state.mode || !state.mode->enabled ||
        state.frame->width() != state.mode->width ||
        state.frame->height() != state.mode->height) {
      ++violations;
    }
  }
  std::atomic<int> violations{0};

 private:
  server::FrameStore* store_;
};

// A gRPC viewer of one scanout, checking every event as it arrives.
class CheckingViewer {
 public:
  CheckingViewer(pb::Display::Stub* stub, uint32_t scanout_id) {
    pb::WatchFramesRequest request;
    request.set_scanout_id(scanout_id);
    request.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
    reader_ = stub->WatchFrames(&context_, request);
    thread_ = std::thread([this] { Run(); });
  }
  ~CheckingViewer() {
    context_.TryCancel();
    thread_.join();
  }

  // Whether the copy is the same picture as `frame` (nullptr: nothing).
  bool Shows(const gpu::FramePtr& frame) {
    MutexLock lock(&mu_);
    if (!frame) return model_.width() == 0;
    if (model_.width() != frame->width() || model_.height() != frame->height())
      return false;
    std::vector<uint8_t> pixels(size_t{frame->width()} * frame->height() * 4);
    frame->ReadPixels({0, 0, frame->width(), frame->height()}, pixels.data(),
                      size_t{frame->width()} * 4);
    return pixels == model_.pixels();
  }
  std::string Describe(const gpu::FramePtr& frame) {
    MutexLock lock(&mu_);
    std::string out =
        absl::StrCat("copy ", model_.width(), "x", model_.height(), ", frame ");
    if (!frame) return out + "none";
    absl::StrAppend(&out, frame->width(), "x", frame->height(), " seq ",
                    frame->sequence(), ", last update seq ", last_sequence_);
    if (model_.width() == frame->width() &&
        model_.height() == frame->height()) {
      size_t differ = 0;
      for (uint32_t y = 0; y < frame->height(); ++y)
        for (uint32_t x = 0; x < frame->width(); ++x)
          differ += model_.PixelAt(x, y) != frame->PixelAt(x, y);
      absl::StrAppend(&out, ", ", differ, " pixels differ");
    }
    return out;
  }
  std::string errors() {
    MutexLock lock(&mu_);
    return errors_;
  }

 private:
  void Run() {
    pb::FrameEvent event;
    while (reader_->Read(&event)) {
      MutexLock lock(&mu_);
      pb::StreamFramesResponse as_stream;
      if (event.has_mode_changed()) {
        *as_stream.mutable_mode_changed() = event.mode_changed();
        covered_.assign(size_t{event.mode_changed().width()} *
                            event.mode_changed().height(),
                        false);
        need_full_ = event.mode_changed().enabled();
      } else if (event.has_update()) {
        *as_stream.mutable_update() = event.update();
        last_sequence_ = event.update().frame_sequence();
        Cover(event.update());
      }
      if (absl::Status status = model_.Apply(as_stream); !status.ok()) {
        absl::StrAppend(&errors_, status.message(), "; ");
      }
    }
  }

  // The first update after a mode change must be the whole screen.
  void Cover(const pb::FrameUpdate& update) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!need_full_) return;
    const uint32_t width = model_.width();
    for (const pb::EncodedRect& rect : update.rects()) {
      for (uint32_t y = rect.rect().y();
           y < rect.rect().y() + rect.rect().height() && y < model_.height();
           ++y) {
        for (uint32_t x = rect.rect().x();
             x < rect.rect().x() + rect.rect().width() && x < width; ++x) {
          covered_[size_t{y} * width + x] = true;
        }
      }
    }
    if (!update.end_of_update()) return;
    need_full_ = false;
    if (std::find(covered_.begin(), covered_.end(), false) != covered_.end()) {
      absl::StrAppend(&errors_, "first update after a mode change left ",
                      std::count(covered_.begin(), covered_.end(), false),
                      " pixels out; ");
    }
  }

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<pb::FrameEvent>> reader_;
  std::thread thread_;
  Mutex mu_;
  watch::ScreenModel model_ VGPU_GUARDED_BY(mu_);
  std::vector<bool> covered_ VGPU_GUARDED_BY(mu_);
  bool need_full_ VGPU_GUARDED_BY(mu_) = false;
  uint64_t last_sequence_ VGPU_GUARDED_BY(mu_) = 0;
  std::string errors_ VGPU_GUARDED_BY(mu_);
};

struct GuestResource {
  uint32_t id;
  uint32_t width, height;
  uint64_t gpa;
  bool blob;
};

struct Params {
  gpu::ResourcePolicy policy;
  uint32_t scanouts;
};

class ResizePropertyTest : public ::testing::TestWithParam<Params> {};

TEST_P(ResizePropertyTest, ModesAndFramesStayOnePair) {
  const Params params = GetParam();
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    server::FrameStore store;
    StoreChecker checker(&store);
    store.AddListener(&checker);
    server::WorkerPool pool(2);
    server::DisplayService service(
        &store, &pool, server::DisplayServiceOptions{.num_scanouts = 4});
    const std::string address =
        absl::StrCat("unix:", ::testing::TempDir(), "/resize-", getpid(), "-",
                     seed, ".sock");
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    ASSERT_NE(server, nullptr);
    auto stub = pb::Display::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));

    guest_sim::SimulatedGuestOptions options;
    options.ram_bytes = 256ull << 20;
    options.device.policy = params.policy;
    options.device.auto_shared_min_bytes = 128 << 10;
    options.device.displays.assign(params.scanouts, {640, 480, true});
    auto guest = guest_sim::SimulatedGuest::Create(options);
    ASSERT_TRUE(guest.ok()) << guest.status();
    (*guest)->sink().keep_frames = false;
    (*guest)->sink().set_next(&store);

    std::vector<std::unique_ptr<CheckingViewer>> viewers;
    for (uint32_t s = 0; s < params.scanouts; ++s)
      viewers.push_back(std::make_unique<CheckingViewer>(stub.get(), s));

    std::mt19937 random(seed * 7919 + params.scanouts);
    auto pick = [&](uint32_t n) {
      return std::uniform_int_distribution<uint32_t>(0, n - 1)(random);
    };
    std::vector<GuestResource> resources;
    uint32_t next_id = 1;
    auto paint = [&](const GuestResource& r) {
      std::vector<uint32_t> pixels(size_t{r.width} * r.height);
      const uint32_t base = static_cast<uint32_t>(random());
      for (size_t i = 0; i < pixels.size(); ++i)
        pixels[i] = 0xFF000000u | (base + static_cast<uint32_t>(i / 61) * 97);
      ASSERT_TRUE(
          (*guest)
              ->WriteGuest(r.gpa, absl::MakeConstSpan(
                                      reinterpret_cast<uint8_t*>(pixels.data()),
                                      pixels.size() * 4))
              .ok());
    };
    auto rect_of = [&](const GuestResource& r) {
      // The whole resource, or a part of it no smaller than 16x16.
      if (pick(2) == 0) return Rect{0, 0, r.width, r.height};
      uint32_t w = 16 + pick(r.width - 15), h = 16 + pick(r.height - 15);
      return Rect{pick(r.width - w + 1), pick(r.height - h + 1), w, h};
    };
    for (int step = 0; step < 150; ++step) {
      const uint32_t op = resources.empty() ? 0 : pick(8);
      const uint32_t scanout = pick(params.scanouts);
      if (op == 0 || (op == 1 && resources.size() < 3)) {
        GuestResource r{next_id++, 16 + pick(300), 16 + pick(220), 0,
                        pick(3) == 0};
        const uint64_t bytes = uint64_t{r.width} * r.height * 4;
        auto gpa = (*guest)->Alloc(bytes);
        ASSERT_TRUE(gpa.ok());
        r.gpa = *gpa;
        paint(r);
        gpu::wire::MemEntry entry{r.gpa, static_cast<uint32_t>(bytes), 0};
        if (r.blob) {
          ASSERT_EQ((*guest)->CreateBlob(r.id, bytes, {&entry, 1}), kOk);
        } else {
          ASSERT_EQ((*guest)->Create2d(r.id, r.width, r.height), kOk);
          ASSERT_EQ((*guest)->AttachEntries(r.id, {&entry, 1}), kOk);
          ASSERT_EQ((*guest)->Transfer(r.id, Rect{0, 0, r.width, r.height}, 0),
                    kOk);
        }
        resources.push_back(r);
        continue;
      }
      GuestResource& r = resources[pick(resources.size())];
      switch (op) {
        case 1:
        case 2:  // show it (a resize whenever the size differs)
          if (r.blob) {
            ASSERT_EQ((*guest)->SetScanoutBlob(scanout, r.id, r.width, r.height,
                                               r.width * 4, 0, rect_of(r)),
                      kOk);
          } else {
            ASSERT_EQ((*guest)->SetScanout(scanout, r.id, rect_of(r)), kOk);
          }
          break;
        case 3:
        case 4:  // new pixels, then a flush (rejected for blobs not shown)
          paint(r);
          if (!r.blob) {
            ASSERT_EQ(
                (*guest)->Transfer(r.id, Rect{0, 0, r.width, r.height}, 0),
                kOk);
          }
          (*guest)->Flush(r.id, Rect{0, 0, r.width, r.height});
          break;
        case 5: {  // part of it changes
          paint(r);
          Rect part = rect_of(r);
          if (!r.blob) {
            ASSERT_EQ(
                (*guest)->Transfer(r.id, part,
                                   uint64_t{part.y} * r.width * 4 + part.x * 4),
                kOk);
          }
          (*guest)->Flush(r.id, part);
          break;
        }
        case 6: {  // gone (its scanouts are disabled)
          ASSERT_EQ((*guest)->Unref(r.id), kOk);
          std::swap(r, resources.back());
          resources.pop_back();
          break;
        }
        default:  // scanout off
          ASSERT_EQ((*guest)->SetScanout(scanout, 0, Rect{0, 0, 0, 0}), kOk);
          break;
      }
    }
    // Every scanout's last picture is flushed once more, so its frame holds
    // the guest's current pixels.
    for (const GuestResource& r : resources)
      (*guest)->Flush(r.id, Rect{0, 0, r.width, r.height});

    EXPECT_EQ(checker.violations.load(), 0);
    for (uint32_t s = 0; s < params.scanouts; ++s) {
      SCOPED_TRACE(absl::StrCat("scanout ", s));
      const gpu::FramePtr last = store.State(s).frame;
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      while (!viewers[s]->Shows(last) && absl::Now() < deadline)
        absl::SleepFor(absl::Milliseconds(2));
      EXPECT_TRUE(viewers[s]->Shows(last)) << viewers[s]->Describe(last);
      EXPECT_EQ(viewers[s]->errors(), "");
    }
    viewers.clear();
    store.RemoveListener(&checker);
    server->Shutdown();
  }
}

INSTANTIATE_TEST_SUITE_P(
    PoliciesAndScanouts, ResizePropertyTest,
    ::testing::Values(Params{gpu::ResourcePolicy::kCopy, 1},
                      Params{gpu::ResourcePolicy::kShared, 1},
                      Params{gpu::ResourcePolicy::kAuto, 2},
                      Params{gpu::ResourcePolicy::kCopy, 3},
                      Params{gpu::ResourcePolicy::kShared, 4}),
    [](const ::testing::TestParamInfo<Params>& param_info) {
      const char* policy =
          param_info.param.policy == gpu::ResourcePolicy::kCopy     ? "Copy"
          : param_info.param.policy == gpu::ResourcePolicy::kShared ? "Shared"
                                                                    : "Auto";
      return absl::StrCat(policy, param_info.param.scanouts, "Scanouts");
    });

}  // namespace
}  // namespace vgpu
