#include "server/grpc/display_service.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "common/log.h"
#include "common/mutex.h"
#include "common/pixel_order.h"
#include "server/encode/encode_cache.h"
#include "server/encode/image_encoder.h"
#include "server/grpc/lossy_cells.h"

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
                                              uint32_t quality,
                                              pb::JpegSubsampling subsampling) {
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
    case pb::IMAGE_FORMAT_RAW_RGBX:
      options.kind = ImageKind::kRawRgbx;
      break;
    case pb::IMAGE_FORMAT_ZSTD_BGRX:
      options.kind = ImageKind::kZstdBgrx;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown image format ", format));
  }
  if (quality > 100)
    return absl::InvalidArgumentError("jpeg_quality must be 0..100");
  options.jpeg_quality = quality == 0 ? 90 : static_cast<int>(quality);
  switch (subsampling) {
    case pb::JPEG_SUBSAMPLING_UNSPECIFIED:
    case pb::JPEG_SUBSAMPLING_420:
      options.subsampling = ChromaSubsampling::k420;
      break;
    case pb::JPEG_SUBSAMPLING_422:
      options.subsampling = ChromaSubsampling::k422;
      break;
    case pb::JPEG_SUBSAMPLING_444:
      options.subsampling = ChromaSubsampling::k444;
      break;
    case pb::JPEG_SUBSAMPLING_GRAY:
      options.subsampling = ChromaSubsampling::kGray;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown jpeg_subsampling ", subsampling));
  }
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

// Whether two modes show the same thing to a viewer (disabled modes are all
// alike).
bool SameMode(const std::optional<gpu::ScanoutMode>& a,
              const std::optional<gpu::ScanoutMode>& b) {
  if (!a || !b) return !a && !b;
  if (!a->enabled || !b->enabled) return a->enabled == b->enabled;
  return a->width == b->width && a->height == b->height;
}

// How a viewer of a lossy stream re-sends regions once they settle.
struct LosslessRefresh {
  absl::Duration after = absl::ZeroDuration();  // zero: off
  EncodeOptions encode;
  pb::ImageFormat format = pb::IMAGE_FORMAT_UNSPECIFIED;
};

// Refresh settings for a stream encoded with `encode`: on for JPEG unless
// disabled, in `format` (which must be lossless).
absl::StatusOr<LosslessRefresh> ChooseRefresh(const EncodeOptions& encode,
                                              uint32_t after_ms, bool disabled,
                                              pb::ImageFormat format) {
  if (after_ms > 60000)
    return absl::InvalidArgumentError("lossless_refresh_ms must be <= 60000");
  LosslessRefresh refresh;
  if (IsLossless(encode.kind) || disabled) return refresh;
  format = Normalized(format);
  absl::StatusOr<EncodeOptions> lossless =
      ToEncodeOptions(format, 0, pb::JPEG_SUBSAMPLING_UNSPECIFIED);
  if (!lossless.ok()) return lossless.status();
  if (!IsLossless(lossless->kind))
    return absl::InvalidArgumentError("refresh_format must be lossless");
  refresh.after = absl::Milliseconds(after_ms == 0 ? 300 : after_ms);
  refresh.encode = *lossless;
  refresh.format = format;
  return refresh;
}

// Makes the messages of one update from its encoded pieces, one band at a
// time and each under the band budget, so the first band is on the wire
// while the next is filled (raw pixels are read out of the frame here).
// The last band has end_of_update set.
class BandMaker {
 public:
  BandMaker(const ScanoutState& state, std::vector<EncodedPiece> pieces,
            uint32_t flushes, pb::ImageFormat format, size_t budget,
            uint64_t update_id, bool refresh)
      : state_(state),
        pieces_(std::move(pieces)),
        flushes_(flushes),
        format_(format),
        budget_(budget),
        update_id_(update_id),
        refresh_(refresh) {}

  // The next band; false once every piece went out.
  bool Next(pb::FrameUpdate* update) {
    if (next_ == pieces_.size() && made_any_) return false;
    made_any_ = true;
    update->Clear();
    size_t bytes = 0;
    for (; next_ < pieces_.size(); ++next_) {
      const EncodedPiece& piece = pieces_[next_];
      size_t size = piece.solid ? 16
                    : piece.data
                        ? piece.data->size()
                        : size_t{piece.rect.width} * piece.rect.height * 4;
      if (bytes + size > budget_ && update->rects_size() > 0) break;
      AddRect(piece, size, update->add_rects());
      bytes += size;
    }
    update->set_frame_sequence(state_.frame->sequence());
    update->set_flushes(flushes_);
    // A refresh shows no new flush.
    if (!refresh_) update->set_flush_time_unix_ns(UnixNanos(state_.last_flush));
    update->set_update_id(update_id_);
    update->set_refresh(refresh_);
    update->set_end_of_update(next_ == pieces_.size());
    return true;
  }

