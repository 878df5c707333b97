#include "server/input/input_service.h"

#include <algorithm>
#include <atomic>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include <linux/input-event-codes.h>

#include "common/log.h"
#include "common/status_macros.h"
#include "server/grpc/grpc_status.h"
#include "server/grpc/stream_writer.h"
#include "server/input/key_translator.h"

namespace vgpu::server {
namespace {

namespace pb = vgpu::input::v1;
// What one unary call may carry: a page of text, a long key sequence.
constexpr int kMaxEventsPerCall = 4096;
constexpr size_t kMaxTextBytes = 16384;
using Packets = InputService::Packets;

// UTF-8 to code points; InvalidArgument on a malformed sequence.
absl::StatusOr<std::u32string> DecodeUtf8(const std::string& text) {
  std::u32string out;
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<uint8_t>(text[i]);
    const int length = byte < 0x80           ? 1
                       : (byte >> 5) == 0x6  ? 2
                       : (byte >> 4) == 0xe  ? 3
                       : (byte >> 3) == 0x1e ? 4
                                             : 0;
    if (length == 0 || i + length > text.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("text is not UTF-8 (byte ", i, ")"));
    }
    char32_t c = length == 1 ? byte : byte & (0x7f >> length);
    for (int k = 1; k < length; ++k) {
      const auto next = static_cast<uint8_t>(text[i + k]);
      if ((next >> 6) != 0x2) {
        return absl::InvalidArgumentError(
            absl::StrCat("text is not UTF-8 (byte ", i + k, ")"));
      }
      c = (c << 6) | (next & 0x3f);
    }
    out.push_back(c);
    i += length;
  }
  return out;
}

std::optional<uint16_t> ButtonCode(pb::Button button) {
  switch (button) {
    case pb::BUTTON_LEFT:
      return BTN_LEFT;
    case pb::BUTTON_RIGHT:
      return BTN_RIGHT;
    case pb::BUTTON_MIDDLE:
      return BTN_MIDDLE;
    case pb::BUTTON_SIDE:
      return BTN_SIDE;
    case pb::BUTTON_EXTRA:
      return BTN_EXTRA;
    default:
      return std::nullopt;
  }
}

// Scanout pixel `at` (clipped to 0..size-1) on the tablet's axis: the
// smallest axis value that the guest's own scaling (value * (size-1) /
// max, rounded down) maps back to `at`.
int32_t ToAxis(int64_t at, uint32_t size) {
  if (size <= 1) return 0;
  at = std::clamp<int64_t>(at, 0, size - 1);
  const int64_t span = size - 1;
  return static_cast<int32_t>(std::min<int64_t>(
      (at * input::kTabletAxisMax + span - 1) / span, input::kTabletAxisMax));
}

void SendError(const absl::Status& status, pb::StreamInputResponse* out) {
  out->mutable_error()->set_code(static_cast<int32_t>(status.code()));
  out->mutable_error()->set_message(std::string(status.message()));
}

// WatchLeds: the state now, then the latest after each change (a slow
// reader skips states, never queues them).
class LedWatcher final : public grpc::ServerWriteReactor<pb::LedState>,
                         public InputService::Watcher {
 public:
  explicit LedWatcher(InputService* service)
      : service_(service), writer_(this) {
    service_->BeginWork();
    service_->AddWatcher(this);  // the state now; changes follow
  }
  // One state in flight at a time, decided under mu_: a state taken by
  // OnWriteDone and a newer one from OnLeds can never be written out of
  // order.
  void OnLeds(const pb::LedState& leds) override {
    {
      MutexLock lock(&mu_);
      latest_ = leds;
      if (in_flight_) {
        dirty_ = true;
        return;
      }
      in_flight_ = true;
    }
    writer_.Write(leds);
  }
  void OnWriteDone(bool ok) override {
    if (!writer_.OnWriteDone(ok)) return;
    pb::LedState next;
    {
      MutexLock lock(&mu_);
      if (!dirty_) {
        in_flight_ = false;
        return;
      }
      dirty_ = false;
      next = latest_;
    }
    writer_.Write(next);
  }
  void OnCancel() override { writer_.Finish(grpc::Status::CANCELLED); }
  void OnDone() override {
    service_->RemoveWatcher(this);
    service_->EndWork();
    delete this;
  }

 private:
  InputService* const service_;
  StreamWriter<grpc::ServerWriteReactor<pb::LedState>, pb::LedState> writer_;
  Mutex mu_;
  pb::LedState latest_ VGPU_GUARDED_BY(mu_);
  bool in_flight_ VGPU_GUARDED_BY(mu_) = false;  // a state being written
  bool dirty_ VGPU_GUARDED_BY(mu_) = false;      // a newer one waits
};

