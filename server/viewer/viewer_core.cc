#include "server/viewer/viewer_core.h"

#include <algorithm>
#include <utility>

#include "common/log.h"
#include "common/pixel_order.h"
#include "server/encode/scroll.h"

namespace vgpu::server {
namespace {

namespace pb = vgpu::display::v1;

// A round whose pixels could not be encoded is tried again this much later
// (an encoder that fails keeps failing for a while: out of memory).
constexpr absl::Duration kRetryAfterFailure = absl::Milliseconds(100);

// How many rows of the screen `rects` touch.
uint32_t RowsTouched(std::vector<gpu::PixelRect> rects) {
  std::sort(rects.begin(), rects.end(),
            [](const gpu::PixelRect& a, const gpu::PixelRect& b) {
              return a.y < b.y;
            });
  uint32_t rows = 0, end = 0;
  for (const gpu::PixelRect& r : rects) {
    const uint32_t bottom = r.y + r.height;
    if (bottom <= end) continue;
    rows += bottom - std::max(r.y, end);
    end = bottom;
  }
  return rows;
}

// Makes the messages of one update from its encoded pieces, one band at a
// time and each under the band budget, so the first band is on the wire
// while the next is filled (raw pixels are read out of the frame here).
// The last band has end_of_update set.
class BandMaker {
 public:
  BandMaker(const ScanoutState& state, std::vector<VerticalCopy> copies,
            std::vector<EncodedPiece> pieces, uint32_t flushes,
            pb::ImageFormat format, size_t budget, uint64_t update_id,
            bool refresh)
      : state_(state),
        copies_(std::move(copies)),
        pieces_(std::move(pieces)),
        flushes_(flushes),
        format_(format),
        budget_(budget),
        update_id_(update_id),
        refresh_(refresh) {}

