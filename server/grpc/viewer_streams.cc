#include "server/grpc/viewer_streams.h"

#include <atomic>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "common/compact_update.h"
#include "common/log.h"
#include "common/mutex.h"
#include "server/grpc/display_service.h"
#include "server/grpc/grpc_status.h"
#include "server/grpc/stream_writer.h"
#include "server/viewer/formats.h"
#include "server/viewer/requests.h"

namespace vgpu::server {
namespace {

namespace pb = vgpu::display::v1;

// What WatchFrames and StreamFrames share: a viewer slot, a writer, a core
// made by the subclass, and a lifetime that ends after OnDone once the
// core's last task has returned.
template <typename Reactor, typename Message>
class ViewerStream : public Reactor, public ViewerOutput {
 public:
  ViewerStream(DisplayService* service, const char* kind, std::string peer)
      : service_(service),
        viewer_id_(service->NextViewerId()),
        kind_(kind),
        peer_(std::move(peer)),
        writer_(this, [this](Message& message) { BeforeWrite(message); }) {
    service_->StreamOpened(kind_);
  }

  bool Idle() const override { return writer_.Idle(); }
  void OnWriteDone(bool ok) override {
    if (writer_.OnWriteDone(ok)) {
      if (std::shared_ptr<ViewerCore> core = this->core()) core->OnDrained();
    }
  }
  void OnCancel() override { writer_.Finish(grpc::Status::CANCELLED); }
  void OnDone() override {
    service_->RemoveViewer();
    std::shared_ptr<ViewerCore> core = this->core();
    if (!core) {
      Destroy();
      return;
    }
    core->Stop([this] { Destroy(); });
  }

 protected:
  // Makes and starts the core (once).
  void StartCore(ViewerSettings settings) {
    VGPU_LOG(INFO) << "viewer " << viewer_id_ << " (" << peer_ << ") " << kind_
                   << ": scanout " << settings.scanout_id << ", "
                   << EncodingName(settings.format)
                   << (settings.max_fps > 0
                           ? absl::StrCat(", at most ", settings.max_fps,
                                          " fps")
                           : "");
    started_ = absl::Now();
    std::shared_ptr<ViewerCore> core =
        ViewerCore::Create(service_->ContextFor(viewer_id_), settings, this);
    {
      MutexLock lock(&core_mu_);
      core_ = core;
    }
    core->Start();
  }
  std::shared_ptr<ViewerCore> core() const {
    MutexLock lock(&core_mu_);
    return core_;
  }
  // Before the core starts: updates go out compacted from then on.
  void set_compact(bool compact) { compact_ = compact; }

  DisplayService* const service_;
  const uint64_t viewer_id_;
  const char* const kind_;
  const std::string peer_;
  StreamWriter<Reactor, Message> writer_;

 private:
  // After the core's last round: nothing counts for this viewer any more.
  void Destroy() {
    if (started_ != absl::InfinitePast()) {
      VGPU_LOG(INFO) << "viewer " << viewer_id_ << " (" << peer_ << ") "
                     << kind_ << ": left after "
                     << absl::FormatDuration(absl::Trunc(
                            absl::Now() - started_, absl::Milliseconds(100)));
    }
    service_->metrics().RemoveViewer(viewer_id_);
    service_->StreamClosed(kind_);
    delete this;
  }

  // Each update band as it is handed to gRPC (under the writer's lock, in
  // order): measures flush to send on the last band of an update, then
  // stamps the send time or compacts it.
  void BeforeWrite(Message& message) {
    if (!message.has_update()) return;
    pb::FrameUpdate* update = message.mutable_update();
    const int64_t now = UnixNanos(absl::Now());
    if (update->end_of_update() && update->flush_time_unix_ns() > 0) {
      service_->metrics().flush_to_send_seconds().Observe(
          static_cast<double>(now - update->flush_time_unix_ns()) / 1e9);
    }
    if (compact_.load(std::memory_order_relaxed)) {
      compactor_.Compact(update);
    } else {
      update->set_send_time_unix_ns(now);
    }
  }

  absl::Time started_ = absl::InfinitePast();  // set by StartCore
  // Set before the first update is written (the core starts after it).
  std::atomic<bool> compact_{false};
  UpdateCompactor compactor_;  // only in BeforeWrite