// StreamInput: one request read at a time, answered in order; LED changes
// and loss of control come in between.
class InputStreamer final
    : public grpc::ServerBidiReactor<pb::StreamInputRequest,
                                     pb::StreamInputResponse>,
      public InputService::Watcher {
 public:
  InputStreamer(InputService* service, grpc::CallbackServerContext* context)
      : service_(service),
        peer_(context->peer()),
        authorized_(service->Authorize(context)),
        holder_(service->NewHolderId()),
        writer_(this) {
    service_->BeginWork();
    VGPU_LOG(INFO) << "input viewer (" << peer_ << ") connected";
    service_->AddWatcher(this);  // the state now; changes follow
    StartRead(&request_);
  }

  void OnLeds(const pb::LedState& leds) override {
    pb::StreamInputResponse response;
    *response.mutable_leds() = leds;
    Write(std::move(response));
  }
  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed or went away
      writer_.Finish(grpc::Status::OK);
      return;
    }
    Handle(request_);
    StartRead(&request_);
  }
  void OnWriteDone(bool ok) override {
    if (writer_.OnWriteDone(ok)) {
      MutexLock lock(&mu_);
      queued_ = 0;
    }
  }
  void OnCancel() override { writer_.Finish(grpc::Status::CANCELLED); }
  void OnDone() override {
    service_->RemoveWatcher(this);
    service_->Release(holder_);
    VGPU_LOG(INFO) << "input viewer (" << peer_ << ") left";
    service_->EndWork();
    delete this;
  }

 private:
  // Answers are few (one per request at most, LED changes), but a client
  // that sends without reading, or a guest that blinks its LEDs, could
  // queue them without end: past a bound they are dropped.
  void Write(pb::StreamInputResponse response) {
    {
      MutexLock lock(&mu_);
      if (queued_ >= 64) return;
      ++queued_;
    }
    writer_.Write(std::move(response));
  }

  void Handle(const pb::StreamInputRequest& request) {
    absl::Status status;
    switch (request.request_case()) {
      case pb::StreamInputRequest::kControl:
        status = TakeControl(request.control());
        break;
      case pb::StreamInputRequest::kKey:
        status = Key(request.key());
        break;
      case pb::StreamInputRequest::kPointer:
        status = Pointer(request.pointer());
        break;
      case pb::StreamInputRequest::kReleaseAll:
        service_->ReleaseAllAs(holder_);
        if (translator_) translator_->Forget();
        break;
      case pb::StreamInputRequest::kGiveUpControl:
        if (service_->Holds(holder_)) {
          service_->Release(holder_);
          if (translator_) translator_->Forget();
          pb::StreamInputResponse response;
          response.mutable_control()->set_controlling(false);
          response.mutable_control()->set_reason("given up");
          Write(std::move(response));
        }
        break;
      default:
        status = absl::InvalidArgumentError("an empty request");
        break;
    }
    if (!status.ok()) {
      pb::StreamInputResponse response;
      SendError(status, &response);
      Write(std::move(response));
    }
  }

  // Answers with a ControlState, granted or refused (and why).
  absl::Status TakeControl(const pb::Control& control) {
    absl::Status status = authorized_;
    if (status.ok() && service_->options().keyboard != nullptr) {
      const std::string layout =
          control.layout().empty() ? "us" : control.layout();
      absl::StatusOr<std::shared_ptr<const Keymap>> keymap =
          service_->keymaps().Get(layout, control.variant());
      if (!keymap.ok()) {
        // Nothing changes: control (held or not) and the layout stay.
        pb::StreamInputResponse response;
        response.mutable_control()->set_controlling(service_->Holds(holder_));
        response.mutable_control()->set_reason(
            absl::StrCat("refused: ", keymap.status().message()));
        Write(std::move(response));
        return absl::OkStatus();
      }
      // One translator for the stream: keys it holds down come up on the
      // key they went down on, whatever the layout now.
      if (translator_) {
        translator_->set_keymap(*keymap);
      } else {
        translator_.emplace(&service_->options().keyboard->spec(), *keymap);
      }
    }
    if (status.ok())
      status = service_->Acquire(
          holder_, Describe(control.viewer()), control.take(),
          [this](const std::string& taker) {
            lifted_ = true;  // the taker lifted what this stream held
            pb::StreamInputResponse response;
            response.mutable_control()->set_controlling(false);
            response.mutable_control()->set_reason(
                absl::StrCat("taken by ", taker));
            Write(std::move(response));
          });
    pb::StreamInputResponse response;
    response.mutable_control()->set_controlling(status.ok());
    response.mutable_control()->set_reason(
        status.ok() ? "granted" : absl::StrCat("refused: ", status.message()));
    Write(std::move(response));
    return absl::OkStatus();
  }

  // "<viewer> (<peer>)": the name a viewer gave, cut to 64 printable ASCII
  // characters (it goes into others' error messages and logs).
  std::string Describe(const std::string& viewer) const {
    std::string name;
    for (char c : viewer) {
      if (name.size() == 64) break;
      if (c >= 0x20 && c < 0x7f) name.push_back(c);
    }
    return name.empty() ? peer_ : absl::StrCat(name, " (", peer_, ")");
  }

  absl::Status CheckControl() {
    if (!service_->Holds(holder_)) {
      return absl::FailedPreconditionError(
          "this stream does not control input (send a Control first)");
    }
    return absl::OkStatus();
  }

  absl::Status Key(const pb::KeyEvent& key) {
    if (absl::Status status = CheckControl(); !status.ok()) return status;
    input::InputDevice* keyboard = service_->options().keyboard;
    if (keyboard == nullptr || !translator_) {
      return absl::FailedPreconditionError("no keyboard is served");
    }
    if (lifted_.exchange(false)) translator_->Forget();
    absl::StatusOr<std::vector<input::InputEvent>> events =
        translator_->Translate(key.code(), key.keysym(), key.down(),
                               service_->Locks());
    if (!events.ok()) return events.status();
    for (const input::InputEvent& event : *events) {
      if (absl::Status status =
              service_->SendAs(holder_, keyboard, {&event, 1});
          !status.ok())
        return status;
    }
    return absl::OkStatus();
  }

  absl::Status Pointer(const pb::PointerEvent& event) {
    if (absl::Status status = CheckControl(); !status.ok()) return status;
    absl::StatusOr<Packets> packets = service_->PointerPackets(event);
    if (!packets.ok()) return packets.status();
    for (auto& [device, packet] : *packets) {
      if (absl::Status status = service_->SendAs(holder_, device, packet);
          !status.ok())
        return status;
    }
    return absl::OkStatus();
  }

  InputService* const service_;
  const std::string peer_;
  const absl::Status authorized_;
  const uint64_t holder_;
  StreamWriter<InputStreamer, pb::StreamInputResponse> writer_;
  pb::StreamInputRequest request_;           // gRPC's while a read is in flight
  std::optional<KeyTranslator> translator_;  // reads are one at a time
  std::atomic<bool> lifted_{false};  // control was taken: keys were lifted
  Mutex mu_;
  size_t queued_ VGPU_GUARDED_BY(mu_) = 0;
};

}  // namespace

