#include "device/input/input_device.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include <linux/input-event-codes.h>

#include "common/log.h"
#include "device/virtio/chain_io.h"

namespace vgpu::input {
namespace {

constexpr InputEvent kSynReport{EV_SYN, SYN_REPORT, 0};

// Pointer motion only: an event on the X or Y axis of `type` (EV_ABS or
// EV_REL; both number their X and Y axes 0 and 1).
static_assert(ABS_X == REL_X && ABS_Y == REL_Y);
bool IsMotion(const InputEvent& event, uint16_t type) {
  return event.type == type && (event.code == ABS_X || event.code == ABS_Y);
}

int32_t SaturatingAdd(int32_t a, int32_t b) {
  const int64_t sum = int64_t{a} + b;
  return static_cast<int32_t>(
      std::clamp<int64_t>(sum, std::numeric_limits<int32_t>::min(),
                          std::numeric_limits<int32_t>::max()));
}

}  // namespace

InputDevice::InputDevice(InputDeviceSpec spec, vhost_user::EventLoop* loop,
                         InputDeviceOptions options)
    : spec_(std::move(spec)), options_(options), loop_(loop), config_(&spec_) {}

InputDevice::~InputDevice() = default;

absl::Status InputDevice::Validate(absl::Span<const InputEvent> packet) const {
  if (packet.empty()) return absl::InvalidArgumentError("no events");
  if (packet.size() > options_.max_packet_events) {
    return absl::InvalidArgumentError(
        absl::StrCat(packet.size(), " events in one packet (at most ",
                     options_.max_packet_events, ")"));
  }
  for (const InputEvent& event : packet) {
    if (event.type == EV_SYN) {
      return absl::InvalidArgumentError(
          "EV_SYN in a packet: the device ends each packet itself");
    }
    if (!spec_.Has(event.type, event.code)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the ", KindName(spec_.kind), " has no event type ",
                       event.type, " code ", event.code));
    }
  }
  return absl::OkStatus();
}

InputDevice::Packet InputDevice::MakePacket(
    absl::Span<const InputEvent> events) {
  Packet p;
  p.events.assign(events.begin(), events.end());
  for (Motion motion : {Motion::kAbsolute, Motion::kRelative}) {
    const uint16_t type = motion == Motion::kAbsolute ? EV_ABS : EV_REL;
    if (std::all_of(events.begin(), events.end(),
                    [type](const InputEvent& e) { return IsMotion(e, type); }))
      p.motion = motion;
  }
  p.events.push_back(kSynReport);
  return p;
}

absl::Status InputDevice::Send(absl::Span<const InputEvent> packet) {
  if (absl::Status valid = Validate(packet); !valid.ok()) return valid;
  MutexLock lock(&mu_);
  return SendLocked(MakePacket(packet), packet);
}

bool InputDevice::WaitForRoom(size_t events, absl::Time deadline) const {
  const size_t needed = std::min(events + 1, options_.max_pending_events);
  MutexLock lock(&mu_);
  // The predicate runs with mu_ held (Mutex::AwaitUntil).
  auto room = [this, needed]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !event_queue_running_ ||
           pending_events_ + needed <= options_.max_pending_events;
  };
  return mu_.AwaitUntil(room, absl::ToChronoTime(deadline));
}

absl::Status InputDevice::SendLocked(Packet packet,
                                     absl::Span<const InputEvent> events) {
  if (!event_queue_running_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no guest driver runs the ", KindName(spec_.kind),
        " (the VM is not connected, or its virtio-input driver has not "
        "started)"));
  }
  if (packet.motion != Motion::kNone && MergeMotion(packet)) {
    ++stats_.motion_merged;
    return absl::OkStatus();
  }
  if (pending_events_ + packet.events.size() > options_.max_pending_events) {
    if (packet.motion != Motion::kNone) {
      ++stats_.motion_dropped;
      VGPU_LOG_GUEST_ERROR()
          << KindName(spec_.kind) << ": the guest takes no input ("
          << pending_events_ << " events wait): pointer motion dropped";
      return absl::OkStatus();
    }
    ++stats_.packets_refused;
    return absl::ResourceExhaustedError(
        absl::StrCat("the guest has not taken the last ", pending_events_, " ",
                     KindName(spec_.kind), " events; try again later"));
  }
  for (const InputEvent& event : events) {
    if (event.type != EV_KEY) continue;
    if (event.value != 0) {
      pressed_.insert(event.code);
    } else {
      pressed_.erase(event.code);
    }
  }
  Enqueue(std::move(packet));
  return absl::OkStatus();
}

