#include "clients/vnc/scanout_feed.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "vgpu/display/v1/display.grpc.pb.h"

#include "clients/watch/screen_model.h"
#include "common/compact_update.h"
#include "common/log.h"

namespace vgpu::vnc {
namespace {

namespace pb = vgpu::display::v1;

// What the VNC screen shows for a scanout the daemon reports disabled or
// before the first mode: it keeps its size and last picture.
bool HasPicture(const pb::Scanout& scanout) {
  return scanout.enabled() && scanout.width() > 0 && scanout.height() > 0;
}

// libvncserver's subsampling levels as the daemon names them.
pb::JpegSubsampling Subsampling(uint32_t level) {
  switch (level) {
    case 0:
      return pb::JPEG_SUBSAMPLING_444;
    case 2:
      return pb::JPEG_SUBSAMPLING_422;
    case 3:
      return pb::JPEG_SUBSAMPLING_GRAY;
    default:
      return pb::JPEG_SUBSAMPLING_420;
  }
}

// The picture an update was cut from: the two streams compare by it (a
// flush that changes nothing advances only frame_sequence, and only the
// stream that happens to be cut then sees that number).
uint64_t ContentSequence(const pb::FrameUpdate& update) {
  return update.content_sequence() != 0 ? update.content_sequence()
                                        : update.frame_sequence();
}

}  // namespace

ScanoutFeed::ScanoutFeed(std::shared_ptr<grpc::Channel> channel,
                         const ScanoutFeedOptions& options, VncScreen* screen)
    : channel_(std::move(channel)), options_(options), screen_(screen) {}

ScanoutFeed::~ScanoutFeed() { Stop(); }

void ScanoutFeed::Start() {
  {
    MutexLock lock(&mu_);
    stopping_ = false;
    idle_since_ = absl::Now();
  }
  thread_ = std::thread([this] { Run(); });
  if (!options_.forward && (options_.pause_after != absl::InfiniteDuration() ||
                            options_.copy_on_demand)) {
    supervisor_ = std::thread([this] { Supervise(); });
  }
}

void ScanoutFeed::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
    mu_.NotifyAll();
  }
  if (supervisor_.joinable()) supervisor_.join();
  if (thread_.joinable()) thread_.join();
}

void ScanoutFeed::ClientsChanged() {
  MutexLock lock(&mu_);
  if (screen_->stats().clients.load() == 0) {
    idle_since_ = absl::Now();
  } else {
    paused_ = false;
  }
  wanted_ = true;  // a new client's first screen comes from the copy
  mu_.NotifyAll();
}

void ScanoutFeed::CopyWanted() {
  MutexLock lock(&mu_);
  wanted_ = true;
  wanted_at_ = absl::Now();
  if (withheld_ != 0) mu_.NotifyAll();
}

void ScanoutFeed::WriteAck(uint64_t stream, uint64_t update_id) {
  pb::StreamFramesRequest ack;
  ack.mutable_ack()->set_update_id(update_id);
  MutexLock lock(&write_mu_);
  if (writer_ != nullptr && writer_stream_ == stream) writer_->Write(ack);
}

void ScanoutFeed::Acknowledge(uint64_t update_id) {
  if (options_.forward || !options_.copy_on_demand) {
    WriteAck(stream_, update_id);
    return;
  }
  // Asked before the lock: a client that comes to wait after this asks
  // through CopyWanted, which then finds the acknowledgement held back.
  const bool screen_wants = screen_->CopyWanted();
  bool hold = false;
  {
    MutexLock lock(&mu_);
    hold = !screen_wants && !std::exchange(wanted_, false) &&
           absl::Now() - wanted_at_ >= options_.follow_after_wanted;
    withheld_ = hold ? update_id : 0;
    withheld_stream_ = stream_;
  }
  if (!hold) WriteAck(stream_, update_id);
  if (hold != lagging_.load()) {
    lagging_ = hold;
    screen_->SetCopyLagging(hold);
  }
}