InputService::InputService(InputServiceOptions options)
    : options_(std::move(options)) {
  typist_ = std::thread([this] { RunTypist(); });
}

InputService::~InputService() {
  {
    MutexLock lock(&jobs_mu_);
    stopping_ = true;
    jobs_mu_.NotifyAll();
    jobs_mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return work_ == 0 && jobs_.empty();
    });
  }
  typist_.join();
}

void InputService::BeginWork() {
  MutexLock lock(&jobs_mu_);
  ++work_;
}

void InputService::EndWork() {
  MutexLock lock(&jobs_mu_);
  if (--work_ == 0) jobs_mu_.NotifyAll();
}

void InputService::Post(Job job) {
  MutexLock lock(&jobs_mu_);
  jobs_.push_back(std::move(job));
  jobs_mu_.NotifyAll();
}

void InputService::RunTypist() {
  while (true) {
    Job job;
    {
      MutexLock lock(&jobs_mu_);
      jobs_mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || !jobs_.empty();
      });
      if (jobs_.empty()) return;  // stopping, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
    MutexLock lock(&jobs_mu_);
    jobs_mu_.NotifyAll();  // the destructor waits for an empty queue
  }
}

void InputService::AddWatcher(Watcher* watcher) {
  // Under the lock that DevicesChanged reads the state under: no older
  // state can follow this one.
  MutexLock lock(&watchers_mu_);
  watchers_.insert(watcher);
  watcher->OnLeds(Leds());
}

