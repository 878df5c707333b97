#include "server/grpc/display_service.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "common/log.h"
#include "common/mutex.h"
#include "server/encode/image_encoder.h"

namespace vgpu::server {
namespace {

namespace pb = vgpu::display::v1;

void FillScanout(uint32_t id, const ScanoutState& state, pb::Scanout* out) {
  out->set_id(id);
  bool enabled = state.mode && state.mode->enabled;
  out->set_enabled(enabled);
  if (enabled) {
    out->set_width(state.mode->width);
    out->set_height(state.mode->height);
  }
  out->set_frame_sequence(state.sequence);
}

absl::StatusOr<EncodeOptions> ToEncodeOptions(pb::ImageFormat format,
                                              uint32_t quality) {
  EncodeOptions options;
  switch (format) {
    case pb::IMAGE_FORMAT_UNSPECIFIED:
    case pb::IMAGE_FORMAT_PNG:
      options.kind = ImageKind::kPng;
      break;
    case pb::IMAGE_FORMAT_JPEG:
      options.kind = ImageKind::kJpeg;
      break;
    case pb::IMAGE_FORMAT_RAW_BGRX:
      options.kind = ImageKind::kRawBgrx;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown image format ", format));
  }
  if (quality > 100)
    return absl::InvalidArgumentError("jpeg_quality must be 0..100");
  options.jpeg_quality = quality == 0 ? 90 : static_cast<int>(quality);
  return options;
}

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

pb::ImageFormat Normalized(pb::ImageFormat format) {
  return format == pb::IMAGE_FORMAT_UNSPECIFIED ? pb::IMAGE_FORMAT_PNG : format;
}

int64_t UnixNanos(absl::Time time) { return absl::ToUnixNanos(time); }

// One WatchFrames stream. Lives until OnDone and until no worker task still
// refers to it.
class FrameWatcher final : public grpc::ServerWriteReactor<pb::FrameEvent>,
                           public FrameListener {
 public:
  FrameWatcher(DisplayService* service, const pb::WatchFramesRequest& request,
               EncodeOptions encode)
      : service_(service), request_(request), encode_(encode) {
    pending_mode_ = true;  // start with the mode, then a full update
    service_->store()->AddListener(this);
    Schedule(absl::InfinitePast());
  }

  void OnChange(const Change& change) override {
    if (change.scanout_id != request_.scanout_id()) return;
    MutexLock lock(&mu_);
    if (change.mode_changed) {
      pending_mode_ = true;
    } else {
      damage_.push_back(change.damage);
      ++flushes_;
      if (damage_.size() > 16) {  // many small rects: send their bounding box
        gpu::PixelRect box = damage_[0];
        for (const gpu::PixelRect& r : damage_) box = Union(box, r);
        damage_ = {box};
      }
    }
    if (!busy_ && !finished_) ScheduleLocked(next_send_);
  }

  // Reactor calls (StartWrite, Finish) are made without mu_ held: gRPC may
  // run the next reaction inline.
  void OnWriteDone(bool ok) override {
    mu_.Lock();
    if (!ok) {
      bool finish = BeginFinishLocked();
      mu_.Unlock();
      if (finish)
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
    if (TakeNextLocked()) {
      mu_.Unlock();
      StartWrite(&current_);
      return;
    }
    busy_ = false;
    if ((pending_mode_ || !damage_.empty()) && !finished_)
      ScheduleLocked(next_send_);
    mu_.Unlock();
  }

  void OnCancel() override {
    mu_.Lock();
    bool finish = BeginFinishLocked();
    mu_.Unlock();
    if (finish) Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    service_->store()->RemoveListener(this);
    service_->RemoveViewer();
    mu_.Lock();
    done_ = true;
    bool last = tasks_ == 0;
    mu_.Unlock();
    if (last) delete this;
  }

 private:
  static gpu::PixelRect Union(const gpu::PixelRect& a,
                              const gpu::PixelRect& b) {
    if (a.empty()) return b;
    if (b.empty()) return a;
    uint32_t x0 = std::min(a.x, b.x), y0 = std::min(a.y, b.y);
    uint32_t x1 = std::max(a.x + a.width, b.x + b.width);
    uint32_t y1 = std::max(a.y + a.height, b.y + b.height);
    return {x0, y0, x1 - x0, y1 - y0};
  }

  void Schedule(absl::Time when) {
    MutexLock lock(&mu_);
    ScheduleLocked(when);
  }
  void ScheduleLocked(absl::Time when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    busy_ = true;
    ++tasks_;
    service_->pool()->PostAt(when, [this] { Prepare(); });
  }

  // On a worker: turns what is pending into messages and starts writing.
  void Prepare() {
    bool send_mode;
    std::vector<gpu::PixelRect> damage;
    uint32_t flushes;
    mu_.Lock();
    send_mode = std::exchange(pending_mode_, false);
    damage.swap(damage_);
    flushes = std::exchange(flushes_, 0);
    mu_.Unlock();

    ScanoutState state = service_->store()->State(request_.scanout_id());
    std::deque<pb::FrameEvent> events;
    if (send_mode) {
      FillScanout(request_.scanout_id(), state,
                  events.emplace_back().mutable_mode_changed());
      if (state.frame)
        damage = {
            gpu::PixelRect{0, 0, state.frame->width(), state.frame->height()}};
    }
    if (state.frame && !damage.empty())
      EncodeUpdate(state, damage, flushes, &events);

    mu_.Lock();
    --tasks_;
    if (done_) {
      bool last = tasks_ == 0;
      mu_.Unlock();
      if (last) delete this;
      return;
    }
    if (finished_) {
      mu_.Unlock();
      return;
    }
    for (pb::FrameEvent& event : events) outbox_.push_back(std::move(event));
    if (request_.max_fps() > 0)
      next_send_ = absl::Now() + absl::Seconds(1.0 / request_.max_fps());
    if (TakeNextLocked()) {
      mu_.Unlock();
      StartWrite(&current_);
      return;
    }
    busy_ = false;
    if (pending_mode_ || !damage_.empty()) ScheduleLocked(next_send_);
    mu_.Unlock();
  }

  // Splits each damaged rect into bands that fit a message and encodes them.
  void EncodeUpdate(const ScanoutState& state,
                    const std::vector<gpu::PixelRect>& damage, uint32_t flushes,
                    std::deque<pb::FrameEvent>* events) {
    const gpu::Frame& frame = *state.frame;
    const size_t budget = service_->options().max_message_bytes - 4096;
    pb::FrameUpdate* update = nullptr;
    size_t update_bytes = 0;
    auto start_update = [&] {
      update = events->emplace_back().mutable_update();
      update->set_frame_sequence(frame.sequence());
      update->set_flushes(flushes);
      update->set_flush_time_unix_ns(UnixNanos(state.last_flush));
      update_bytes = 0;
    };
    start_update();
    for (const gpu::PixelRect& rect : damage) {
      gpu::PixelRect clipped =
          gpu::Intersect(rect, {0, 0, frame.width(), frame.height()});
      if (clipped.empty()) continue;
      // Raw rows are width*4 bytes; bands keep raw size under the budget, so
      // every encoding fits.
      uint32_t band_rows = std::max<uint32_t>(
          1, static_cast<uint32_t>(budget / (size_t{clipped.width} * 4)));
      for (uint32_t y = clipped.y; y < clipped.y + clipped.height;
           y += band_rows) {
        gpu::PixelRect band{
            clipped.x, y, clipped.width,
            std::min(band_rows, clipped.y + clipped.height - y)};
        absl::StatusOr<std::string> data = EncodeImage(frame, band, encode_);
        if (!data.ok()) {
          VGPU_LOG(WARNING) << "encoding failed: " << data.status().message();
          continue;
        }
        if (update_bytes + data->size() > budget && update->rects_size() > 0)
          start_update();
        pb::EncodedRect* out = update->add_rects();
        out->mutable_rect()->set_x(band.x);
        out->mutable_rect()->set_y(band.y);
        out->mutable_rect()->set_width(band.width);
        out->mutable_rect()->set_height(band.height);
        out->set_format(Normalized(request_.format()));
        update_bytes += data->size();
        out->set_data(*std::move(data));
      }
    }
    // The last message of the update says so.
    for (auto it = events->rbegin(); it != events->rend(); ++it) {
      if (it->has_update()) {
        it->mutable_update()->set_end_of_update(true);
        break;
      }
    }
  }

  // Moves the next queued message into current_ (the one write in flight).
  bool TakeNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (outbox_.empty()) return false;
    current_ = std::move(outbox_.front());
    outbox_.pop_front();
    if (current_.has_update())
      current_.mutable_update()->set_send_time_unix_ns(UnixNanos(absl::Now()));
    return true;
  }

  // True once: the caller then calls Finish() outside the lock.
  bool BeginFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return false;
    finished_ = true;
    outbox_.clear();
    return true;
  }

