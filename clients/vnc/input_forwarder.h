// The VNC bridge's keyboard and pointer: what its VNC clients type and
// point goes to the daemon's Input service on one StreamInput
// (proto/vgpu/input/v1/input.proto), and the guest's keyboard LEDs come
// back for the clients (QEMU LED state pseudo-encoding).
//
//  - Keys: a QEMU Extended Key Event's XT number becomes its evdev code
//    (xt_keycodes.h); a plain RFB KeyEvent goes as its keysym, which the
//    daemon types on a key of --keyboard_layout (Shift/AltGr added, the
//    guest's locks allowed for).
//  - Lock keys: a key code types what the guest's CapsLock and NumLock make
//    of it. For a client that does not follow the guest's LED state (noVNC
//    1.3), a letter whose case (with the client's Shift) disagrees with the
//    guest's CapsLock, or a keypad key whose keysym disagrees with its
//    NumLock, is preceded by a press of that lock key, as QEMU's VNC server
//    does (ui/vnc.c, do_key_event). Until the guest reports that state (or
//    for at most kLockReportWait, if the press went nowhere), the state it
//    was toggled to is assumed.
//  - Pointer: RFB button masks become button presses and releases (bits
//    0-2 left, middle, right), wheel notches (bits 3/4 up/down, 5/6 left/
//    right), positions the tablet's scanout pixels.
//  - Control: asked for (or taken, with `take`) at the first event, given
//    up when the last VNC client leaves. When one of several leaves, every
//    key and button is lifted (which were its own is not known). View-only
//    clients never get here (libvncserver drops their events).
//  - The stream reconnects with backoff when the daemon goes away; events
//    meanwhile are dropped and counted.
//
// Thread rules: Start/Stop from one thread; the event methods from any
// (libvncserver's client threads). `leds` is called on the forwarder's
// thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "vgpu/input/v1/input.grpc.pb.h"
#include <grpcpp/grpcpp.h>
#include <linux/input-event-codes.h>

#include "clients/vnc/vnc_screen.h"
#include "common/mutex.h"

namespace vgpu::vnc {

struct InputForwarderOptions {
  // XKB layout (and variant) the guest uses, for keysyms.
  std::string layout = "us";
  std::string variant;
  // Take control from another viewer at the first event (else ask).
  bool take = true;
  // The daemon's input token (--input_token_file), if it wants one.
  std::string token;
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  // The guest's LEDs as the QEMU LED state bits (0 scroll, 1 num, 2 caps).
  std::function<void(uint8_t)> leds;
};

struct InputForwarderStats {
  std::atomic<uint64_t> keys{0};
  std::atomic<uint64_t> pointer_events{0};
  std::atomic<uint64_t> dropped{0};  // no stream to the daemon
  std::atomic<uint64_t> refused{0};  // the daemon answered with an error
  std::atomic<uint64_t> control_lost{0};
};

class InputForwarder {
 public:
  InputForwarder(std::shared_ptr<grpc::Channel> channel,
                 InputForwarderOptions options);
  ~InputForwarder();  // Stop()

  void Start();
  void Stop();

  // A key going down or up: `xt` is the QEMU Extended Key Event's number
  // (0: a plain KeyEvent, sent as its keysym). `sync_locks`: keep the
  // guest's CapsLock and NumLock in step with `keysym` (see above).
  void Key(bool down, uint32_t keysym, uint32_t xt, bool sync_locks = false);
  // An RFB PointerEvent on `scanout`: button mask, position in pixels.
  void Pointer(uint32_t scanout, uint32_t buttons, uint32_t x, uint32_t y);
  // How many VNC clients `scanout`'s screen has, after one came or `left`:
  // when no screen has any, control is given up; when one left and others
  // stay, every key and button is lifted.
  void ClientsChanged(uint32_t scanout, uint32_t clients, bool left);
  // A VncInput for one screen.
  std::unique_ptr<VncInput> ForScanout(uint32_t scanout);

  bool connected() const;
  const InputForwarderStats& stats() const { return stats_; }

 private:
  void Run();
  // Writes `request` on the stream, asking for control first if this
  // stream has none. False when there is no stream.
  bool Send(const vgpu::input::v1::StreamInputRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Write(const vgpu::input::v1::StreamInputRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Handle(const vgpu::input::v1::StreamInputResponse& response);
  // A lock key the guest has (as it last said, or as toggled since).
  struct Lock {
    uint16_t code;         // evdev KEY_CAPSLOCK or KEY_NUMLOCK
    uint8_t led;           // its QEMU LED state bit
    bool assumed = false;  // toggled here; the guest has not said since
    bool assumed_on = false;
    absl::Time assumed_until = absl::InfinitePast();
  };
  // How long a toggle's LED report may take before the report is believed
  // again: a guest answers in milliseconds.
  static constexpr absl::Duration kLockReportWait = absl::Seconds(1);
  bool LockOn(Lock& lock) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Assume(Lock& lock, bool on) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Presses `lock` if it is not `on`.
  void SetLock(Lock& lock, bool on) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SyncLocks(uint16_t code, uint32_t keysym)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<vgpu::input::v1::Input::Stub> stub_;
  const InputForwarderOptions options_;
  InputForwarderStats stats_;
  std::thread thread_;
  std::string last_refusal_;  // Handle's (the forwarder thread's)

  // Stopping; never held across a blocking call.
  Mutex stop_mu_;
  bool stopping_ VGPU_GUARDED_BY(stop_mu_) = false;
  grpc::ClientContext* context_ VGPU_GUARDED_BY(stop_mu_) = nullptr;

  // Writing: held across the stream's blocking Write, so requests go out
  // whole and in order. Before stop_mu_.
  mutable Mutex mu_;
  grpc::ClientReaderWriter<vgpu::input::v1::StreamInputRequest,
                           vgpu::input::v1::StreamInputResponse>* stream_
      VGPU_GUARDED_BY(mu_) = nullptr;
  bool asked_ VGPU_GUARDED_BY(mu_) = false;  // control asked for
  std::atomic<bool> lost_{false};            // told control was lost (Handle)
  // The guest's LEDs (QEMU LED state bits), as the stream last said
  // (Handle).
  std::atomic<uint8_t> led_bits_{0};
  Lock caps_ VGPU_GUARDED_BY(mu_){KEY_CAPSLOCK, 4};
  Lock num_ VGPU_GUARDED_BY(mu_){KEY_NUMLOCK, 2};
  std::set<uint16_t> shift_down_ VGPU_GUARDED_BY(mu_);  // by key events
  uint32_t buttons_ VGPU_GUARDED_BY(mu_) = 0;
  std::map<uint32_t, std::pair<uint32_t, uint32_t>> positions_
      VGPU_GUARDED_BY(mu_);
  std::map<uint32_t, uint32_t> clients_ VGPU_GUARDED_BY(mu_);  // by scanout
};

}  // namespace vgpu::vnc