void InputService::RemoveWatcher(Watcher* watcher) {
  MutexLock lock(&watchers_mu_);
  watchers_.erase(watcher);
}

pb::LedState InputService::Leds() const {
  pb::LedState out;
  if (options_.keyboard == nullptr) return out;
  const input::LedState leds = options_.keyboard->leds();
  auto lit = [&leds](int led) { return (leds.bits >> led) & 1; };
  out.set_num_lock(lit(LED_NUML));
  out.set_caps_lock(lit(LED_CAPSL));
  out.set_scroll_lock(lit(LED_SCROLLL));
  out.set_compose(lit(LED_COMPOSE));
  out.set_kana(lit(LED_KANA));
  out.set_changes(leds.changes);
  out.set_attached(options_.keyboard->attached());
  return out;
}

void InputService::DevicesChanged() {
  MutexLock lock(&watchers_mu_);
  const pb::LedState leds = Leds();
  for (Watcher* watcher : watchers_) watcher->OnLeds(leds);
}

LockState InputService::Locks() const {
  if (options_.keyboard == nullptr) return {};
  const uint32_t bits = options_.keyboard->leds().bits;
  return {.caps_lock = ((bits >> LED_CAPSL) & 1) != 0,
          .num_lock = ((bits >> LED_NUML) & 1) != 0};
}

absl::Status InputService::Authorize(
    grpc::CallbackServerContext* context) const {
  if (!options_.token.empty()) {
    const auto& metadata = context->client_metadata();
    auto it = metadata.find("authorization");
    const std::string expected = "Bearer " + options_.token;
    if (it == metadata.end() ||
        std::string(it->second.data(), it->second.size()) != expected) {
      return absl::PermissionDeniedError(
          "controlling input needs the daemon's token (metadata "
          "\"authorization: Bearer <token>\"; vgpu-input --token_file)");
    }
  }
  if (!options_.allowed_clients.empty()) {
    std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
    bool allowed = false;
    if (auth != nullptr) {
      for (const grpc::string_ref& name :
           auth->FindPropertyValues("x509_common_name")) {
        const std::string cn(name.data(), name.size());
        allowed = allowed || std::find(options_.allowed_clients.begin(),
                                       options_.allowed_clients.end(),
                                       cn) != options_.allowed_clients.end();
      }
    }
    if (!allowed) {
      return absl::PermissionDeniedError(absl::StrCat(
          "controlling input needs a client certificate whose common name "
          "is one of: ",
          absl::StrJoin(options_.allowed_clients, ", ")));
    }
  }
  return absl::OkStatus();
}

uint64_t InputService::NewHolderId() {
  MutexLock lock(&control_mu_);
  return ++next_holder_;
}

absl::Status InputService::Acquire(
    uint64_t holder, const std::string& peer, bool take,
    std::function<void(const std::string&)> lost) {
  MutexLock lock(&control_mu_);
  if (holder_ != 0 && holder_ != holder) {
    if (!take) {
      return absl::FailedPreconditionError(absl::StrCat(
          "input is controlled by ", holder_peer_,
          "; ask with take_control (vgpu-input --take) to take it"));
    }
    VGPU_LOG(INFO) << "input control taken from " << holder_peer_ << " by "
                   << peer;
    // What the old holder pressed must not stay down. Under the control
    // lock (then the devices'), so no holder's key lands in between; the
    // old holder is told under it too: a stream that leaves gives control
    // up (Release) under it, so it is never told after it is gone.
    ReleaseAllLocked();
    if (holder_lost_) holder_lost_(peer);
  }
  holder_ = holder;
  holder_peer_ = peer;
  holder_lost_ = std::move(lost);
  return absl::OkStatus();
}