 private:
  void AddRect(const EncodedPiece& piece, size_t size, pb::EncodedRect* out) {
    out->mutable_rect()->set_x(piece.rect.x);
    out->mutable_rect()->set_y(piece.rect.y);
    out->mutable_rect()->set_width(piece.rect.width);
    out->mutable_rect()->set_height(piece.rect.height);
    out->set_format(format_);
    if (piece.solid) {
      out->set_solid(true);
      out->set_solid_bgrx(piece.solid_bgrx);
    } else if (piece.data) {
      out->set_data(*piece.data);
    } else {
      std::string* data = out->mutable_data();
      data->resize(size);
      state_.frame->ReadPixels(piece.rect,
                               reinterpret_cast<uint8_t*>(data->data()),
                               size_t{piece.rect.width} * 4);
      if (format_ == pb::IMAGE_FORMAT_RAW_RGBX) {
        SwapRedAndBlue(reinterpret_cast<uint8_t*>(data->data()),
                       size_t{piece.rect.width} * piece.rect.height);
      }
    }
  }

  const ScanoutState state_;
  const std::vector<EncodedPiece> pieces_;
  const uint32_t flushes_;
  const pb::ImageFormat format_;
  const size_t budget_;
  const uint64_t update_id_;
  const bool refresh_;
  size_t next_ = 0;
  bool made_any_ = false;
};

// The machinery every viewer stream shares: pending damage per viewer
// (latest wins), encoding on the worker pool, one write in flight, and a
// lifetime that ends after OnDone once no worker task refers to it.
// `Reactor` is the gRPC reactor, `Message` what it writes (FrameEvent or
// StreamFramesResponse: both have mode_changed and update).
template <typename Reactor, typename Message>
class Viewer : public Reactor, public FrameListener {
 public:
  explicit Viewer(DisplayService* service)
      : service_(service), viewer_id_(service->NextViewerId()) {}

  void OnChange(const Change& change) override {
    if (change.scanout_id != scanout_id_) return;
    MutexLock lock(&mu_);
    if (change.cursor_moved) {
      if (!include_cursor_) return;
      pending_cursor_ = true;
      pending_cursor_shape_ |= change.cursor_shape_changed;
    } else if (change.mode_changed) {
      pending_mode_ = true;
    } else {
      damage_.push_back(change.damage);
      ++flushes_;
      if (damage_.size() > 16) {  // many small rects: send their bounding box
        gpu::PixelRect box = damage_[0];
        for (const gpu::PixelRect& r : damage_) box = gpu::BoundingBox(box, r);
        damage_ = {box};
      }
    }
    MaybeScheduleLocked();
  }

  // Reactor calls (StartWrite, Finish) are made without mu_ held: gRPC may
  // run the next reaction inline.
  void OnWriteDone(bool ok) override {
    mu_.Lock();
    writing_ = false;
    if (finished_) {  // a Finish waited for this write
      std::optional<grpc::Status> status = std::exchange(deferred_finish_, {});
      mu_.Unlock();
      if (status) this->Finish(*status);
      return;
    }
    if (!ok) {
      grpc::Status failed(grpc::StatusCode::UNAVAILABLE, "write failed");
      bool finish = BeginFinishLocked(failed);  // true: no write in flight
      mu_.Unlock();
      if (finish) this->Finish(failed);
      return;
    }
    if (TakeNextLocked()) {
      mu_.Unlock();
      this->StartWrite(&current_);
      return;
    }
    MaybeScheduleLocked();
    mu_.Unlock();
  }

  void OnCancel() override { FinishWith(grpc::Status::CANCELLED); }

  void OnDone() override {
    if (listening_) service_->store()->RemoveListener(this);
    service_->RemoveViewer();
    service_->metrics().RemoveViewer(viewer_id_);
    mu_.Lock();
    done_ = true;
    bool last = tasks_ == 0;
    mu_.Unlock();
    if (last) delete this;
  }

