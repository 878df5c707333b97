#include "server/grpc/display_service.h"

#include <memory>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "common/log.h"
#include "common/mutex.h"
#include "server/encode/image_encoder.h"
#include "server/grpc/grpc_status.h"
#include "server/grpc/viewer_streams.h"
#include "server/viewer/formats.h"
#include "server/viewer/requests.h"

namespace vgpu::server {
namespace {

namespace pb = vgpu::display::v1;

// GetScreenshot: waits (if asked) without a thread, then encodes on a
// worker. Complete is called exactly once (by the wait or the "now" task);
// a cancelled call ends its wait, which completes it with CANCELLED.
class ScreenshotCall final : public grpc::ServerUnaryReactor {
 public:
  ScreenshotCall(const pb::GetScreenshotRequest* request,
                 pb::Screenshot* response, ScreenshotPlan plan)
      : request_(request), response_(response), plan_(plan) {}

  const ScreenshotPlan& plan() const { return plan_; }

  // `wait` is what a cancel must end (it may have ended already). The call
  // may complete before this (even before the handler returns): gRPC runs
  // no reaction, OnDone included, until the handler has returned it.
  void SetWait(ScreenshotWaits* waits,
               const std::shared_ptr<ScreenshotWaits::Wait>& wait) {
    bool cancelled;
    {
      MutexLock lock(&mu_);
      waits_ = waits;
      wait_ = wait;
      cancelled = cancelled_;
    }
    if (cancelled) waits->Cancel(wait);
  }

  void OnCancel() override {
    std::shared_ptr<ScreenshotWaits::Wait> wait;
    ScreenshotWaits* waits;
    {
      MutexLock lock(&mu_);
      cancelled_ = true;
      wait = wait_;
      waits = waits_;
    }
    if (waits != nullptr && wait) waits->Cancel(wait);
  }

  void OnDone() override { delete this; }

  // On a worker: the state to take the picture from, or why there is none.
  void Complete(absl::StatusOr<ScanoutState> state) {
    if (!state.ok()) {
      if (state.status().code() == absl::StatusCode::kDeadlineExceeded) {
        // A stable wait fails on a screen that never rests: say so, and
        // what waits instead.
        const std::string what =
            plan_.condition.kind == WaitKind::kStable
                ? absl::StrCat(
                      "not still for ",
                      absl::FormatDuration(plan_.condition.quiet), " within ",
                      absl::FormatDuration(plan_.timeout),
                      plan_.timeout <= plan_.condition.quiet
                          ? " (the timeout is not longer than the stillness "
                            "asked for)"
                          : " (it kept changing: a clock, a blinking cursor "
                            "or an animation never rests; wait for the next "
                            "flush or a sequence instead)")
                : absl::StrCat("wait condition not met within ",
                               absl::FormatDuration(plan_.timeout));
        Finish(grpc::Status(
            grpc::StatusCode::DEADLINE_EXCEEDED,
            absl::StrCat("scanout ", plan_.scanout_id, ": ", what)));
      } else {
        Finish(ToGrpc(state.status()));
      }
      return;
    }
    absl::StatusOr<pb::Screenshot> shot =
        TakeScreenshot(*request_, plan_, *state, absl::Now());
    if (!shot.ok()) {
      Finish(ToGrpc(shot.status()));
      return;
    }
    *response_ = *std::move(shot);
    Finish(grpc::Status::OK);
  }