void InputService::Release(uint64_t holder) {
  MutexLock lock(&control_mu_);
  if (holder_ != holder) return;
  holder_ = 0;
  holder_peer_.clear();
  holder_lost_ = nullptr;
  ReleaseAllLocked();
}

void InputService::ReleaseAllLocked() {
  for (input::InputDevice* device :
       {options_.keyboard, options_.tablet, options_.mouse}) {
    if (device != nullptr) device->ReleaseAll();
  }
}

bool InputService::Holds(uint64_t holder) const {
  MutexLock lock(&control_mu_);
  return holder_ == holder;
}

absl::Status InputService::SendAs(uint64_t holder, input::InputDevice* device,
                                  absl::Span<const input::InputEvent> packet) {
  // Checked and queued under the control lock, which a taker holds while it
  // lifts the old holder's keys: nothing of the old holder lands after.
  MutexLock lock(&control_mu_);
  if (holder_ != holder)
    return absl::AbortedError("another caller took control of input");
  return device->Send(packet);
}

void InputService::ReleaseAllAs(uint64_t holder) {
  MutexLock lock(&control_mu_);
  if (holder_ == holder) ReleaseAllLocked();
}

absl::StatusOr<Packets> InputService::PointerPackets(
    const pb::PointerEvent& event) const {
  Packets out;
  if (event.has_x() || event.has_y()) {
    if (options_.tablet == nullptr) {
      return absl::FailedPreconditionError(
          "no tablet is served (vgpu-displayd --tablet_socket)");
    }
    std::optional<std::pair<uint32_t, uint32_t>> size =
        options_.scanout_size ? options_.scanout_size(event.scanout_id())
                              : std::nullopt;
    if (!size) {
      return absl::FailedPreconditionError(
          absl::StrCat("scanout ", event.scanout_id(), " shows nothing"));
    }
    std::vector<input::InputEvent> move;
    if (event.has_x())
      move.push_back({EV_ABS, ABS_X, ToAxis(event.x(), size->first)});
    if (event.has_y())
      move.push_back({EV_ABS, ABS_Y, ToAxis(event.y(), size->second)});
    out.emplace_back(options_.tablet, std::move(move));
  }
  if (event.dx() != 0 || event.dy() != 0) {
    if (options_.mouse == nullptr) {
      return absl::FailedPreconditionError(
          "no mouse is served for relative motion (vgpu-displayd "
          "--mouse_socket)");
    }
    std::vector<input::InputEvent> move;
    if (event.dx() != 0) move.push_back({EV_REL, REL_X, event.dx()});
    if (event.dy() != 0) move.push_back({EV_REL, REL_Y, event.dy()});
    out.emplace_back(options_.mouse, std::move(move));
  }
  input::InputDevice* buttons =
      options_.tablet != nullptr ? options_.tablet : options_.mouse;
  const bool wants_buttons = event.button() != pb::BUTTON_UNSPECIFIED ||
                             event.wheel() != 0 || event.hwheel() != 0;
  if (wants_buttons && buttons == nullptr) {
    return absl::FailedPreconditionError("no tablet or mouse is served");
  }
  if (event.button() != pb::BUTTON_UNSPECIFIED) {
    std::optional<uint16_t> code = ButtonCode(event.button());
    if (!code) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown button ", event.button()));
    }
    out.push_back({buttons, {{EV_KEY, *code, event.button_down() ? 1 : 0}}});
  }
  // Notches and their hi-res form together (120 per notch), as a mouse
  // with a hi-res wheel reports them.
  constexpr int32_t kMaxNotches =
      std::numeric_limits<int32_t>::max() / input::kHiResPerNotch;
  std::vector<input::InputEvent> wheel;
  for (const auto& [notches, code, hires] :
       {std::tuple{event.wheel(), REL_WHEEL, REL_WHEEL_HI_RES},
        std::tuple{event.hwheel(), REL_HWHEEL, REL_HWHEEL_HI_RES}}) {
    if (notches == 0) continue;
    const int32_t n = std::clamp(notches, -kMaxNotches, kMaxNotches);
    wheel.push_back({EV_REL, static_cast<uint16_t>(code), n});
    wheel.push_back(
        {EV_REL, static_cast<uint16_t>(hires), n * input::kHiResPerNotch});
  }
  if (!wheel.empty()) out.emplace_back(buttons, std::move(wheel));
  return out;
}