bool InputDevice::MergeMotion(const Packet& packet) {
  if (pending_.empty()) return false;
  // The front packet may be partly delivered already: it stays as it is.
  if (pending_.size() == 1 && front_sent_ > 0) return false;
  Packet& last = pending_.back();
  if (last.motion != packet.motion) return false;
  for (const InputEvent& event : packet.events) {
    if (event.type == EV_SYN) continue;
    auto same = std::find_if(
        last.events.begin(), last.events.end(),
        [&event](const InputEvent& e) { return e.code == event.code; });
    if (same != last.events.end() && same->type == event.type) {
      same->value = packet.motion == Motion::kAbsolute
                        ? event.value
                        : SaturatingAdd(same->value, event.value);
    } else {
      last.events.insert(last.events.end() - 1, event);  // before the SYN
      ++pending_events_;
    }
  }
  return true;
}

void InputDevice::Enqueue(Packet packet) {
  pending_events_ += packet.events.size();
  pending_.push_back(std::move(packet));
  ++stats_.packets;
  if (!delivery_posted_) {
    delivery_posted_ = true;
    loop_->Post([this] { Deliver(); });
  }
}

size_t InputDevice::ReleaseAll() {
  MutexLock lock(&mu_);
  const size_t count = pressed_.size();
  if (count == 0) return 0;
  Packet p;
  for (uint16_t code : pressed_) p.events.push_back({EV_KEY, code, 0});
  p.events.push_back(kSynReport);
  pressed_.clear();
  // Not bounded by max_pending_events: at most every key once, and a key
  // left down would repeat in the guest forever. Queued even while the
  // event queue is stopped (a paused VM keeps its key state and resumes);
  // a reset or a front-end that goes away drops it with the rest.
  Enqueue(std::move(p));
  return count;
}

bool InputDevice::attached() const {
  MutexLock lock(&mu_);
  return event_queue_running_;
}

size_t InputDevice::pressed() const {
  MutexLock lock(&mu_);
  return pressed_.size();
}

LedState InputDevice::leds() const {
  MutexLock lock(&mu_);
  return leds_;
}

std::optional<LedState> InputDevice::WaitForLeds(uint64_t seen,
                                                 absl::Time deadline) const {
  MutexLock lock(&mu_);
  // The predicate runs with mu_ held (Mutex::AwaitUntil); the analysis
  // cannot see that through the lambda.
  auto changed = [this, seen]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return leds_.changes != seen;
  };
  if (!mu_.AwaitUntil(changed, absl::ToChronoTime(deadline)))
    return std::nullopt;
  return leds_;
}

InputDeviceStats InputDevice::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

bool InputDevice::HasPending() const {
  MutexLock lock(&mu_);
  return !pending_.empty();
}

void InputDevice::Deliver() {
  {
    MutexLock lock(&mu_);
    delivery_posted_ = false;
  }
  if (kicker_ != nullptr) kicker_->Kick(kEventQueue);
}

void InputDevice::QueueRunning(uint32_t index, bool running) {
  if (index != kEventQueue) return;
  {
    MutexLock lock(&mu_);
    event_queue_running_ = running;
    mu_.NotifyAll();
  }
  Notify();
}

absl::StatusOr<bool> InputDevice::ProcessQueue(uint32_t index,
                                               virtio::SplitVirtqueue& ring) {
  if (needs_reset_) return absl::FailedPreconditionError("device needs reset");
  if (memory_ == nullptr)
    return absl::FailedPreconditionError("no guest memory");
  absl::StatusOr<bool> result =
      index == kEventQueue ? FillEventQueue(ring) : ReadStatusQueue(ring);
  if (!result.ok()) return BrokenQueue(index, result.status());
  return result;
}

absl::Status InputDevice::BrokenQueue(uint32_t index,
                                      const absl::Status& status) {
  needs_reset_ = true;
  VGPU_LOG_GUEST_ERROR() << KindName(spec_.kind) << ": queue " << index
                         << " is corrupt, device needs reset: "
                         << status.message();
  return status;
}