  mutable Mutex core_mu_;
  std::shared_ptr<ViewerCore> core_ VGPU_GUARDED_BY(core_mu_);
};

class FrameWatcher final
    : public ViewerStream<grpc::ServerWriteReactor<pb::FrameEvent>,
                          pb::FrameEvent> {
 public:
  FrameWatcher(DisplayService* service, std::string peer,
               ViewerSettings settings)
      : ViewerStream(service, "WatchFrames", std::move(peer)) {
    StartCore(settings);
  }

  void Send(pb::StreamFramesResponse message) override {
    pb::FrameEvent event;
    if (message.has_mode_changed()) {
      event.mutable_mode_changed()->Swap(message.mutable_mode_changed());
    } else if (message.has_update()) {
      event.mutable_update()->Swap(message.mutable_update());
    } else {
      return;  // no cursor events on WatchFrames
    }
    writer_.Write(std::move(event));
  }
};

class FrameStreamer final
    : public ViewerStream<grpc::ServerBidiReactor<pb::StreamFramesRequest,
                                                  pb::StreamFramesResponse>,
                          pb::StreamFramesResponse> {
 public:
  FrameStreamer(DisplayService* service, std::string peer)
      : ViewerStream(service, "StreamFrames", std::move(peer)) {
    this->StartRead(&incoming_);
  }

  void Send(pb::StreamFramesResponse message) override {
    writer_.Write(std::move(message));
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side: no more acks can come
      writer_.Finish(grpc::Status::OK);
      return;
    }
    std::shared_ptr<ViewerCore> core = this->core();
    if (!core) {
      if (absl::Status status = Subscribe(); !status.ok()) {
        writer_.Finish(ToGrpc(status));
        return;
      }
    } else if (incoming_.has_ack()) {
      core->Acknowledge(incoming_.ack().update_id());
    } else if (incoming_.has_refresh()) {
      core->Refresh();
    } else {
      writer_.Finish(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "after Subscribe only Ack and RefreshRequest are accepted"));
      return;
    }
    this->StartRead(&incoming_);
  }

 private:
  absl::Status Subscribe() {
    if (!incoming_.has_subscribe()) {
      return absl::InvalidArgumentError("the first message must be Subscribe");
    }
    const pb::Subscribe& subscribe = incoming_.subscribe();
    absl::StatusOr<ViewerSettings> settings =
        SubscribeSettings(subscribe, service_->options().num_scanouts,
                          service_->options().band_bytes);
    if (!settings.ok()) return settings.status();
    pb::StreamFramesResponse started;
    started.mutable_started()->set_format(settings->format);
    started.mutable_started()->set_refresh_format(settings->refresh.format);
    started.mutable_started()->set_max_in_flight(settings->max_in_flight);
    started.mutable_started()->set_instance_id(service_->instance_id());
    FillScanout(subscribe.scanout_id(),
                service_->store()->State(subscribe.scanout_id()),
                started.mutable_started()->mutable_scanout());
    writer_.Write(std::move(started));  // before anything the core sends
    set_compact(subscribe.compact_updates());
    StartCore(*settings);
    return absl::OkStatus();
  }

  // Only touched by read reactions, which never overlap.
  pb::StreamFramesRequest incoming_;
};

class ScanoutWatcher final : public grpc::ServerWriteReactor<pb::Scanout>,
                             public FrameListener {
 public:
  ScanoutWatcher(DisplayService* service, std::string peer)
      : service_(service), peer_(std::move(peer)), writer_(this) {
    service_->StreamOpened("WatchScanouts");
    VGPU_LOG(INFO) << "viewer (" << peer_ << ") WatchScanouts: connected";
    {
      MutexLock lock(&mu_);
      for (uint32_t id = 0; id < service_->options().num_scanouts; ++id)
        pending_.insert(id);
    }
    service_->store()->AddListener(this);
    WriteNext();
  }

  void OnChange(const Change& change) override {
    if (!change.mode_changed) return;
    {
      MutexLock lock(&mu_);
      pending_.insert(change.scanout_id);
    }
    WriteNext();
  }
  void OnWriteDone(bool ok) override {
    if (!writer_.OnWriteDone(ok)) return;  // finishing
    {
      MutexLock lock(&mu_);
      writing_ = false;
    }
    WriteNext();
  }
  void OnCancel() override { writer_.Finish(grpc::Status::CANCELLED); }
  void OnDone() override {
    service_->store()->RemoveListener(this);
    VGPU_LOG(INFO) << "viewer (" << peer_ << ") WatchScanouts: left";
    service_->StreamClosed("WatchScanouts");
    delete this;
  }

 private:
  // Writes the latest state of the next pending scanout unless one is being
  // written (one at a time, so the pending set is the only queue). The
  // state is read and the write claimed under one lock: a change that lands
  // after the read is pending again, and is written after this one.
  void WriteNext() {
    pb::Scanout scanout;
    {
      MutexLock lock(&mu_);
      if (pending_.empty() || writing_) return;
      uint32_t id = *pending_.begin();
      pending_.erase(pending_.begin());
      FillScanout(id, service_->store()->State(id), &scanout);
      writing_ = true;
    }
    writer_.Write(std::move(scanout));
  }

  DisplayService* const service_;
  const std::string peer_;
  StreamWriter<grpc::ServerWriteReactor<pb::Scanout>, pb::Scanout> writer_;
  Mutex mu_;
  std::set<uint32_t> pending_ VGPU_GUARDED_BY(mu_);
  bool writing_ VGPU_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<pb::FrameEvent>* NewFrameWatcher(
    DisplayService* service, std::string peer, ViewerSettings settings) {
  return new FrameWatcher(service, std::move(peer), settings);
}

grpc::ServerBidiReactor<pb::StreamFramesRequest, pb::StreamFramesResponse>*
NewFrameStreamer(DisplayService* service, std::string peer) {
  return new FrameStreamer(service, std::move(peer));
}

grpc::ServerWriteReactor<pb::Scanout>* NewScanoutWatcher(
    DisplayService* service, std::string peer) {
  return new ScanoutWatcher(service, std::move(peer));
}

}  // namespace vgpu::server
