// A virtio-input device (virtio 1.2 §5.8) served over vhost-user: a
// keyboard, an absolute tablet or a relative mouse (InputDeviceSpec). Viewers
// Send() evdev packets from any thread; the device delivers them on the
// event queue (0) as the guest returns buffers, and reads LED state from the
// status queue (1).
//
// Delivery rules:
//  - Every packet ends with EV_SYN/SYN_REPORT, added here. Packets go out in
//    order and whole: one may span several ring refills (QEMU's rings hold
//    4 buffers; Linux accumulates events until SYN_REPORT), but none is cut
//    short or interleaved.
//  - Pointer motion (a packet of only ABS_X/ABS_Y, or only REL_X/REL_Y)
//    merges into a waiting motion packet: the latest position wins,
//    relative moves add up. Keys and buttons are never merged or dropped.
//  - At most `max_pending_events` wait. Beyond it motion is dropped (counted,
//    logged) and a key or button packet is refused (ResourceExhausted): a
//    guest that never returns buffers costs bounded memory.
//  - Pressed keys and buttons are tracked; ReleaseAll() lifts them (the
//    controlling viewer went away). A guest reset, a driver that restarts
//    its event queue from 0, or a front-end that goes away drops what waits
//    and what was pressed: the guest's input state is new.
//
// Thread rules: Send, WaitForRoom, ReleaseAll, attached, leds, WaitForLeds
// and stats are thread-safe. The VhostUserDevice side runs on the device thread
// (the EventLoop's). Send posts delivery to that loop: destroy the device only
// after the loop stopped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

#include "common/mutex.h"
#include "device/input/input_config.h"
#include "device/input/input_event.h"
#include "device/vhost_user/device.h"
#include "device/vhost_user/event_loop.h"

namespace vgpu::input {

inline constexpr uint32_t kEventQueue = 0;
inline constexpr uint32_t kStatusQueue = 1;

struct InputDeviceOptions {
  // Events (SYN_REPORTs included) that may wait for the guest.
  size_t max_pending_events = 512;
  // Events one Send() may carry.
  size_t max_packet_events = 64;
};

struct InputDeviceStats {
  uint64_t packets = 0;           // accepted by Send/ReleaseAll
  uint64_t events_delivered = 0;  // written to the event queue
  uint64_t motion_merged = 0;     // motion packets merged into a waiting one
  uint64_t motion_dropped = 0;    // motion packets dropped: queue full
  uint64_t packets_refused = 0;   // key/button packets refused: queue full
  uint64_t events_discarded = 0;  // waiting when the guest reset or left
  uint64_t status_events = 0;     // read from the status queue
  uint64_t status_malformed = 0;  // status buffers that were not events
  uint64_t short_buffers = 0;     // event buffers under 8 bytes or outside RAM
};

// The guest's keyboard LEDs (bit LED_NUML, LED_CAPSL, ... of
// <linux/input-event-codes.h>) and how many times they changed.
struct LedState {
  uint32_t bits = 0;
  uint64_t changes = 0;
};

class InputDevice : public vhost_user::VhostUserDevice {
 public:
  // `loop` (the device thread's) outlives the device.
  InputDevice(InputDeviceSpec spec, vhost_user::EventLoop* loop,
              InputDeviceOptions options = {});
  ~InputDevice() override;
  InputDevice(const InputDevice&) = delete;
  InputDevice& operator=(const InputDevice&) = delete;

  const InputDeviceSpec& spec() const { return spec_; }

  // Queues `packet` (without SYN_REPORT) for the guest. InvalidArgument: an
  // empty or too long packet, an EV_SYN in it, or a code the device does not
  // advertise (spec().Has). FailedPrecondition: no guest driver runs the
  // event queue. ResourceExhausted: a key/button packet while the queue is
  // full. A dropped motion packet is OK (counted in stats()).
  absl::Status Send(absl::Span<const InputEvent> packet);
  // Waits until a packet of `events` events would fit (or no driver runs
  // the event queue), up to `deadline`; false on timeout. For callers that
  // may block (a typist thread), never gRPC's: Send again after it.
  bool WaitForRoom(size_t events, absl::Time deadline) const;
  // Releases every key and button Send() left pressed, in one packet;
  // returns how many.
  size_t ReleaseAll();
  // A guest driver runs the event queue.
  bool attached() const;
  // Keys and buttons Send() pressed and nothing released yet.
  size_t pressed() const;
  LedState leds() const;
  // Waits until leds().changes differs from `seen`, up to `deadline`
  // (nullopt on timeout).
  std::optional<LedState> WaitForLeds(uint64_t seen, absl::Time deadline) const;
  InputDeviceStats stats() const;
  // Called on the device thread, without the device's lock, after the LEDs
  // or attached() changed. Set before the device is served.
  void set_observer(std::function<void()> observer) {
    observer_ = std::move(observer);
  }