 protected:
  // What to watch and how to encode it; before Begin.
  void Configure(uint32_t scanout_id, EncodeOptions encode,
                 pb::ImageFormat format, uint32_t max_fps,
                 LosslessRefresh refresh) {
    scanout_id_ = scanout_id;
    encode_ = encode;
    format_ = format;
    max_fps_ = max_fps;
    refresh_ = refresh;
  }

  // Starts updates: the mode, then the whole screen.
  void Begin(bool include_cursor, uint32_t max_in_flight) {
    {
      MutexLock lock(&mu_);
      include_cursor_ = include_cursor;
      pending_cursor_ = pending_cursor_shape_ = include_cursor;
      max_in_flight_ = max_in_flight;
      pending_mode_ = true;
    }
    listening_ = true;
    service_->store()->AddListener(this);
    MutexLock lock(&mu_);
    MaybeScheduleLocked();
  }

  // Queues `message` and starts writing it if no write is in flight.
  void Push(Message message) {
    mu_.Lock();
    if (finished_) {
      mu_.Unlock();
      return;
    }
    outbox_.push_back(std::move(message));
    bool start = !writing_ && TakeNextLocked();
    mu_.Unlock();
    if (start) this->StartWrite(&current_);
  }

  void Acknowledge(uint64_t update_id) {
    MutexLock lock(&mu_);
    acked_ = std::max(acked_, std::min(update_id, sent_));
    MaybeScheduleLocked();
  }

  void Refresh() {
    MutexLock lock(&mu_);
    damage_ = {gpu::PixelRect{0, 0, ~0u >> 1, ~0u >> 1}};
    MaybeScheduleLocked();
  }

  void FinishWith(const grpc::Status& status) {
    mu_.Lock();
    bool finish = BeginFinishLocked(status);
    mu_.Unlock();
    if (finish) this->Finish(status);
  }

  DisplayService* service() const { return service_; }

