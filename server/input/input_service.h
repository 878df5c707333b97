// vgpu.input.v1.Input over gRPC's callback API, in front of the daemon's
// virtio-input devices (input.proto says what each call does, and the
// control and authorization rules).
//
// Threads: handlers run on gRPC's threads and never block. Unary calls are
// played in order by one typist thread, which may wait for the guest to
// take events (InputDevice::WaitForRoom, up to `call_timeout`). Stream
// events are sent from gRPC's threads (InputDevice::Send, no waiting).
// Locks: control_mu_ before a device's; watchers_mu_ before a device's. LED
// changes arrive from the device thread (DevicesChanged).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "vgpu/input/v1/input.grpc.pb.h"

#include "common/mutex.h"
#include "device/input/input_device.h"
#include "server/input/keymap.h"

namespace vgpu::server {

struct InputServiceOptions {
  // The devices served (null: not served). They outlive the service.
  input::InputDevice* keyboard = nullptr;
  input::InputDevice* tablet = nullptr;
  input::InputDevice* mouse = nullptr;
  // A scanout's size in pixels, or nullopt when it shows nothing.
  std::function<std::optional<std::pair<uint32_t, uint32_t>>(uint32_t)>
      scanout_size;
  // Controlling needs "authorization: Bearer <token>" when set.
  std::string token;
  // Controlling needs a client certificate with one of these common names
  // when not empty (mutual TLS).
  std::vector<std::string> allowed_clients;
  // How long a unary call may wait for the guest to take its events.
  absl::Duration call_timeout = absl::Seconds(30);
};

// Thread-safe.
class InputService final : public vgpu::input::v1::Input::CallbackService {
 public:
  explicit InputService(InputServiceOptions options);
  // The gRPC server is shut down first; waits for the typist and streams.
  ~InputService() override;

  grpc::ServerUnaryReactor* SendKeys(
      grpc::CallbackServerContext* context,
      const vgpu::input::v1::SendKeysRequest* request,
      vgpu::input::v1::SendKeysResponse* response) override;
  grpc::ServerUnaryReactor* TypeText(
      grpc::CallbackServerContext* context,
      const vgpu::input::v1::TypeTextRequest* request,
      vgpu::input::v1::TypeTextResponse* response) override;
  grpc::ServerUnaryReactor* SendPointer(
      grpc::CallbackServerContext* context,
      const vgpu::input::v1::SendPointerRequest* request,
      vgpu::input::v1::SendPointerResponse* response) override;
  grpc::ServerWriteReactor<vgpu::input::v1::LedState>* WatchLeds(
      grpc::CallbackServerContext* context,
      const vgpu::input::v1::WatchLedsRequest* request) override;
  grpc::ServerUnaryReactor* GetInputState(
      grpc::CallbackServerContext* context,
      const vgpu::input::v1::GetInputStateRequest* request,
      vgpu::input::v1::InputState* response) override;
  grpc::ServerBidiReactor<vgpu::input::v1::StreamInputRequest,
                          vgpu::input::v1::StreamInputResponse>*
  StreamInput(grpc::CallbackServerContext* context) override;

  // A device's LEDs or attachment changed (the device's observer).
  void DevicesChanged();

  // For the reactors (input_streams.cc).
  class Watcher {
   public:
    virtual ~Watcher() = default;
    // Must return quickly; called with the service's watcher lock held.
    virtual void OnLeds(const vgpu::input::v1::LedState& leds) = 0;
  };
  // Tells `watcher` the state now, then every change until removed.
  void AddWatcher(Watcher* watcher);
  void RemoveWatcher(Watcher* watcher);
  vgpu::input::v1::LedState Leds() const;
  // PERMISSION_DENIED unless the caller may control input.
  absl::Status Authorize(grpc::CallbackServerContext* context) const;
  // Control: one holder at a time. `lost(taker)` is called when another
  // takes it, under the control lock: it must return quickly and not call
  // back into the service.
  absl::Status Acquire(uint64_t holder, const std::string& peer, bool take,
                       std::function<void(const std::string&)> lost);
  // Gives control up (if held) and releases what is pressed.
  void Release(uint64_t holder);
  bool Holds(uint64_t holder) const;
  // Queues `packet` on `device` (InputDevice::Send) if `holder` controls
  // input, atomically with that check; Aborted if it does not.
  absl::Status SendAs(uint64_t holder, input::InputDevice* device,
                      absl::Span<const input::InputEvent> packet);
  // Lifts every key and button if `holder` controls input.
  void ReleaseAllAs(uint64_t holder);
  // The guest's CapsLock and NumLock, from its keyboard LEDs.
  LockState Locks() const;
  uint64_t NewHolderId();
  // Lifts every key and button (each device's ReleaseAll).
  void ReleaseAllLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_);
  KeymapCache& keymaps() { return keymaps_; }
  const InputServiceOptions& options() const { return options_; }
  // Packets (events without SYN_REPORT), each with its device.
  using Packets = std::vector<
      std::pair<input::InputDevice*, std::vector<input::InputEvent>>>;
  // The packets one pointer event makes.
  absl::StatusOr<Packets> PointerPackets(
      const vgpu::input::v1::PointerEvent& event) const;
  void BeginWork();
  void EndWork();

 private:
  using Job = std::function<void()>;
  void Post(Job job);
  void RunTypist();
  // Called with the number of packets a call played, once all went out.
  using OnSuccess = std::function<void(size_t packets)>;
  // Runs `packets` for `holder` on the typist thread, then releases
  // control and finishes `reactor` with the outcome.
  void Play(grpc::CallbackServerContext* context,
            grpc::ServerUnaryReactor* reactor, uint64_t holder, Packets packets,
            OnSuccess on_success);
  // A unary call: the caller is authorized before `build` reads its
  // request (an unauthorized caller costs no work), then control is taken
  // and the packets played.
  grpc::ServerUnaryReactor* Start(
      grpc::CallbackServerContext* context, bool take,
      const std::function<absl::StatusOr<Packets>()>& build,
      OnSuccess on_success = nullptr);

  const InputServiceOptions options_;
  KeymapCache keymaps_;

  mutable Mutex control_mu_;
  uint64_t holder_ VGPU_GUARDED_BY(control_mu_) = 0;
  std::string holder_peer_ VGPU_GUARDED_BY(control_mu_);
  std::function<void(const std::string&)> holder_lost_
      VGPU_GUARDED_BY(control_mu_);
  uint64_t next_holder_ VGPU_GUARDED_BY(control_mu_) = 0;

  Mutex watchers_mu_;
  std::set<Watcher*> watchers_ VGPU_GUARDED_BY(watchers_mu_);

  Mutex jobs_mu_;
  std::deque<Job> jobs_ VGPU_GUARDED_BY(jobs_mu_);
  bool stopping_ VGPU_GUARDED_BY(jobs_mu_) = false;
  uint64_t work_ VGPU_GUARDED_BY(jobs_mu_) = 0;  // streams open
  std::thread typist_;
};

}  // namespace vgpu::server