  // VhostUserDevice (device thread).
  uint32_t num_queues() const override { return 2; }
  uint64_t OfferedFeatures() const override { return 0; }
  void SetDriverFeatures(uint64_t features) override { (void)features; }
  void SetGuestMemory(
      std::shared_ptr<const virtio::GuestMemory> memory) override {
    memory_ = std::move(memory);
  }
  const std::shared_ptr<const virtio::GuestMemory>& guest_memory()
      const override {
    return memory_;
  }
  void ReadConfig(uint32_t offset, absl::Span<uint8_t> out) const override {
    config_.Read(offset, out);
  }
  void WriteConfig(uint32_t offset, absl::Span<const uint8_t> in) override {
    config_.Write(offset, in);
  }
  absl::StatusOr<bool> ProcessQueue(uint32_t index,
                                    virtio::SplitVirtqueue& ring) override;
  bool needs_reset() const override { return needs_reset_; }
  void Reset() override;
  // An event queue restarting from 0 after events went out, or with events
  // of the last driver waiting, is a new driver (guest reboot, module
  // reload): they are not its.
  bool ResetsOnQueueStart(uint32_t index, uint16_t base) const override {
    return index == kEventQueue && base == 0 &&
           (delivered_since_reset_ > 0 || HasPending());
  }
  void Disconnected() override;
  void SetKicker(vhost_user::QueueKicker* kicker) override { kicker_ = kicker; }
  void QueueRunning(uint32_t index, bool running) override;

 private:
  enum class Motion { kNone, kAbsolute, kRelative };
  struct Packet {
    absl::InlinedVector<InputEvent, 4> events;  // SYN_REPORT last
    Motion motion = Motion::kNone;
  };

  absl::Status Validate(absl::Span<const InputEvent> packet) const;
  // Send's work under the lock.
  absl::Status SendLocked(Packet packet, absl::Span<const InputEvent> events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static Packet MakePacket(absl::Span<const InputEvent> events);
  void Notify() const {
    if (observer_) observer_();
  }
  // Adds `packet` to a waiting motion packet; false if there is none.
  bool MergeMotion(const Packet& packet) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Enqueue(Packet packet) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver();  // device thread, posted by Send
  absl::StatusOr<bool> FillEventQueue(virtio::SplitVirtqueue& ring);
  absl::StatusOr<bool> ReadStatusQueue(virtio::SplitVirtqueue& ring);
  absl::StatusOr<bool> DrainStatusQueue(virtio::SplitVirtqueue& ring);
  absl::Status BrokenQueue(uint32_t index, const absl::Status& status);
  bool HasPending() const;

  const InputDeviceSpec spec_;
  const InputDeviceOptions options_;
  vhost_user::EventLoop* const loop_;
  std::function<void()> observer_;

  // Device thread.
  InputConfigSpace config_;
  std::shared_ptr<const virtio::GuestMemory> memory_;
  vhost_user::QueueKicker* kicker_ = nullptr;
  bool needs_reset_ = false;
  uint64_t delivered_since_reset_ = 0;

  mutable Mutex mu_;
  bool event_queue_running_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Packet> pending_ ABSL_GUARDED_BY(mu_);
  size_t front_sent_ ABSL_GUARDED_BY(mu_) = 0;  // of pending_.front()
  size_t pending_events_ ABSL_GUARDED_BY(mu_) = 0;
  bool delivery_posted_ ABSL_GUARDED_BY(mu_) = false;
  std::set<uint16_t> pressed_ ABSL_GUARDED_BY(mu_);
  LedState leds_ ABSL_GUARDED_BY(mu_);
  InputDeviceStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vgpu::input