  // The next band; false once every piece went out.
  bool Next(pb::FrameUpdate* update) {
    if (next_ == pieces_.size() && made_any_) return false;
    update->Clear();
    if (!made_any_) {  // copies come first, before any pixels
      for (const VerticalCopy& copy : copies_) {
        pb::CopyRect* out = update->add_copies();
        out->mutable_rect()->set_x(copy.rect.x);
        out->mutable_rect()->set_y(copy.rect.y);
        out->mutable_rect()->set_width(copy.rect.width);
        out->mutable_rect()->set_height(copy.rect.height);
        out->set_src_x(copy.rect.x);
        out->set_src_y(copy.src_y);
      }
    }
    made_any_ = true;
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
    if (state_.content_sequence != state_.frame->sequence())
      update->set_content_sequence(state_.content_sequence);
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
    // Each rect says what it is (adaptive viewers get several kinds).
    out->set_format(piece.solid ? format_ : FormatOf(piece.kind));
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
  const std::vector<VerticalCopy> copies_;
  const std::vector<EncodedPiece> pieces_;
  const uint32_t flushes_;
  const pb::ImageFormat format_;
  const size_t budget_;
  const uint64_t update_id_;
  const bool refresh_;
  size_t next_ = 0;
  bool made_any_ = false;
};

}  // namespace

std::shared_ptr<ViewerCore> ViewerCore::Create(ViewerContext context,
                                               ViewerSettings settings,
                                               ViewerOutput* output) {
  return std::shared_ptr<ViewerCore>(new ViewerCore(context, settings, output));
}

ViewerCore::ViewerCore(ViewerContext context, ViewerSettings settings,
                       ViewerOutput* output)
    : context_(context), settings_(settings), output_(output) {}

ViewerCore::~ViewerCore() {
  bool listening;
  {
    MutexLock lock(&mu_);
    listening = started_ && !stopped_;
  }
  if (listening) context_.store->RemoveListener(this);
}

void ViewerCore::Start() {
  {
    MutexLock lock(&mu_);
    started_ = true;
    pending_mode_ = true;
    pending_cursor_ = pending_cursor_shape_ = settings_.include_cursor;
  }
  context_.store->AddListener(this);
  MutexLock lock(&mu_);
  MaybeScheduleLocked();
}

void ViewerCore::Stop(std::function<void()> stopped) {
  bool listening;
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    listening = started_;
  }
  // Outside mu_: the store calls OnChange with its listener lock held.
  if (listening) context_.store->RemoveListener(this);
  {
    MutexLock lock(&mu_);
    if (running_ > 0) {  // the last task to end calls it
      on_stopped_ = std::move(stopped);
      return;
    }
  }
  if (stopped) stopped();
}

void ViewerCore::OnChange(const Change& change) {
  if (change.scanout_id != settings_.scanout_id) return;
  MutexLock lock(&mu_);
  if (stopped_) return;
  if (change.sequence != 0) {
    told_sequence_ = change.sequence;
    awaiting_told_ = false;
  }
  if (change.cursor_moved) {
    if (!settings_.include_cursor) return;
    pending_cursor_ = true;
    pending_cursor_shape_ |= change.cursor_shape_changed;
  } else if (change.mode_changed) {
    pending_mode_ = true;
  } else {
    // A flush that changed no pixel adds nothing to send; it is counted in
    // the next update's `flushes`.
    for (const gpu::PixelRect& rect : change.damage) damage_.Add(rect);
    ++flushes_;
  }
  MaybeScheduleLocked();
}

void ViewerCore::OnDrained() {
  MutexLock lock(&mu_);
  MaybeScheduleLocked();
}

void ViewerCore::Acknowledge(uint64_t update_id) {
  MutexLock lock(&mu_);
  acked_ = std::max(acked_, std::min(update_id, sent_));
  MaybeScheduleLocked();
}

void ViewerCore::Refresh() {
  MutexLock lock(&mu_);
  damage_.AddAll();
  need_full_ = true;  // with a frame: all of it, whatever was told
  shown_ = nullptr;   // the whole screen as pixels, not copies of itself
  MaybeScheduleLocked();
}

uint64_t ViewerCore::updates_sent() const {
  MutexLock lock(&mu_);
  return sent_;
}

bool ViewerCore::HasWorkLocked() const {
  bool may_update =
      settings_.max_in_flight == 0 || sent_ - acked_ < settings_.max_in_flight;
  return pending_cursor_ || (may_update && pending_mode_) ||
         (may_update && !awaiting_told_ && (!damage_.empty() || refresh_due_));
}

void ViewerCore::MaybeScheduleLocked() {
  // The output's lock is taken inside ours, never the other way round.
  if (!started_ || stopped_ || scheduled_ || !HasWorkLocked() ||
      !output_->Idle()) {
    return;
  }
  scheduled_ = true;
  context_.executor->PostAt(next_send_, [self = shared_from_this()] {
    self->RunTask([&self] { self->Prepare(); });
  });
}

// Wakes this viewer when its oldest lossy cell will have settled.
void ViewerCore::ArmRefreshLocked() {
  if (refresh_armed_ || stopped_ || lossy_.empty()) return;
  refresh_armed_ = true;
  context_.executor->PostAt(
      lossy_.Oldest() + settings_.refresh.after, [self = shared_from_this()] {
        self->RunTask([&self]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          MutexLock lock(&self->mu_);
          self->refresh_armed_ = false;
          self->refresh_due_ = true;
        });
      });
}

void ViewerCore::RunTask(const std::function<void()>& round) {
  {
    MutexLock lock(&mu_);
    if (stopped_) return;  // touches nothing outside the core
    ++running_;
  }
  round();
  std::function<void()> stopped;
  {
    MutexLock lock(&mu_);
    --running_;
    if (!stopped_) {
      MaybeScheduleLocked();
    } else if (running_ == 0) {
      stopped = std::exchange(on_stopped_, nullptr);
    }
  }
  if (stopped) stopped();
}