 private:
  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    bool may_update = max_in_flight_ == 0 || sent_ - acked_ < max_in_flight_;
    return pending_cursor_ ||
           (may_update && (pending_mode_ || !damage_.empty() || refresh_due_));
  }

  // Wakes this viewer when its oldest lossy cell will have settled.
  void ArmRefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (refresh_armed_ || finished_ || lossy_.empty()) return;
    refresh_armed_ = true;
    ++tasks_;
    service_->pool()->PostAt(lossy_.Oldest() + refresh_.after, [this] {
      mu_.Lock();
      refresh_armed_ = false;
      refresh_due_ = true;
      EndTaskAndUnlock();
    });
  }

  // The last act of a worker task, with mu_ held: schedules what is pending
  // and releases mu_, or deletes the viewer when it is done with and this
  // was its last task.
  void EndTaskAndUnlock() ABSL_UNLOCK_FUNCTION(mu_) {
    --tasks_;
    if (done_) {
      bool last = tasks_ == 0;
      mu_.Unlock();
      if (last) delete this;
      return;
    }
    MaybeScheduleLocked();
    mu_.Unlock();
  }

  void MaybeScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (scheduled_ || writing_ || finished_ || !HasWorkLocked()) return;
    scheduled_ = true;
    ++tasks_;
    service_->pool()->PostAt(next_send_, [this] { Prepare(); });
  }

  // On a worker: turns what is pending into messages and starts writing.
  void Prepare() {
    mu_.Lock();
    // The mode and its frame, as one consistent pair: every update below
    // is cut from this frame and follows the mode it belongs to. Read with
    // mu_ held, so a change that lands after it also sets pending work for
    // the next round (the store never calls a listener with its lock held).
    ScanoutState state = service_->store()->State(scanout_id_);
    if (finished_) {  // nothing to send; the service may already be gone
      scheduled_ = false;
      EndTaskAndUnlock();
      return;
    }
    bool may_update = max_in_flight_ == 0 || sent_ - acked_ < max_in_flight_;
    // The store's mode, not the notifications, decides: a change and its
    // undoing between two rounds need no announcement.
    bool send_mode = may_update && (std::exchange(pending_mode_, false) ||
                                    !SameMode(state.mode, announced_));
    if (send_mode) {
      announced_ = state.mode;
      need_full_ = true;
    }
    std::vector<gpu::PixelRect> damage;
    if (may_update) damage.swap(damage_);
    // (EncodeCache clips damage to the frame it encodes.)
    if (may_update && state.frame && std::exchange(need_full_, false)) {
      damage = {
          gpu::PixelRect{0, 0, state.frame->width(), state.frame->height()}};
    } else if (may_update && !state.frame) {
      damage.clear();  // no frame of this mode yet: the first one goes whole
    }
    uint32_t flushes = may_update ? std::exchange(flushes_, 0) : 0;
    bool send_cursor = std::exchange(pending_cursor_, false);
    bool send_shape = std::exchange(pending_cursor_shape_, false);
    // A refresh goes out on its own, in a round with no new damage (one
    // update per round; the next round comes as long as it stays due).
    std::vector<gpu::PixelRect> settled;
    if (may_update && refresh_due_ && !send_mode && damage.empty()) {
      refresh_due_ = false;
      settled = lossy_.TakeSettled(absl::Now() - refresh_.after, damage_);
      ArmRefreshLocked();  // for cells that have not settled yet
    }
    mu_.Unlock();
    const bool refresh = !settled.empty();
    if (refresh) damage = std::move(settled);

    std::deque<Message> events;
    if (send_mode) {
      FillScanout(scanout_id_, state,
                  events.emplace_back().mutable_mode_changed());
    }
    // Pieces are whole-tile runs shared with every other viewer (raw size
    // under the band budget, so every encoding fits a band).
    const size_t budget = service_->options().band_bytes;
    std::vector<EncodedPiece> pieces;
    const bool has_update = state.frame && !damage.empty();
    absl::Time encode_start = absl::Now();
    if (has_update) {
      absl::StatusOr<std::vector<EncodedPiece>> encoded =
          service_->cache().Encode(*state.frame, damage,
                                   refresh ? refresh_.encode : encode_, budget);
      if (encoded.ok()) {
        pieces = *std::move(encoded);
      } else {
        VGPU_LOG(WARNING) << "encoding failed: " << encoded.status().message();
      }
    }
    std::deque<Message> cursor_events;
    if constexpr (std::is_same_v<Message, pb::StreamFramesResponse>) {
      if (send_cursor) AddCursorEvents(send_shape, &cursor_events);
    }

    uint64_t update_id = 0;
    {
      MutexLock lock(&mu_);
      if (send_mode) {
        lossy_.Reset(state.frame ? state.frame->width() : 0,
                     state.frame ? state.frame->height() : 0);
      }
      if (has_update && !finished_) {
        update_id = ++sent_;
        if (max_fps_ > 0)
          next_send_ = absl::Now() + absl::Seconds(1.0 / max_fps_);
        // Solid pieces are exact whatever the format.
        if (refresh_.after > absl::ZeroDuration() && !refresh) {
          absl::Time now = absl::Now();
          for (const EncodedPiece& piece : pieces) {
            if (!piece.solid) lossy_.Mark(piece.rect, now);
          }
          ArmRefreshLocked();
        }
      }
    }
    for (Message& event : events) Push(std::move(event));
    if (update_id != 0) {
      BandMaker bands(state, std::move(pieces), refresh ? 0 : flushes,
                      refresh ? refresh_.format : format_, budget, update_id,
                      refresh);
      size_t bytes = 0;
      Message band;
      while (bands.Next(band.mutable_update())) {
        bytes += band.ByteSizeLong();
        Push(std::exchange(band, Message()));
      }
      service_->metrics().encode_seconds().Observe(
          absl::ToDoubleSeconds(absl::Now() - encode_start));
      service_->metrics().CountUpdate(refresh ? refresh_.format : format_,
                                      bytes);
      service_->metrics().CountViewerUpdate(viewer_id_, scanout_id_);
    }
    for (Message& event : cursor_events) Push(std::move(event));

    mu_.Lock();
    scheduled_ = false;
    EndTaskAndUnlock();
  }

  void AddCursorEvents(bool shape, std::deque<Message>* events) {
    std::optional<gpu::CursorUpdate> cursor = service_->store()->Cursor();
    if (!cursor) return;
    if (shape && cursor->image) {
      pb::CursorShape* out = events->emplace_back().mutable_cursor_shape();
      out->set_width(gpu::kCursorSize);
      out->set_height(gpu::kCursorSize);
      out->set_hot_x(cursor->image->hot_x);
      out->set_hot_y(cursor->image->hot_y);
      out->set_bgra(cursor->image->pixels.data(), cursor->image->pixels.size());
    }
    pb::CursorPosition* position =
        events->emplace_back().mutable_cursor_position();
    position->set_x(cursor->x);
    position->set_y(cursor->y);
    position->set_visible(cursor->visible);
  }

  // Moves the next queued message into current_ (the one write in flight).
  bool TakeNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (outbox_.empty()) return false;
    current_ = std::move(outbox_.front());
    outbox_.pop_front();
    if (current_.has_update()) {
      pb::FrameUpdate* update = current_.mutable_update();
      int64_t now = UnixNanos(absl::Now());
      update->set_send_time_unix_ns(now);
      if (update->end_of_update() && update->flush_time_unix_ns() > 0) {
        service_->metrics().flush_to_send_seconds().Observe(
            (now - update->flush_time_unix_ns()) / 1e9);
      }
    }
    writing_ = true;
    return true;
  }

  // Marks the stream finished (once). True when the caller must call
  // Finish(status) now, outside the lock; false when a write is in flight
  // (or about to start): then OnWriteDone finishes, as gRPC allows no
  // Finish with a write outstanding.
  bool BeginFinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return false;
    finished_ = true;
    outbox_.clear();
    if (writing_) {
      deferred_finish_ = status;
      return false;
    }
    return true;
  }

  DisplayService* service_;
  const uint64_t viewer_id_;
  // Set by Configure before Begin; read-only afterwards.
  uint32_t scanout_id_ = 0;
  EncodeOptions encode_;
  pb::ImageFormat format_ = pb::IMAGE_FORMAT_PNG;
  uint32_t max_fps_ = 0;
  LosslessRefresh refresh_;
  bool listening_ = false;
  Mutex mu_;
  bool include_cursor_ VGPU_GUARDED_BY(mu_) = false;
  uint32_t max_in_flight_ VGPU_GUARDED_BY(mu_) = 0;  // 0: paced by writes only
  uint64_t sent_ VGPU_GUARDED_BY(mu_) = 0;           // last update_id sent
  uint64_t acked_ VGPU_GUARDED_BY(mu_) = 0;
  bool pending_mode_ VGPU_GUARDED_BY(mu_) = false;
  // The mode this viewer was last told; the next update after a mode change
  // is the whole frame.
  std::optional<gpu::ScanoutMode> announced_ VGPU_GUARDED_BY(mu_);
  bool need_full_ VGPU_GUARDED_BY(mu_) = false;
  bool pending_cursor_ VGPU_GUARDED_BY(mu_) = false;
  bool pending_cursor_shape_ VGPU_GUARDED_BY(mu_) = false;
  std::vector<gpu::PixelRect> damage_ VGPU_GUARDED_BY(mu_);
  uint32_t flushes_ VGPU_GUARDED_BY(mu_) = 0;
  LossyCells lossy_ VGPU_GUARDED_BY(mu_);
  bool refresh_armed_ VGPU_GUARDED_BY(mu_) = false;  // a wake-up is queued
  bool refresh_due_ VGPU_GUARDED_BY(mu_) = false;
  bool scheduled_ VGPU_GUARDED_BY(mu_) = false;
  bool writing_ VGPU_GUARDED_BY(mu_) = false;
  bool finished_ VGPU_GUARDED_BY(mu_) = false;
  bool done_ VGPU_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> deferred_finish_ VGPU_GUARDED_BY(mu_);
  int tasks_ VGPU_GUARDED_BY(mu_) = 0;
  absl::Time next_send_ VGPU_GUARDED_BY(mu_) = absl::InfinitePast();
  std::deque<Message> outbox_ VGPU_GUARDED_BY(mu_);
  Message current_;
};