absl::StatusOr<bool> InputDevice::FillEventQueue(virtio::SplitVirtqueue& ring) {
  // Buffers are taken only for events that wait: the rest stay with the
  // driver, and a kick (asked for below) brings them back here.
  while (HasPending()) {
    absl::StatusOr<std::optional<virtio::DescriptorChain>> chain =
        ring.Pop(*memory_);
    if (!chain.ok()) return chain.status();
    if (!chain->has_value()) {
      if (ring.EnableNotifications()) continue;
      break;
    }
    virtio::DescriptorChain& c = **chain;
    virtio::ChainWriter writer(c.writable);
    // One event a buffer, whatever its size: Linux's driver reads one event
    // from each used buffer and ignores its length (virtinput_recv_events),
    // as QEMU's virtio-input writes them. A chain with a buffer outside RAM
    // gets nothing.
    uint32_t written = 0;
    const bool fits =
        !c.bad_buffer && writer.capacity() >= sizeof(virtio_input_event);
    {
      MutexLock lock(&mu_);
      if (fits && !pending_.empty()) {
        const InputEvent& event = pending_.front().events[front_sent_];
        const virtio_input_event wire{event.type, event.code,
                                      static_cast<uint32_t>(event.value)};
        written = static_cast<uint32_t>(writer.WriteObject(wire));
        --pending_events_;
        ++stats_.events_delivered;
        ++delivered_since_reset_;
        if (++front_sent_ == pending_.front().events.size()) {
          pending_.pop_front();
          front_sent_ = 0;
        }
        mu_.NotifyAll();  // room for WaitForRoom
      }
      if (!fits) ++stats_.short_buffers;
    }
    if (!fits) {
      VGPU_LOG_GUEST_ERROR()
          << KindName(spec_.kind)
          << (c.bad_buffer ? ": an event buffer outside guest RAM"
                           : ": an event buffer of under 8 bytes");
    }
    ring.PushUsed(c.head, written);
  }
  return ring.ShouldNotify();
}

absl::StatusOr<bool> InputDevice::ReadStatusQueue(
    virtio::SplitVirtqueue& ring) {
  uint64_t changes_before;
  {
    MutexLock lock(&mu_);
    changes_before = leds_.changes;
  }
  absl::StatusOr<bool> notify = DrainStatusQueue(ring);
  bool changed;
  {
    MutexLock lock(&mu_);
    changed = leds_.changes != changes_before;
  }
  if (changed) Notify();
  return notify;
}

absl::StatusOr<bool> InputDevice::DrainStatusQueue(
    virtio::SplitVirtqueue& ring) {
  do {
    ring.DisableNotifications();
    while (true) {
      absl::StatusOr<std::optional<virtio::DescriptorChain>> chain =
          ring.Pop(*memory_);
      if (!chain.ok()) return chain.status();
      if (!chain->has_value()) break;
      virtio::DescriptorChain& c = **chain;
      virtio::ChainReader reader(c.readable);
      const bool malformed = c.bad_buffer || reader.remaining() == 0 ||
                             reader.remaining() % sizeof(virtio_input_event);
      MutexLock lock(&mu_);
      if (malformed) {
        ++stats_.status_malformed;
        VGPU_LOG_GUEST_ERROR()
            << KindName(spec_.kind) << ": a status buffer of "
            << reader.remaining() << " bytes is not a list of events";
      }
      while (!malformed && reader.remaining() > 0) {
        std::optional<virtio_input_event> wire =
            reader.Read<virtio_input_event>();
        if (!wire) break;
        ++stats_.status_events;
        if (wire->type != EV_LED || wire->code >= 32) continue;
        const uint32_t bit = 1u << wire->code;
        const uint32_t bits =
            wire->value != 0 ? (leds_.bits | bit) : (leds_.bits & ~bit);
        if (bits != leds_.bits) {
          leds_.bits = bits;
          ++leds_.changes;
          mu_.NotifyAll();
        }
      }
      ring.PushUsed(c.head, 0);
    }
  } while (ring.EnableNotifications());
  return ring.ShouldNotify();
}

void InputDevice::DropState() {
  mu_.NotifyAll();  // WaitForRoom sees the queue emptied
  stats_.events_discarded += pending_events_;
  pending_.clear();
  pending_events_ = 0;
  front_sent_ = 0;
  pressed_.clear();
  if (leds_.bits != 0) {
    leds_.bits = 0;
    ++leds_.changes;
    mu_.NotifyAll();
  }
}

void InputDevice::Reset() {
  needs_reset_ = false;
  delivered_since_reset_ = 0;
  config_.Reset();
  {
    MutexLock lock(&mu_);
    DropState();
  }
  Notify();
}

void InputDevice::Disconnected() {
  {
    MutexLock lock(&mu_);
    DropState();
    event_queue_running_ = false;
  }
  Notify();
}

}  // namespace vgpu::input