void ScanoutFeed::Supervise() {
  const bool pauses = options_.pause_after != absl::InfiniteDuration();
  while (true) {
    uint64_t ack = 0;
    uint64_t stream = 0;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      const absl::Time due = idle_since_ + options_.pause_after;
      const bool idle = pauses && screen_->stats().clients.load() == 0;
      if (wanted_ && withheld_ != 0) {
        ack = std::exchange(withheld_, 0);
        stream = withheld_stream_;
        wanted_ = false;
      } else if (idle && !paused_ && absl::Now() >= due) {
        paused_ = true;
        if (context_ != nullptr) {
          context_->TryCancel();
          cancelled_for_pause_ = true;
        }
        VGPU_LOG(INFO) << "scanout " << options_.scanout_id
                       << ": no VNC client for " << options_.pause_after
                       << "; the feed pauses";
      } else {
        // Woken by a client coming or going, the copy wanted and Stop,
        // else at the due time.
        mu_.WaitOnce(idle && !paused_ ? absl::ToChronoTime(due)
                                      : std::chrono::system_clock::now() +
                                            std::chrono::seconds(1));
      }
    }
    // Not under mu_: a Write may wait for the transport.
    if (ack != 0) WriteAck(stream, ack);
  }
}

void ScanoutFeed::Run() {
  absl::Duration backoff = options_.min_backoff;
  bool said_lost = false;
  while (true) {
    bool paused;
    {
      MutexLock lock(&mu_);
      paused = paused_;
    }
    // Clients that come meanwhile wait for the next stream's first frame
    // (only the copy's feed pauses).
    if (paused) screen_->SetCopyCurrent(false);
    {
      MutexLock lock(&mu_);
      mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || !paused_;
      });
      if (stopping_) return;
    }
    const bool started = Subscribe();
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      // Ended for a pause: no backoff, and the copy is marked above.
      if (std::exchange(cancelled_for_pause_, false) || paused_) continue;
    }
    // The stream ended, or the daemon cannot be had after a pause: the
    // last frame is better than nothing.
    if (!options_.forward) screen_->SetCopyCurrent(true);
    if (started) {
      backoff = options_.min_backoff;
      said_lost = false;
    }
    MutexLock lock(&mu_);
    if (stopping_) return;
    if (!said_lost) {
      VGPU_LOG(WARNING) << "scanout " << options_.scanout_id
                        << ": no feed from the daemon; VNC clients keep the "
                           "last frame; retrying";
      said_lost = true;
    }
    mu_.AwaitUntil(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_; },
        std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(backoff));
    if (stopping_) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool ScanoutFeed::Subscribe() {
  grpc::ClientContext context;
  {
    MutexLock lock(&mu_);
    // Paused since Run looked: the pauser found no stream to end.
    if (stopping_ || paused_) return false;
    context_ = &context;
  }
  auto stub = pb::Display::NewStub(channel_);
  auto stream = stub->StreamFrames(&context);
  pb::StreamFramesRequest subscribe;
  pb::Subscribe* s = subscribe.mutable_subscribe();
  s->set_scanout_id(options_.scanout_id);
  s->set_max_in_flight(2);
  s->set_compact_updates(true);
  const bool forward = options_.forward.has_value();
  if (forward) {
    // Adaptive: photo-like rects as JPEG for the profile, the others (text,
    // UI) as lossless rects, which the screen sends from its own copy, as
    // it does the JPEG regions' lossless refresh once they settle.
    s->add_formats(pb::IMAGE_FORMAT_ADAPTIVE);
    s->set_jpeg_quality(options_.forward->quality);
    s->set_jpeg_subsampling(Subsampling(options_.forward->subsampling));
  } else {
    s->add_formats(options_.copy_format);
    s->set_include_cursor(true);
    s->set_accept_copies(true);
  }

  std::vector<uint8_t> pixels;  // one decoded rect
  UpdateExpander expander;
  bool started = false;
  bool failed = false;
  pb::CursorShape shape;
  bool cursor_hidden = false;
  pb::StreamFramesResponse event;
  // Mirrors a mode onto the screen.
  auto set_mode = [&](const pb::Scanout& scanout) {
    if (!HasPicture(scanout)) {
      // No frame follows for a disabled scanout: after a pause, the last
      // picture is what clients get.
      if (!forward) screen_->SetCopyCurrent(true);
      return true;
    }
    if (forward) {
      mode_width_ = scanout.width();
      mode_height_ = scanout.height();
      return true;
    }
    absl::Status status = screen_->SetMode(scanout.width(), scanout.height());
    if (!status.ok()) {
      VGPU_LOG(ERROR) << "scanout " << options_.scanout_id << ": "
                      << status.message();
    }
    return status.ok();
  };
  // An update's last band frees a credit.
  auto acknowledge = [&](const pb::FrameUpdate& update) {
    if (!update.end_of_update()) return;
    updates_.fetch_add(1);
    Acknowledge(update.update_id());
  };
  if (stream->Write(subscribe)) {
    {
      MutexLock lock(&write_mu_);
      writer_ = stream.get();
      writer_stream_ = ++stream_;
    }
    while (!failed && stream->Read(&event)) {
      switch (event.event_case()) {
        case pb::StreamFramesResponse::kStarted:
          started = true;
          instance_ = event.started().instance_id();
          subscriptions_.fetch_add(1);
          connected_ = true;
          if (forward) {
            VGPU_LOG(DEBUG) << "scanout " << options_.scanout_id
                            << ": forwarding the daemon's encoding at JPEG "
                               "quality "
                            << options_.forward->quality;
            screen_->SetForwardLive(*options_.forward, true);
          } else if (HasPicture(event.started().scanout())) {
            VGPU_LOG(INFO) << "scanout " << options_.scanout_id
                           << ": feed from the daemon, "
                           << event.started().scanout().width() << "x"
                           << event.started().scanout().height();
          } else {
            VGPU_LOG(INFO) << "scanout " << options_.scanout_id
                           << ": feed from the daemon; the guest has not "
                              "enabled this scanout yet";
          }
          failed = !set_mode(event.started().scanout());
          break;
        case pb::StreamFramesResponse::kModeChanged:
          failed = !set_mode(event.mode_changed());
          break;
        case pb::StreamFramesResponse::kUpdate: {
          pb::FrameUpdate* update = event.mutable_update();
          expander.Expand(update);
          if (forward) {
            ForwardUpdate(*update);
            acknowledge(*update);
            break;
          }
          // Copies in order, then the rects, decoded straight into the
          // screen's copy (which checks every rect against its size).
          absl::Status status;
          for (const pb::CopyRect& copy : update->copies()) {
            if (!status.ok()) break;
            status = screen_->Copy(copy.rect().x(), copy.rect().y(),
                                   copy.rect().width(), copy.rect().height(),
                                   copy.src_x(), copy.src_y());
          }
          for (const pb::EncodedRect& rect : update->rects()) {
            if (!status.ok()) break;
            const pb::Rect& r = rect.rect();
            if (r.width() == 0 || r.height() == 0) continue;
            // Before decoding allocates for it.
            if (uint64_t{r.x()} + r.width() > screen_->width() ||
                uint64_t{r.y()} + r.height() > screen_->height()) {
              status = absl::OutOfRangeError("update rect outside the screen");
              break;
            }
            status = watch::DecodeRect(rect, &pixels);
            if (status.ok()) {
              status = screen_->Update(r.x(), r.y(), r.width(), r.height(),
                                       pixels.data(), size_t{r.width()} * 4);
            }
          }
          if (!status.ok()) {
            VGPU_LOG(ERROR)
                << "scanout " << options_.scanout_id
                << ": bad update from the daemon: " << status.message();
            failed = true;
            break;
          }
          if (update->end_of_update())
            screen_->SetCopyFrame(instance_, ContentSequence(*update));
          acknowledge(*update);
          break;
        }
        case pb::StreamFramesResponse::kCursorShape:
          shape = event.cursor_shape();
          if (!cursor_hidden) {
            if (absl::Status status = screen_->SetCursor(
                    shape.width(), shape.height(), shape.hot_x(), shape.hot_y(),
                    shape.bgra());
                !status.ok()) {
              VGPU_LOG(WARNING) << "scanout " << options_.scanout_id
                                << ": cursor: " << status.message();
            }
          }
          break;
        case pb::StreamFramesResponse::kCursorPosition: {
          const pb::CursorPosition& position = event.cursor_position();
          const bool hide = !position.visible();
          // The hotspot, as RFB's PointerPos means it.
          if (!hide) {
            screen_->SetPointerPosition(position.x() + shape.hot_x(),
                                        position.y() + shape.hot_y());
          }
          if (hide != cursor_hidden) {
            cursor_hidden = hide;
            // Shapes were checked when they came; a hidden cursor is empty.
            (void)screen_->SetCursor(shape.width(), shape.height(),
                                     shape.hot_x(), shape.hot_y(),
                                     hide ? std::string() : shape.bgra());
          }
          break;
        }
        default:
          break;
      }
    }
  }
  if (failed) context.TryCancel();
  {
    MutexLock lock(&write_mu_);
    writer_ = nullptr;
  }
  {
    MutexLock lock(&mu_);
    withheld_ = 0;
    wanted_ = false;
  }
  // The copy keeps what it has; the next stream starts with a whole frame.
  if (lagging_.exchange(false)) screen_->SetCopyLagging(false);
  grpc::Status status = stream->Finish();
  connected_ = false;
  if (forward && started) screen_->SetForwardLive(*options_.forward, false);
  {
    MutexLock lock(&mu_);
    context_ = nullptr;
  }
  if (started && !status.ok() && status.error_code() != grpc::CANCELLED) {
    VGPU_LOG(WARNING) << "scanout " << options_.scanout_id
                      << ": the daemon's stream ended: "
                      << status.error_message();
  }
  if (!started && status.error_code() == grpc::NOT_FOUND) {
    VGPU_LOG(ERROR) << "scanout " << options_.scanout_id << ": "
                    << status.error_message();
  }
  return started;
}

