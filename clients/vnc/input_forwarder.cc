#include "clients/vnc/input_forwarder.h"

#include <algorithm>
#include <utility>

#include "clients/vnc/xt_keycodes.h"
#include "common/log.h"

namespace vgpu::vnc {
namespace {

namespace pb = vgpu::input::v1;

class ScreenInput : public VncInput {
 public:
  ScreenInput(InputForwarder* forwarder, uint32_t scanout)
      : forwarder_(forwarder), scanout_(scanout) {}
  void OnKey(bool down, uint32_t keysym) override {
    forwarder_->Key(down, keysym, 0);
  }
  void OnExtendedKey(bool down, uint32_t keysym, uint32_t keycode,
                     bool follows_leds) override {
    forwarder_->Key(down, keysym, keycode, !follows_leds);
  }
  void OnPointer(uint32_t buttons, uint32_t x, uint32_t y) override {
    forwarder_->Pointer(scanout_, buttons, x, y);
  }
  void OnClients(uint32_t clients, bool left) override {
    forwarder_->ClientsChanged(scanout_, clients, left);
  }

 private:
  InputForwarder* const forwarder_;
  const uint32_t scanout_;
};

}  // namespace

InputForwarder::InputForwarder(std::shared_ptr<grpc::Channel> channel,
                               InputForwarderOptions options)
    : channel_(std::move(channel)),
      stub_(pb::Input::NewStub(channel_)),
      options_(std::move(options)) {}

InputForwarder::~InputForwarder() { Stop(); }

void InputForwarder::Start() {
  thread_ = std::thread([this] { Run(); });
}

void InputForwarder::Stop() {
  {
    // Not mu_: a writer may hold it in a Write the cancel ends.
    MutexLock lock(&stop_mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
    stop_mu_.NotifyAll();
  }
  if (thread_.joinable()) thread_.join();
}

std::unique_ptr<VncInput> InputForwarder::ForScanout(uint32_t scanout) {
  return std::make_unique<ScreenInput>(this, scanout);
}

bool InputForwarder::connected() const {
  MutexLock lock(&mu_);
  return stream_ != nullptr;
}

bool InputForwarder::Write(const pb::StreamInputRequest& request) {
  if (stream_ == nullptr) {
    stats_.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // A failed write means the stream is ending: the reader reconnects.
  return stream_->Write(request);
}

bool InputForwarder::Send(const pb::StreamInputRequest& request) {
  if (stream_ == nullptr) {
    stats_.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (lost_.exchange(false)) asked_ = false;
  if (!asked_) {
    pb::StreamInputRequest control;
    control.mutable_control()->set_take(options_.take);
    control.mutable_control()->set_layout(options_.layout);
    control.mutable_control()->set_variant(options_.variant);
    control.mutable_control()->set_viewer("vgpu-vnc: VNC and browser console");
    if (!Write(control)) return false;
    asked_ = true;
  }
  return Write(request);
}

void InputForwarder::Key(bool down, uint32_t keysym, uint32_t xt,
                         bool sync_locks) {
  pb::StreamInputRequest request;
  pb::KeyEvent* key = request.mutable_key();
  key->set_down(down);
  std::optional<uint16_t> code = xt != 0 ? XtToEvdev(xt) : std::nullopt;
  if (code) {
    key->set_code(*code);
  } else {
    key->set_keysym(keysym);
  }
  stats_.keys.fetch_add(1, std::memory_order_relaxed);
  MutexLock lock(&mu_);
  if (code) {
    if (*code == KEY_LEFTSHIFT || *code == KEY_RIGHTSHIFT) {
      if (down) {
        shift_down_.insert(*code);
      } else {
        shift_down_.erase(*code);
      }
    }
    if (down && sync_locks) SyncLocks(*code, keysym);
    // The client's own lock key: the guest toggles it.
    for (Lock* toggled : {&caps_, &num_}) {
      if (down && *code == toggled->code) {
        Assume(*toggled, !LockOn(*toggled));
      }
    }
  }
  Send(request);
}

bool InputForwarder::LockOn(Lock& lock) {
  const bool reported = (led_bits_.load() & lock.led) != 0;
  // The guest reported the toggle, or never will (the press was refused,
  // the guest was not there): the report is the truth again.
  if (lock.assumed &&
      (reported == lock.assumed_on || absl::Now() >= lock.assumed_until))
    lock.assumed = false;
  return lock.assumed ? lock.assumed_on : reported;
}

void InputForwarder::Assume(Lock& lock, bool on) {
  lock.assumed = true;
  lock.assumed_on = on;
  lock.assumed_until = absl::Now() + kLockReportWait;
}

void InputForwarder::SetLock(Lock& lock, bool on) {
  if (LockOn(lock) == on) return;
  for (bool down : {true, false}) {
    pb::StreamInputRequest press;
    press.mutable_key()->set_code(lock.code);
    press.mutable_key()->set_down(down);
    if (!Send(press)) return;
  }
  Assume(lock, on);
}

void InputForwarder::SyncLocks(uint16_t code, uint32_t keysym) {
  // Letters: their case is what the client's keyboard typed; CapsLock
  // inverts Shift for them in the guest.
  const bool upper = keysym >= 'A' && keysym <= 'Z';
  const bool lower = keysym >= 'a' && keysym <= 'z';
  if (upper || lower) SetLock(caps_, upper != !shift_down_.empty());
  // The keypad's digit keys (KEY_KP7..KEY_KPDOT, less minus and plus) type
  // digits with NumLock on, cursor keys with it off.
  if (code < KEY_KP7 || code > KEY_KPDOT || code == KEY_KPMINUS ||
      code == KEY_KPPLUS)
    return;
  if ((keysym >= 0xffb0 && keysym <= 0xffb9) || keysym == 0xffae) {
    SetLock(num_, true);  // KP_0..KP_9, KP_Decimal
  } else if (keysym >= 0xff95 && keysym <= 0xff9f) {
    SetLock(num_, false);  // KP_Home..KP_Delete
  }
}

void InputForwarder::Pointer(uint32_t scanout, uint32_t buttons, uint32_t x,
                             uint32_t y) {
  stats_.pointer_events.fetch_add(1, std::memory_order_relaxed);
  MutexLock lock(&mu_);
  auto [at, added] = positions_.try_emplace(scanout, x, y);
  if (added || at->second != std::pair{x, y}) {
    at->second = {x, y};
    pb::StreamInputRequest move;
    move.mutable_pointer()->set_x(static_cast<int32_t>(x));
    move.mutable_pointer()->set_y(static_cast<int32_t>(y));
    move.mutable_pointer()->set_scanout_id(scanout);
    if (!Send(move)) return;
  }
  const uint32_t changed = buttons ^ buttons_;
  buttons_ = buttons;
  static constexpr pb::Button kButtons[] = {pb::BUTTON_LEFT, pb::BUTTON_MIDDLE,
                                            pb::BUTTON_RIGHT};
  for (int bit = 0; bit < 3; ++bit) {
    if (!(changed & (1u << bit))) continue;
    pb::StreamInputRequest press;
    press.mutable_pointer()->set_button(kButtons[bit]);
    press.mutable_pointer()->set_button_down((buttons >> bit) & 1);
    if (!Send(press)) return;
  }
  // Wheel "buttons" count on their press: one notch each.
  const uint32_t pressed = changed & buttons;
  pb::StreamInputRequest wheel;
  if (pressed & (1u << 3)) wheel.mutable_pointer()->set_wheel(1);
  if (pressed & (1u << 4)) wheel.mutable_pointer()->set_wheel(-1);
  if (pressed & (1u << 5)) wheel.mutable_pointer()->set_hwheel(-1);
  if (pressed & (1u << 6)) wheel.mutable_pointer()->set_hwheel(1);
  if (wheel.has_pointer()) Send(wheel);
}

void InputForwarder::ClientsChanged(uint32_t scanout, uint32_t clients,
                                    bool left) {
  MutexLock lock(&mu_);
  clients_[scanout] = clients;
  const bool any =
      std::any_of(clients_.begin(), clients_.end(),
                  [](const auto& entry) { return entry.second > 0; });
  if (any) {
    // Which keys were the leaver's is not known here: all are lifted (as a
    // viewer that leaves mid-keystroke must not leave one repeating), and
    // those still typing press theirs again.
    if (left && asked_) {
      pb::StreamInputRequest release;
      release.set_release_all(true);
      Write(release);
      buttons_ = 0;
      shift_down_.clear();
    }
    return;
  }
  buttons_ = 0;
  positions_.clear();
  if (!asked_) return;
  pb::StreamInputRequest give_up;
  give_up.set_give_up_control(true);
  Write(give_up);
  asked_ = false;
  lost_ = false;
}

void InputForwarder::Handle(const pb::StreamInputResponse& response) {
  switch (response.response_case()) {
    case pb::StreamInputResponse::kLeds: {
      const pb::LedState& leds = response.leds();
      const auto bits = static_cast<uint8_t>((leds.scroll_lock() ? 1 : 0) |
                                             (leds.num_lock() ? 2 : 0) |
                                             (leds.caps_lock() ? 4 : 0));
      led_bits_ = bits;
      if (options_.leds) options_.leds(bits);
      break;
    }
    case pb::StreamInputResponse::kControl:
      // Given up is our own doing (ClientsChanged forgot control then);
      // lost or refused: the next event asks again. Not under mu_, which a
      // writer holds across a blocking Write.
      if (!response.control().controlling() &&
          response.control().reason() != "given up") {
        lost_ = true;
        stats_.control_lost.fetch_add(1, std::memory_order_relaxed);
        VGPU_LOG(INFO) << "input: no control of the guest's input ("
                       << response.control().reason() << ")";
      }
      break;
    case pb::StreamInputResponse::kError: {
      const auto code = static_cast<grpc::StatusCode>(response.error().code());
      // Not in control (a loss whose notice was dropped, control taken in
      // between): the next event asks again.
      if (code == grpc::StatusCode::FAILED_PRECONDITION ||
          code == grpc::StatusCode::ABORTED)
        lost_ = true;
      // Once per kind of refusal in a row, not once per key typed.
      const uint64_t refused =
          stats_.refused.fetch_add(1, std::memory_order_relaxed);
      if (response.error().message() != last_refusal_ || refused == 0) {
        last_refusal_ = response.error().message();
        VGPU_LOG(WARNING) << "input: the daemon refused an event: "
                          << response.error().message();
      }
      break;
    }
    default:
      break;
  }
}

void InputForwarder::Run() {
  absl::Duration backoff = options_.min_backoff;
  bool warned = false;
  while (true) {
    grpc::ClientContext context;
    if (!options_.token.empty())
      context.AddMetadata("authorization", "Bearer " + options_.token);
    std::unique_ptr<grpc::ClientReaderWriter<pb::StreamInputRequest,
                                             pb::StreamInputResponse>>
        stream;
    {
      MutexLock lock(&stop_mu_);
      if (stopping_) return;
      context_ = &context;  // a Stop from now on cancels the call
    }
    stream = stub_->StreamInput(&context);
    {
      // A new stream holds nothing: what the old one pressed was lifted
      // when it ended.
      MutexLock lock(&mu_);
      stream_ = stream.get();
      asked_ = false;
      lost_ = false;
      buttons_ = 0;
      positions_.clear();
      shift_down_.clear();
      caps_.assumed = num_.assumed = false;
      led_bits_ = 0;  // until the new stream's first LED state
    }
    pb::StreamInputResponse response;
    bool any = false;
    while (stream->Read(&response)) {
      if (!any) {
        VGPU_LOG(INFO) << "input: forwarding VNC keys and pointer to the "
                          "daemon's Input service";
        any = true;
        warned = false;
        backoff = options_.min_backoff;
      }
      Handle(response);
    }
    {
      // Waits for a Write in flight; the call has ended, so it fails.
      MutexLock lock(&mu_);
      stream_ = nullptr;
    }
    {
      MutexLock lock(&stop_mu_);
      context_ = nullptr;
    }
    grpc::Status status = stream->Finish();
    if (!warned) {
      VGPU_LOG(WARNING) << "input: no stream to the daemon's Input service ("
                        << status.error_message() << "); retrying";
      warned = true;
    }
    MutexLock lock(&stop_mu_);
    if (stopping_) return;
    stop_mu_.AwaitUntil(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_; },
        absl::ToChronoTime(absl::Now() + backoff));
    if (stopping_) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace vgpu::vnc
