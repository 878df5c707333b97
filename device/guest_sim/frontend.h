// A vhost-user front-end that plays the VMM: it connects to a vhost-user
// GPU back-end (vgpu-displayd, or QEMU's reference vhost-user-gpu), shares
// memfd guest RAM, negotiates features, sets up both rings with kick and
// call eventfds and hands over a display socket whose QEMU side it serves.
// The guest driver on top is a SimulatedGuest whose kicks go over the wire.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "device/guest_sim/simulated_guest.h"
#include "device/guest_sim/vhost_user_link.h"
#include "device/vhost_user/message.h"

namespace vgpu::synth {

struct FrontendOptions {
  std::string socket_path;
  guest_sim::SimulatedGuestOptions guest;
  // How long to wait for the back-end to return buffers.
  absl::Duration timeout = absl::Seconds(10);
  // When set and true, waits for the back-end end at once (checked every
  // 100 ms): a guest in the back-end's own process stops with it.
  const std::atomic<bool>* cancel = nullptr;
  // Offer blob resources to the "guest" if the back-end has them.
  bool use_blob = false;
  // Play QEMU's side of the display socket (false: never read it, like a
  // stuck VMM, so the back-end's writes pile up).
  bool serve_display = true;
  // The display's mode as QEMU would report it over the display socket.
  uint32_t display_width = 1280;
  uint32_t display_height = 800;
};

// What came back over the display socket (the QEMU side of it).
struct DisplayChannelStats {
  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> scanouts{0};
  std::atomic<uint64_t> updates{0};
  std::atomic<uint64_t> update_bytes{0};
  std::atomic<uint64_t> cursor_messages{0};
};

// Thread-compatible, except the display-socket thread it runs internally.
class VhostUserFrontend {
 public:
  static absl::StatusOr<std::unique_ptr<VhostUserFrontend>> Connect(
      FrontendOptions options);
  ~VhostUserFrontend();

  guest_sim::SimulatedGuest& guest() { return *guest_; }
  uint64_t negotiated_features() const { return features_; }
  uint32_t num_scanouts() const { return num_scanouts_; }
  const DisplayChannelStats& display_stats() const { return display_stats_; }

  // Stops both rings (GET_VRING_BASE) as QEMU does on a guest reset; returns
  // the control queue's next avail index.
  absl::StatusOr<uint32_t> StopRings();
  // A guest reboot as QEMU presents it: rings stopped, then a fresh driver
  // (new rings from index 0, new display socket) started on the same
  // connection. guest() is the new driver afterwards.
  absl::Status Reboot();
  // Closes the connection (the back-end sees the VMM go away).
  void Disconnect();
  // Closes only our end of the display socket (the back-end gets EPIPE).
  void CloseDisplayChannel();

 private:
  explicit VhostUserFrontend(FrontendOptions options)
      : options_(std::move(options)) {}
  absl::Status Handshake();
  absl::Status StartDevice();
  void ServeDisplay();

  FrontendOptions options_;
  std::unique_ptr<guest_sim::VhostUserLink> link_;
  std::unique_ptr<guest_sim::SimulatedGuest> guest_;
  vhost_user::Fd display_, display_peer_;
  std::thread display_thread_;
  std::atomic<bool> stopping_{false};
  DisplayChannelStats display_stats_;
  uint64_t features_ = 0;
  uint32_t num_scanouts_ = 0;
};

}  // namespace vgpu::synth