void ScanoutFeed::ForwardUpdate(const pb::FrameUpdate& update) {
  if (mode_width_ == 0 || update.rects_size() == 0) return;
  auto forwarded = std::make_shared<ForwardedUpdate>();
  forwarded->width = mode_width_;
  forwarded->height = mode_height_;
  forwarded->instance = instance_;
  forwarded->sequence = ContentSequence(update);
  forwarded->rects.reserve(static_cast<size_t>(update.rects_size()));
  for (const pb::EncodedRect& rect : update.rects()) {
    ForwardedRect out{.x = rect.rect().x(),
                      .y = rect.rect().y(),
                      .width = rect.rect().width(),
                      .height = rect.rect().height()};
    if (rect.solid()) {
      out.kind = ForwardedRect::Kind::kFill;
      out.bgrx = rect.solid_bgrx();
    } else if (rect.format() == pb::IMAGE_FORMAT_JPEG && !update.refresh()) {
      out.kind = ForwardedRect::Kind::kJpeg;
      out.jpeg = rect.data();
    } else {
      // The lossless refresh (or any other format): the screen's copy has
      // these pixels exactly.
      out.kind = ForwardedRect::Kind::kLossless;
    }
    forwarded->rects.push_back(std::move(out));
  }
  screen_->Forward(*options_.forward, std::move(forwarded));
}