  DisplayService* service_;
  const pb::WatchFramesRequest request_;
  const EncodeOptions encode_;
  Mutex mu_;
  bool pending_mode_ VGPU_GUARDED_BY(mu_) = false;
  std::vector<gpu::PixelRect> damage_ VGPU_GUARDED_BY(mu_);
  uint32_t flushes_ VGPU_GUARDED_BY(mu_) = 0;
  bool busy_ VGPU_GUARDED_BY(mu_) =
      false;  // a task is scheduled or a write is in flight
  bool finished_ VGPU_GUARDED_BY(mu_) = false;
  bool done_ VGPU_GUARDED_BY(mu_) = false;
  int tasks_ VGPU_GUARDED_BY(mu_) = 0;
  absl::Time next_send_ VGPU_GUARDED_BY(mu_) = absl::InfinitePast();
  std::deque<pb::FrameEvent> outbox_ VGPU_GUARDED_BY(mu_);
  pb::FrameEvent current_;
};

}  // namespace

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
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->scanout_id() >= options_.num_scanouts) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no scanout ", request->scanout_id())));
    return reactor;
  }
  absl::StatusOr<EncodeOptions> encode =
      ToEncodeOptions(request->format(), request->jpeg_quality());
  if (!encode.ok()) {
    reactor->Finish(ToGrpc(encode.status()));
    return reactor;
  }
  // The sequence a "next flush" waits past is the one current on arrival.
  const uint64_t arrival_sequence =
      store_->State(request->scanout_id()).sequence;
  pool_->Post([this, context, request, response, reactor, encode = *encode,
               arrival_sequence] {
    absl::Duration timeout = absl::Milliseconds(
        request->timeout_ms() == 0 ? 10000 : request->timeout_ms());
    std::function<bool(const ScanoutState&)> done;
    switch (request->wait_case()) {
      case pb::GetScreenshotRequest::kNextFlush:
        done = [arrival_sequence](const ScanoutState& s) {
          return s.frame && s.sequence > arrival_sequence;
        };
        break;
      case pb::GetScreenshotRequest::kAfterSequence:
        done = [k = request->after_sequence()](const ScanoutState& s) {
          return s.frame && s.sequence > k;
        };
        break;
      case pb::GetScreenshotRequest::kStableForMs:
        done = [quiet = absl::Milliseconds(request->stable_for_ms())](
                   const ScanoutState& s) {
          return s.frame && absl::Now() - s.last_flush >= quiet;
        };
        break;
      default:
        done = [](const ScanoutState&) { return true; };
        break;
    }
    auto [state, met] =
        store_->WaitFor(request->scanout_id(), done, absl::Now() + timeout,
                        [context] { return context->IsCancelled(); });
    if (!met) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                       absl::StrCat("scanout ", request->scanout_id(),
                                    ": wait condition not met within ",
                                    absl::FormatDuration(timeout))));
      return;
    }
    if (!state.frame) {
      reactor->Finish(grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("scanout ", request->scanout_id(), " shows nothing")));
      return;
    }
    gpu::PixelRect region{0, 0, state.frame->width(), state.frame->height()};
    if (request->has_region() && request->region().width() > 0 &&
        request->region().height() > 0) {
      region = gpu::Intersect(
          region, {request->region().x(), request->region().y(),
                   request->region().width(), request->region().height()});
      if (region.empty()) {
        reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                     "region is outside the scanout"));
        return;
      }
    }
    absl::StatusOr<std::string> data =
        EncodeImage(*state.frame, region, encode);
    if (!data.ok()) {
      reactor->Finish(ToGrpc(data.status()));
      return;
    }
    response->set_scanout_id(request->scanout_id());
    response->set_width(region.width);
    response->set_height(region.height);
    response->set_format(Normalized(request->format()));
    response->set_data(*std::move(data));
    response->set_frame_sequence(state.frame->sequence());
    response->set_capture_time_unix_ns(UnixNanos(absl::Now()));
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerWriteReactor<pb::FrameEvent>* DisplayService::WatchFrames(
    grpc::CallbackServerContext* /*context*/,
    const pb::WatchFramesRequest* request) {
  auto reject = [](grpc::Status status) {
    class Rejected : public grpc::ServerWriteReactor<pb::FrameEvent> {
     public:
      explicit Rejected(grpc::Status status) { Finish(std::move(status)); }
      void OnDone() override { delete this; }
    };
    return new Rejected(std::move(status));
  };
  if (request->scanout_id() >= options_.num_scanouts) {
    return reject(
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no scanout ", request->scanout_id())));
  }
  absl::StatusOr<EncodeOptions> encode =
      ToEncodeOptions(request->format(), request->jpeg_quality());
  if (!encode.ok()) return reject(ToGrpc(encode.status()));
  if (!AddViewer()) {
    return reject(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("viewer limit of ", options_.max_viewers, " reached")));
  }
  return new FrameWatcher(this, *request, *encode);
}

}  // namespace vgpu::server