grpc::ServerUnaryReactor* InputService::Start(
    grpc::CallbackServerContext* context, bool take,
    const std::function<absl::StatusOr<Packets>()>& build,
    OnSuccess on_success) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = Authorize(context);
  absl::StatusOr<Packets> packets =
      status.ok() ? build() : absl::StatusOr<Packets>(status);
  if (status.ok()) status = packets.status();
  const uint64_t holder = NewHolderId();
  if (status.ok()) status = Acquire(holder, context->peer(), take, nullptr);
  if (!status.ok()) {
    reactor->Finish(ToGrpc(status));
    return reactor;
  }
  Play(context, reactor, holder, *std::move(packets), std::move(on_success));
  return reactor;
}

void InputService::Play(grpc::CallbackServerContext* context,
                        grpc::ServerUnaryReactor* reactor, uint64_t holder,
                        Packets packets, OnSuccess on_success) {
  Post([this, context, reactor, holder, packets = std::move(packets),
        on_success = std::move(on_success)] {
    const absl::Time deadline = absl::Now() + options_.call_timeout;
    absl::Status status;
    // Lock keys pressed: the call ends once the guest reported its new
    // LEDs, so that the next call (TypeText after --key=capslock) types for
    // the locks as they are.
    int lock_presses = 0;
    const uint64_t leds_before =
        options_.keyboard != nullptr ? options_.keyboard->leds().changes : 0;
    for (const auto& [device, packet] : packets) {
      for (const input::InputEvent& event : packet) {
        if (device == options_.keyboard && event.type == EV_KEY &&
            event.value == 1 &&
            (event.code == KEY_CAPSLOCK || event.code == KEY_NUMLOCK ||
             event.code == KEY_SCROLLLOCK))
          ++lock_presses;
      }
      if (context->IsCancelled()) {
        status = absl::CancelledError("the call was cancelled");
        break;
      }
      // While the guest's queue is full, wait for room outside the control
      // lock, in slices, so a cancelled call (or a daemon shutting down)
      // does not wait out the deadline for a guest that takes nothing.
      while (true) {
        status = SendAs(holder, device, packet);
        if (!absl::IsResourceExhausted(status) || absl::Now() >= deadline ||
            context->IsCancelled())
          break;
        device->WaitForRoom(
            packet.size(),
            std::min(deadline, absl::Now() + absl::Milliseconds(100)));
      }
      if (!status.ok()) break;
    }
    // A guest reports within milliseconds; one that does not (no LEDs,
    // a lock key it ignores) costs at most 250 ms.
    const absl::Time led_deadline =
        std::min(deadline, absl::Now() + absl::Milliseconds(250));
    uint64_t seen = leds_before;
    for (int i = 0; status.ok() && i < lock_presses; ++i) {
      std::optional<input::LedState> leds =
          options_.keyboard->WaitForLeds(seen, led_deadline);
      if (!leds) break;
      seen = leds->changes;
    }
    Release(holder);
    if (status.ok() && on_success) on_success(packets.size());
    reactor->Finish(ToGrpc(status));
  });
}