ForwardFeeds::ForwardFeeds(std::shared_ptr<grpc::Channel> channel,
                           uint32_t scanout_id)
    : channel_(std::move(channel)), scanout_id_(scanout_id) {}

ForwardFeeds::~ForwardFeeds() { Stop(); }

void ForwardFeeds::Start(VncScreen* screen) {
  screen_ = screen;
  thread_ = std::thread([this] { Run(); });
}

void ForwardFeeds::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    mu_.NotifyAll();
  }
  if (thread_.joinable()) thread_.join();
}

void ForwardFeeds::SetProfiles(const std::set<ForwardProfile>& profiles) {
  MutexLock lock(&mu_);
  wanted_ = profiles;
  changed_ = true;
  mu_.NotifyAll();
}

void ForwardFeeds::Run() {
  std::map<ForwardProfile, std::unique_ptr<ScanoutFeed>> feeds;
  while (true) {
    std::set<ForwardProfile> wanted;
    {
      MutexLock lock(&mu_);
      mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || changed_;
      });
      if (stopping_) break;
      wanted = wanted_;
      changed_ = false;
    }
    for (auto it = feeds.begin(); it != feeds.end();) {
      it = wanted.count(it->first) != 0 ? std::next(it) : feeds.erase(it);
    }
    for (const ForwardProfile& profile : wanted) {
      if (feeds.count(profile) != 0) continue;
      ScanoutFeedOptions options;
      options.scanout_id = scanout_id_;
      options.forward = profile;
      auto feed = std::make_unique<ScanoutFeed>(channel_, options, screen_);
      feed->Start();
      feeds.emplace(profile, std::move(feed));
    }
    active_ = feeds.size();
  }
  feeds.clear();  // each stops
  active_ = 0;
}

}  // namespace vgpu::vnc