void ViewerCore::Prepare() {
  mu_.Lock();
  const absl::Time now = context_.clock->Now();
  // The mode and its frame, as one consistent pair: every update below is
  // cut from this frame and follows the mode it belongs to. Read with mu_
  // held, so a change that lands after it also sets pending work for the
  // next round (the store never calls a listener with its lock held).
  const ScanoutState state = context_.store->State(settings_.scanout_id);
  const bool may_update =
      settings_.max_in_flight == 0 || sent_ - acked_ < settings_.max_in_flight;
  // The store's mode, not the notifications, decides: a change and its
  // undoing between two rounds need no announcement.
  const bool send_mode = may_update && (std::exchange(pending_mode_, false) ||
                                        !SameMode(state.mode, announced_));
  if (send_mode) {
    announced_ = state.mode;
    need_full_ = true;
    shown_ = nullptr;
    lossy_.Reset(state.frame ? state.frame->width() : 0,
                 state.frame ? state.frame->height() : 0);
  }
  std::vector<gpu::PixelRect> damage;
  // The store holds a frame before it tells its listeners, so the frame
  // read may be newer than the last change told, its damage still on its
  // way: an update cut from it now would be no single frame (and copies
  // from it wrong). Unless the whole screen goes anyway, this round sends
  // no update; the notification, microseconds away, brings the next round.
  bool told = state.sequence == told_sequence_;
  if (may_update && state.frame) {
    if (std::exchange(need_full_, false)) {
      damage_.AddAll();
      shown_ = nullptr;  // whatever a Refresh() raced with
      // All of this frame goes: as good as told (a viewer that started
      // after the frame came is never told of it).
      told_sequence_ = state.sequence;
      told = true;
    } else if (!told) {
      awaiting_told_ = true;
    }
    if (told)
      damage = damage_.Take(state.frame->width(), state.frame->height());
  } else if (may_update) {
    damage_.Clear();  // no frame of this mode yet: the first one goes whole
  }
  const bool update_now = may_update && !awaiting_told_;
  const uint32_t flushes = update_now ? std::exchange(flushes_, 0) : 0;
  const bool send_cursor = std::exchange(pending_cursor_, false);
  const bool send_shape = std::exchange(pending_cursor_shape_, false);
  // A refresh goes out on its own, in a round with no new damage (one
  // update per round; the next round comes as long as it stays due).
  std::vector<gpu::PixelRect> settled;
  if (update_now && refresh_due_ && !send_mode && damage.empty()) {
    refresh_due_ = false;
    settled = lossy_.TakeSettled(now - settings_.refresh.after, damage_);
    ArmRefreshLocked();      // for cells that have not settled yet
    if (!settled.empty()) {  // shows no flush: they count in the next one
      flushes_ += flushes;
    }
  }

  const gpu::FramePtr shown = shown_;
  mu_.Unlock();
  // No search can start from the frame kept for one: it goes too.
  if (shown != row_hashes_.frame) row_hashes_ = {};

  const bool refresh = !settled.empty();
  if (refresh) damage = std::move(settled);
  // A scroll since the screen the viewer shows: copies of what it has, and
  // pixels for the rest.
  std::vector<VerticalCopy> copies;
  if (UsesCopies() && !refresh && shown && state.frame &&
      shown->width() == state.frame->width() &&
      shown->height() == state.frame->height() && !damage.empty()) {
    // A scroll of similar lines (a console's) changes a little in most
    // rows; a search is worth it when damage touches most rows of its box,
    // not for a few scattered changes (a cursor and a clock).
    gpu::PixelRect box;
    for (const gpu::PixelRect& r : damage) box = gpu::BoundingBox(box, r);
    if (box.width >= gpu::kTileSize && box.height >= 2 * kMinCopyRows &&
        2 * RowsTouched(damage) >= box.height) {
      std::vector<size_t> old_hashes =
          row_hashes_.frame == shown && row_hashes_.box == box
              ? std::move(row_hashes_.hashes)
              : HashRows(*shown, box);
      row_hashes_ = {state.frame, box, HashRows(*state.frame, box)};
      copies = FindVerticalCopies(*shown, old_hashes, *state.frame,
                                  row_hashes_.hashes, box);
      std::vector<gpu::PixelRect> holes;
      holes.reserve(copies.size());
      for (const VerticalCopy& copy : copies) holes.push_back(copy.rect);
      if (!holes.empty()) damage = SubtractRects(std::move(damage), holes);
    }
  }
  std::vector<pb::StreamFramesResponse> events;
  if (send_mode) {
    FillScanout(settings_.scanout_id, state,
                events.emplace_back().mutable_mode_changed());
  }
  // Pieces are shared with every other viewer that asks for the same rects.
  // Raw ones stay under the band budget; an encoded piece may be larger
  // (a whole screen as one JPEG) and then is a band of its own, under the
  // 4 MiB message limit.
  std::vector<EncodedPiece> pieces;
  bool has_update = state.frame && (!damage.empty() || !copies.empty());
  bool encode_failed = false;
  if (has_update && !damage.empty()) {
    absl::StatusOr<std::vector<EncodedPiece>> encoded = context_.cache->Encode(
        *state.frame, damage,
        refresh ? settings_.refresh.encode : settings_.encode,
        settings_.band_bytes);
    if (encoded.ok()) {
      pieces = *std::move(encoded);
      if (encode_failing_.exchange(false)) {
        VGPU_LOG(INFO) << "viewer " << context_.viewer_id
                       << ": encoding works again";
      }
    } else {
      // Nothing of this round goes out; its damage (the copies' too) waits
      // for the next round, a moment later, as pixels. Logged once a run.
      if (!encode_failing_.exchange(true)) {
        VGPU_LOG(WARNING) << "viewer " << context_.viewer_id
                          << ": encoding failed, retrying every "
                          << absl::FormatDuration(kRetryAfterFailure) << ": "
                          << encoded.status().message();
      }
      encode_failed = true;
      has_update = false;
      for (const VerticalCopy& copy : copies) damage.push_back(copy.rect);
      copies.clear();
    }
  }
  std::vector<pb::StreamFramesResponse> cursor_events;
  if (send_cursor && settings_.include_cursor)
    AddCursorEvents(send_shape, &cursor_events);

  uint64_t update_id = 0;
  {
    MutexLock lock(&mu_);
    if (encode_failed) {
      if (refresh) {  // the cells are lossy still, and settled
        for (const gpu::PixelRect& rect : damage)
          lossy_.Mark(rect, now - settings_.refresh.after);
        refresh_due_ = true;
      } else {
        for (const gpu::PixelRect& rect : damage) damage_.Add(rect);
        flushes_ += flushes;
      }
      shown_ = nullptr;
      next_send_ = context_.clock->Now() + kRetryAfterFailure;
    }
    if (has_update && !stopped_) {
      update_id = ++sent_;
      // What the viewer will show once it applied this update (unknown if
      // the frame's damage has not come yet). Kept only for copies: it holds
      // the frame's tiles.
      shown_ = UsesCopies() ? state.frame : nullptr;
      const absl::Time sent_at = context_.clock->Now();
      if (settings_.max_fps > 0)
        next_send_ = sent_at + absl::Seconds(1.0 / settings_.max_fps);
      // Solid pieces are exact whatever the format; so are an adaptive
      // viewer's INDEXED ones.
      if (settings_.refresh.after > absl::ZeroDuration() && !refresh) {
        for (const EncodedPiece& piece : pieces) {
          if (!piece.solid && !IsLossless(piece.kind)) {
            lossy_.Mark(piece.rect, sent_at);
          } else {
            lossy_.Clear(piece.rect);  // exact now
          }
        }
        ArmRefreshLocked();
      }
    }
  }
  for (pb::StreamFramesResponse& event : events) Send(std::move(event));
  if (update_id != 0) {
    const pb::ImageFormat format =
        refresh ? settings_.refresh.format : settings_.format;
    BandMaker bands(state, std::move(copies), std::move(pieces),
                    refresh ? 0 : flushes, format, settings_.band_bytes,
                    update_id, refresh);
    size_t bytes = 0;
    pb::StreamFramesResponse band;
    while (bands.Next(band.mutable_update())) {
      bytes += band.ByteSizeLong();
      Send(std::exchange(band, pb::StreamFramesResponse()));
    }
    if (context_.metrics) {
      context_.metrics->encode_seconds().Observe(
          absl::ToDoubleSeconds(context_.clock->Now() - now));
      context_.metrics->CountUpdate(EncodingName(format), bytes);
      context_.metrics->CountViewerUpdate(context_.viewer_id,
                                          settings_.scanout_id);
    }
  }
  for (pb::StreamFramesResponse& event : cursor_events) Send(std::move(event));

  MutexLock lock(&mu_);
  scheduled_ = false;
}

void ViewerCore::AddCursorEvents(
    bool shape, std::vector<pb::StreamFramesResponse>* events) const {
  std::optional<gpu::CursorUpdate> cursor = context_.store->Cursor();
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

void ViewerCore::Send(pb::StreamFramesResponse message) {
  output_->Send(std::move(message));
}

}  // namespace vgpu::server