// WatchFrames: updates paced only by the client's reads.
class FrameWatcher final
    : public Viewer<grpc::ServerWriteReactor<pb::FrameEvent>, pb::FrameEvent> {
 public:
  FrameWatcher(DisplayService* service, const pb::WatchFramesRequest& request,
               EncodeOptions encode, LosslessRefresh refresh)
      : Viewer(service) {
    Configure(request.scanout_id(), encode, Normalized(request.format()),
              request.max_fps(), refresh);
    Begin(/*include_cursor=*/false, /*max_in_flight=*/0);
  }
};

// The first of the viewer's formats the server supports (ToEncodeOptions
// is what knows them) for which `accept` holds; UNSPECIFIED entries are
// skipped.
std::optional<pb::ImageFormat> FirstSupported(
    const pb::Subscribe& subscribe,
    const std::function<bool(const EncodeOptions&)>& accept) {
  for (int listed : subscribe.formats()) {
    auto format = static_cast<pb::ImageFormat>(listed);
    if (format == pb::IMAGE_FORMAT_UNSPECIFIED) continue;
    absl::StatusOr<EncodeOptions> options =
        ToEncodeOptions(format, 0, pb::JPEG_SUBSAMPLING_UNSPECIFIED);
    if (options.ok() && accept(*options)) return format;
  }
  return std::nullopt;
}