 private:
  const pb::GetScreenshotRequest* const request_;
  pb::Screenshot* const response_;
  const ScreenshotPlan plan_;
  Mutex mu_;
  bool cancelled_ VGPU_GUARDED_BY(mu_) = false;
  ScreenshotWaits* waits_ VGPU_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<ScreenshotWaits::Wait> wait_ VGPU_GUARDED_BY(mu_);
};

grpc::ServerUnaryReactor* FinishedReactor(grpc::CallbackServerContext* context,
                                          grpc::Status status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

}  // namespace

uint64_t DisplayService::NewInstanceId() {
  std::random_device random;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t{random()} << 32) ^ random();
  return id;
}

DisplayService::~DisplayService() {
  MutexLock lock(&work_mu_);
  work_mu_.Await([this]()
                     ABSL_NO_THREAD_SAFETY_ANALYSIS { return work_ == 0; });
}

void DisplayService::BeginWork() {
  MutexLock lock(&work_mu_);
  ++work_;
}

void DisplayService::EndWork() {
  MutexLock lock(&work_mu_);
  if (--work_ == 0) work_mu_.NotifyAll();
}

bool DisplayService::AddViewer() {
  uint32_t now = viewers_.fetch_add(1) + 1;
  if (now > options_.max_viewers) {
    viewers_.fetch_sub(1);
    return false;
  }
  return true;
}

void DisplayService::RemoveViewer() { viewers_.fetch_sub(1); }

grpc::ServerUnaryReactor* DisplayService::ListScanouts(
    grpc::CallbackServerContext* context, const pb::ListScanoutsRequest*,
    pb::ListScanoutsResponse* response) {
  std::map<uint32_t, ScanoutState> states = store_->States();
  for (uint32_t id = 0; id < options_.num_scanouts; ++id) {
    auto it = states.find(id);
    FillScanout(id, it == states.end() ? ScanoutState{} : it->second,
                response->add_scanouts());
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* DisplayService::GetScreenshot(
    grpc::CallbackServerContext* context,
    const pb::GetScreenshotRequest* request, pb::Screenshot* response) {
  // A "next flush" waits past the sequence current on arrival.
  absl::StatusOr<ScreenshotPlan> plan =
      PlanScreenshot(*request, options_.num_scanouts,
                     store_->State(request->scanout_id()).sequence);
  if (!plan.ok()) return FinishedReactor(context, ToGrpc(plan.status()));
  auto* call = new ScreenshotCall(request, response, *plan);
  if (!plan->wait) {
    BeginWork();
    pool_->Post([this, call] {
      call->Complete(store_->State(call->plan().scanout_id));
      EndWork();
    });
    return call;
  }
  absl::StatusOr<std::shared_ptr<ScreenshotWaits::Wait>> wait = waits_.Start(
      plan->scanout_id, plan->condition, absl::Now() + plan->timeout,
      [call](absl::StatusOr<ScanoutState> state) {
        call->Complete(std::move(state));
      });
  if (!wait.ok()) {
    call->Complete(wait.status());
    return call;
  }
  call->SetWait(&waits_, *std::move(wait));
  return call;
}

grpc::ServerWriteReactor<pb::FrameEvent>* DisplayService::WatchFrames(
    grpc::CallbackServerContext* context,
    const pb::WatchFramesRequest* request) {
  using Reactor = grpc::ServerWriteReactor<pb::FrameEvent>;
  absl::StatusOr<ViewerSettings> settings =
      WatchSettings(*request, options_.num_scanouts, options_.band_bytes);
  if (!settings.ok())
    return NewRejectedStream<Reactor>(ToGrpc(settings.status()));
  if (!AddViewer()) {
    VGPU_LOG(WARNING) << "viewer " << context->peer() << " refused: limit of "
                      << options_.max_viewers << " viewers (--max_viewers)";
    return NewRejectedStream<Reactor>(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("viewer limit of ", options_.max_viewers, " reached")));
  }
  return NewFrameWatcher(this, context->peer(), *std::move(settings));
}

grpc::ServerBidiReactor<pb::StreamFramesRequest, pb::StreamFramesResponse>*
DisplayService::StreamFrames(grpc::CallbackServerContext* context) {
  if (!AddViewer()) {
    VGPU_LOG(WARNING) << "viewer " << context->peer() << " refused: limit of "
                      << options_.max_viewers << " viewers (--max_viewers)";
    return NewRejectedStream<grpc::ServerBidiReactor<pb::StreamFramesRequest,
                                                     pb::StreamFramesResponse>>(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     absl::StrCat("viewer limit of ", options_.max_viewers,
                                  " reached")));
  }
  return NewFrameStreamer(this, context->peer());
}

grpc::ServerWriteReactor<pb::Scanout>* DisplayService::WatchScanouts(
    grpc::CallbackServerContext* context,
    const pb::WatchScanoutsRequest* /*request*/) {
  return NewScanoutWatcher(this, context->peer());
}

ViewerContext DisplayService::ContextFor(uint64_t viewer_id) {
  ViewerContext context;
  context.store = store_;
  context.cache = &cache_;
  context.metrics = &metrics_;
  context.executor = pool_;
  context.viewer_id = viewer_id;
  return context;
}

grpc::ServerUnaryReactor* DisplayService::RequestLayout(
    grpc::CallbackServerContext* context,
    const pb::RequestLayoutRequest* request,
    pb::RequestLayoutResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->scanout_id() >= options_.num_scanouts) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no scanout ", request->scanout_id())));
    return reactor;
  }
  if (!layout_) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                 "no device to configure"));
    return reactor;
  }
  // The device lives on the device thread: the request goes there, and the
  // answer comes back to finish the call.
  layout_(request->scanout_id(),
          gpu::DisplayConfig{request->width(), request->height(),
                             request->enabled()},
          [reactor, response](const absl::Status& status, bool guest_notified) {
            response->set_guest_notified(guest_notified);
            reactor->Finish(ToGrpc(status));
          });
  return reactor;
}

}  // namespace vgpu::server