grpc::ServerUnaryReactor* InputService::SendKeys(
    grpc::CallbackServerContext* context, const pb::SendKeysRequest* request,
    pb::SendKeysResponse*) {
  auto build = [&]() -> absl::StatusOr<Packets> {
    if (request->keys_size() > kMaxEventsPerCall) {
      return absl::InvalidArgumentError(
          absl::StrCat("at most ", kMaxEventsPerCall, " keys a call"));
    }
    if (options_.keyboard == nullptr) {
      return absl::FailedPreconditionError(
          "no keyboard is served (vgpu-displayd --keyboard_socket)");
    }
    absl::StatusOr<std::shared_ptr<const Keymap>> keymap =
        keymaps_.Get("us", "");
    if (!keymap.ok()) return keymap.status();
    KeyTranslator translator(&options_.keyboard->spec(), *keymap);
    Packets out;
    for (const pb::KeyEvent& key : request->keys()) {
      absl::StatusOr<std::vector<input::InputEvent>> events =
          translator.Translate(key.code(), key.keysym(), key.down(), Locks());
      if (!events.ok()) return events.status();
      for (const input::InputEvent& event : *events)
        out.push_back({options_.keyboard, {event}});
    }
    return out;
  };
  return Start(context, request->take_control(), build);
}

grpc::ServerUnaryReactor* InputService::TypeText(
    grpc::CallbackServerContext* context, const pb::TypeTextRequest* request,
    pb::TypeTextResponse* response) {
  auto build = [&]() -> absl::StatusOr<Packets> {
    if (request->text().size() > kMaxTextBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("at most ", kMaxTextBytes, " bytes of text a call"));
    }
    if (options_.keyboard == nullptr) {
      return absl::FailedPreconditionError(
          "no keyboard is served (vgpu-displayd --keyboard_socket)");
    }
    absl::StatusOr<std::u32string> text = DecodeUtf8(request->text());
    if (!text.ok()) return text.status();
    absl::StatusOr<std::shared_ptr<const Keymap>> keymap =
        keymaps_.Get(request->layout().empty() ? "us" : request->layout(),
                     request->variant());
    if (!keymap.ok()) return keymap.status();
    KeyTranslator translator(&options_.keyboard->spec(), *keymap);
    const LockState locks = Locks();
    Packets out;
    for (char32_t c : *text) {
      absl::StatusOr<std::vector<input::InputEvent>> events =
          translator.Type(c, locks);
      if (!events.ok()) return events.status();
      for (const input::InputEvent& event : *events)
        out.push_back({options_.keyboard, {event}});
    }
    return out;
  };
  return Start(context, request->take_control(), build,
               [response](size_t packets) {
                 response->set_key_events(static_cast<uint32_t>(packets));
               });
}

grpc::ServerUnaryReactor* InputService::SendPointer(
    grpc::CallbackServerContext* context, const pb::SendPointerRequest* request,
    pb::SendPointerResponse*) {
  auto build = [&]() -> absl::StatusOr<Packets> {
    if (request->events_size() > kMaxEventsPerCall) {
      return absl::InvalidArgumentError(absl::StrCat(
          "at most ", kMaxEventsPerCall, " pointer events a call"));
    }
    Packets out;
    for (const pb::PointerEvent& event : request->events()) {
      absl::StatusOr<Packets> more = PointerPackets(event);
      if (!more.ok()) return more.status();
      for (auto& packet : *more) out.push_back(std::move(packet));
    }
    return out;
  };
  return Start(context, request->take_control(), build);
}

grpc::ServerWriteReactor<pb::LedState>* InputService::WatchLeds(
    grpc::CallbackServerContext*, const pb::WatchLedsRequest*) {
  return new LedWatcher(this);
}

grpc::ServerUnaryReactor* InputService::GetInputState(
    grpc::CallbackServerContext* context, const pb::GetInputStateRequest*,
    pb::InputState* response) {
  const std::pair<const char*, input::InputDevice*> devices[] = {
      {"keyboard", options_.keyboard},
      {"tablet", options_.tablet},
      {"mouse", options_.mouse}};
  for (const auto& [kind, device] : devices) {
    pb::Device* d = response->add_devices();
    d->set_kind(kind);
    d->set_served(device != nullptr);
    d->set_attached(device != nullptr && device->attached());
    if (device != nullptr)
      d->set_pressed(static_cast<uint32_t>(device->pressed()));
  }
  {
    MutexLock lock(&control_mu_);
    response->set_controller(holder_peer_);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<pb::StreamInputRequest, pb::StreamInputResponse>*
InputService::StreamInput(grpc::CallbackServerContext* context) {
  return new InputStreamer(this, context);
}

}  // namespace vgpu::server