absl::StatusOr<pb::ImageFormat> ChooseFormat(const pb::Subscribe& subscribe) {
  if (subscribe.formats().empty()) return pb::IMAGE_FORMAT_PNG;
  std::optional<pb::ImageFormat> format =
      FirstSupported(subscribe, [](const EncodeOptions&) { return true; });
  if (!format) {
    return absl::InvalidArgumentError(
        "none of the requested formats is supported");
  }
  return *format;
}

// StreamFrames: the first message must be Subscribe; then updates flow
// while the client holds credits, and Acks and RefreshRequests come in.
class FrameStreamer final
    : public Viewer<grpc::ServerBidiReactor<pb::StreamFramesRequest,
                                            pb::StreamFramesResponse>,
                    pb::StreamFramesResponse> {
 public:
  explicit FrameStreamer(DisplayService* service) : Viewer(service) {
    this->StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side: no more acks can come
      FinishWith(grpc::Status::OK);
      return;
    }
    if (!subscribed_) {
      if (absl::Status status = Subscribe(); !status.ok()) {
        FinishWith(ToGrpc(status));
        return;
      }
    } else if (incoming_.has_ack()) {
      Acknowledge(incoming_.ack().update_id());
    } else if (incoming_.has_refresh()) {
      Refresh();
    } else {
      FinishWith(grpc::Status(
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
    if (subscribe.scanout_id() >= service()->options().num_scanouts) {
      return absl::NotFoundError(
          absl::StrCat("no scanout ", subscribe.scanout_id()));
    }
    absl::StatusOr<pb::ImageFormat> format = ChooseFormat(subscribe);
    if (!format.ok()) return format.status();
    absl::StatusOr<EncodeOptions> encode = ToEncodeOptions(
        *format, subscribe.jpeg_quality(), subscribe.jpeg_subsampling());
    if (!encode.ok()) return encode.status();
    // Refreshes use the first lossless format the client listed, else PNG.
    std::optional<pb::ImageFormat> refresh_format = FirstSupported(
        subscribe,
        [](const EncodeOptions& options) { return IsLossless(options.kind); });
    absl::StatusOr<LosslessRefresh> refresh =
        ChooseRefresh(*encode, subscribe.lossless_refresh_ms(),
                      subscribe.disable_lossless_refresh(),
                      refresh_format.value_or(pb::IMAGE_FORMAT_PNG));
    if (!refresh.ok()) return refresh.status();
    subscribed_ = true;
    uint32_t credits =
        subscribe.max_in_flight() == 0 ? 2 : subscribe.max_in_flight();
    Configure(subscribe.scanout_id(), *encode, *format, subscribe.max_fps(),
              *refresh);
    pb::StreamFramesResponse started;
    started.mutable_started()->set_format(*format);
    started.mutable_started()->set_refresh_format(refresh->format);
    started.mutable_started()->set_max_in_flight(credits);
    FillScanout(subscribe.scanout_id(),
                service()->store()->State(subscribe.scanout_id()),
                started.mutable_started()->mutable_scanout());
    Push(std::move(started));  // before anything Prepare makes
    Begin(subscribe.include_cursor(), credits);
    return absl::OkStatus();
  }

  pb::StreamFramesRequest incoming_;
  bool subscribed_ =
      false;  // only touched by read reactions, which never overlap
};

// Every scanout now, then each mode change.
class ScanoutWatcher final : public grpc::ServerWriteReactor<pb::Scanout>,
                             public FrameListener {
 public:
  explicit ScanoutWatcher(DisplayService* service) : service_(service) {
    for (uint32_t id = 0; id < service_->options().num_scanouts; ++id)
      pending_.push_back(id);
    service_->store()->AddListener(this);
    WriteNext();
  }
  void OnChange(const Change& change) override {
    if (!change.mode_changed) return;
    {
      MutexLock lock(&mu_);
      pending_.push_back(change.scanout_id);
    }
    WriteNext();
  }
  void OnWriteDone(bool ok) override {
    {
      MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) finished_ = true;
    }
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
    WriteNext();
  }
  void OnCancel() override {
    bool finish;
    {
      MutexLock lock(&mu_);
      finish = !finished_;
      finished_ = true;
    }
    if (finish) Finish(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    service_->store()->RemoveListener(this);
    delete this;
  }

 private:
  void WriteNext() {
    {
      MutexLock lock(&mu_);
      if (writing_ || finished_ || pending_.empty()) return;
      uint32_t id = pending_.front();
      pending_.pop_front();
      current_.Clear();
      FillScanout(id, service_->store()->State(id), &current_);
      writing_ = true;
    }
    StartWrite(&current_);
  }

  DisplayService* service_;
  Mutex mu_;
  std::deque<uint32_t> pending_ VGPU_GUARDED_BY(mu_);
  bool writing_ VGPU_GUARDED_BY(mu_) = false;
  bool finished_ VGPU_GUARDED_BY(mu_) = false;
  pb::Scanout current_;
};

// GetScreenshot: waits (if asked) without a thread, then encodes on a
// worker. Complete is called exactly once (by the wait or the "now" task);
// a cancelled call ends its wait, which completes it with CANCELLED. The
// call may complete before the handler has returned: it is deleted once
// both OnDone and Started have run.
class ScreenshotCall final : public grpc::ServerUnaryReactor {
 public:
  ScreenshotCall(const pb::GetScreenshotRequest* request,
                 pb::Screenshot* response, EncodeOptions encode)
      : request_(request), response_(response), encode_(encode) {}

  uint32_t scanout_id() const { return request_->scanout_id(); }
  absl::Duration timeout() const {
    return absl::Milliseconds(
        request_->timeout_ms() == 0 ? 10000 : request_->timeout_ms());
  }

  // The handler is done with the call; `wait` (nullable) is what a cancel
  // must end.
  void Started(ScreenshotWaits* waits,
               std::shared_ptr<ScreenshotWaits::Wait> wait) {
    bool cancelled, done;
    {
      MutexLock lock(&mu_);
      waits_ = waits;
      wait_ = wait;
      cancelled = cancelled_;
      started_ = true;
      done = done_;
    }
    if (cancelled && wait) waits->Cancel(wait);
    if (done) delete this;
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
    if (wait) waits->Cancel(wait);
  }

  void OnDone() override {
    bool started;
    {
      MutexLock lock(&mu_);
      done_ = true;
      started = started_;
    }
    if (started) delete this;
  }

  // On a worker: the state to take the picture from, or why there is none.
  void Complete(absl::StatusOr<ScanoutState> state) {
    if (!state.ok()) {
      if (state.status().code() == absl::StatusCode::kDeadlineExceeded) {
        Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            absl::StrCat("scanout ", scanout_id(),
                                         ": wait condition not met within ",
                                         absl::FormatDuration(timeout()))));
      } else {
        Finish(ToGrpc(state.status()));
      }
      return;
    }
    Finish(Take(*state));
  }

 private:
  grpc::Status Take(const ScanoutState& state) {
    if (!state.frame) {
      bool enabled = state.mode && state.mode->enabled;
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          enabled ? absl::StrCat("scanout ", scanout_id(), ": no frame of its ",
                                 state.mode->width, "x", state.mode->height,
                                 " mode yet")
                  : absl::StrCat("scanout ", scanout_id(), " shows nothing"));
    }
    gpu::PixelRect region{0, 0, state.frame->width(), state.frame->height()};
    if (request_->has_region() && request_->region().width() > 0 &&
        request_->region().height() > 0) {
      region = gpu::Intersect(
          region, {request_->region().x(), request_->region().y(),
                   request_->region().width(), request_->region().height()});
      if (region.empty()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "region is outside the scanout");
      }
    }
    absl::StatusOr<std::string> data =
        EncodeImage(*state.frame, region, encode_);
    if (!data.ok()) return ToGrpc(data.status());
    response_->set_scanout_id(scanout_id());
    response_->set_width(region.width);
    response_->set_height(region.height);
    response_->set_format(Normalized(request_->format()));
    response_->set_data(*std::move(data));
    response_->set_frame_sequence(state.frame->sequence());
    response_->set_capture_time_unix_ns(UnixNanos(absl::Now()));
    return grpc::Status::OK;
  }

  const pb::GetScreenshotRequest* const request_;
  pb::Screenshot* const response_;
  const EncodeOptions encode_;
  Mutex mu_;
  bool cancelled_ VGPU_GUARDED_BY(mu_) = false;
  ScreenshotWaits* waits_ VGPU_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<ScreenshotWaits::Wait> wait_ VGPU_GUARDED_BY(mu_);
  bool started_ VGPU_GUARDED_BY(mu_) = false;
  bool done_ VGPU_GUARDED_BY(mu_) = false;
};

grpc::ServerUnaryReactor* FinishedReactor(grpc::CallbackServerContext* context,
                                          grpc::Status status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

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
  if (request->scanout_id() >= options_.num_scanouts) {
    return FinishedReactor(
        context,
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no scanout ", request->scanout_id())));
  }
  absl::StatusOr<EncodeOptions> encode = ToEncodeOptions(
      request->format(), request->jpeg_quality(), request->jpeg_subsampling());
  if (!encode.ok()) return FinishedReactor(context, ToGrpc(encode.status()));
  auto* call = new ScreenshotCall(request, response, *encode);
  if (request->wait_case() == pb::GetScreenshotRequest::WAIT_NOT_SET) {
    pool_->Post(
        [this, call] { call->Complete(store_->State(call->scanout_id())); });
    call->Started(nullptr, nullptr);
    return call;
  }
  WaitCondition condition;
  switch (request->wait_case()) {
    case pb::GetScreenshotRequest::kNextFlush:
      // The sequence a "next flush" waits past is the one current on
      // arrival.
      condition.sequence = store_->State(request->scanout_id()).sequence;
      break;
    case pb::GetScreenshotRequest::kAfterSequence:
      condition.sequence = request->after_sequence();
      break;
    default:
      condition.kind = WaitKind::kStable;
      condition.quiet = absl::Milliseconds(request->stable_for_ms());
      break;
  }
  absl::StatusOr<std::shared_ptr<ScreenshotWaits::Wait>> wait = waits_.Start(
      request->scanout_id(), condition, absl::Now() + call->timeout(),
      [call](absl::StatusOr<ScanoutState> state) {
        call->Complete(std::move(state));
      });
  if (!wait.ok()) {
    call->Complete(wait.status());
    call->Started(nullptr, nullptr);
    return call;
  }
  call->Started(&waits_, *std::move(wait));
  return call;
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
  absl::StatusOr<EncodeOptions> encode = ToEncodeOptions(
      request->format(), request->jpeg_quality(), request->jpeg_subsampling());
  if (!encode.ok()) return reject(ToGrpc(encode.status()));
  absl::StatusOr<LosslessRefresh> refresh = ChooseRefresh(
      *encode, request->lossless_refresh_ms(),
      request->disable_lossless_refresh(), request->refresh_format());
  if (!refresh.ok()) return reject(ToGrpc(refresh.status()));
  if (!AddViewer()) {
    return reject(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("viewer limit of ", options_.max_viewers, " reached")));
  }
  return new FrameWatcher(this, *request, *encode, *refresh);
}

grpc::ServerBidiReactor<pb::StreamFramesRequest, pb::StreamFramesResponse>*
DisplayService::StreamFrames(grpc::CallbackServerContext* /*context*/) {
  if (!AddViewer()) {
    class Rejected : public grpc::ServerBidiReactor<pb::StreamFramesRequest,
                                                    pb::StreamFramesResponse> {
     public:
      explicit Rejected(grpc::Status status) { Finish(std::move(status)); }
      void OnDone() override { delete this; }
    };
    return new Rejected(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("viewer limit of ", options_.max_viewers, " reached")));
  }
  return new FrameStreamer(this);
}

grpc::ServerWriteReactor<pb::Scanout>* DisplayService::WatchScanouts(
    grpc::CallbackServerContext* /*context*/,
    const pb::WatchScanoutsRequest* /*request*/) {
  return new ScanoutWatcher(this);
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
          [reactor, response](absl::Status status, bool guest_notified) {
            response->set_guest_notified(guest_notified);
            reactor->Finish(ToGrpc(status));
          });
  return reactor;
}

}  // namespace vgpu::server
