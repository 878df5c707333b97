// A virtio-input driver in a box, over vhost-user: it plays QEMU 10's
// vhost-user-input (two rings of 4 entries, whole-config SET_CONFIG /
// GET_CONFIG at offset 0) and the Linux driver on top
// (drivers/virtio/virtio_input.c: the config probe in its order, one 8-byte
// buffer per event, status events one per buffer). For tests, the daemon's
// demo guest and vgpu-synth-guest.
#pragma once

#include <linux/virtio_input.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

#include "device/guest_sim/vhost_user_link.h"
#include "device/input/input_config.h"
#include "device/input/input_device.h"
#include "device/virtio/driver_queue.h"
#include "device/virtio/guest_memory.h"

namespace vgpu::guest_sim {

struct InputDriverOptions {
  std::string socket_path;
  uint16_t queue_size = 4;  // QEMU 10's vhost-user-input has no other
  // How long a config probe or a status event may wait for the back-end.
  absl::Duration timeout = absl::Seconds(10);
  // When set and true, waits end at once (checked every 100 ms).
  const std::atomic<bool>* cancel = nullptr;
};

// What the probe read from config space.
struct ProbedInputDevice {
  std::string name;
  std::string serial;
  virtio_input_devids ids{};
  input::Bitmap properties{};
  bool repeat = false;                      // EV_REP size non-zero
  std::map<uint8_t, input::Bitmap> events;  // EV types with size > 0
  std::map<uint8_t, virtio_input_absinfo> axes;
  uint32_t config_requests = 0;  // GET_CONFIG + SET_CONFIG sent

  bool Has(uint16_t type, uint16_t code) const;
};

// Thread-compatible.
class VirtioInputDriver {
 public:
  // Connects, negotiates (refusing a device without VERSION_1, as Linux
  // does), probes config, starts both rings and posts the event buffers.
  static absl::StatusOr<std::unique_ptr<VirtioInputDriver>> Connect(
      InputDriverOptions options);
  ~VirtioInputDriver();

  const ProbedInputDevice& device() const { return device_; }
  uint64_t negotiated_features() const { return features_; }

  // The next whole packet (its events, SYN_REPORT not included), waiting
  // up to `deadline`; used buffers are reposted as Linux does.
  absl::StatusOr<std::vector<input::InputEvent>> NextPacket(
      absl::Time deadline);
  // For waiting on several drivers at once: asks for an interrupt (as Linux
  // re-enables callbacks) and returns the call eventfd to poll; it turns
  // readable once the device has used buffers (read it to clear it).
  // has_used(): there is something to take already.
  int ArmWait();
  bool has_used() const { return events_->HasUsed(); }
  // Events received so far that no SYN_REPORT has ended.
  size_t partial_events() const { return partial_.size(); }
  // Status events (LEDs), one 8-byte buffer each; waits until the device
  // has taken them.
  absl::Status SendStatus(absl::Span<const input::InputEvent> events);

  // A guest that misbehaves, for tests: a status buffer of raw bytes, an
  // event buffer of `length` bytes. Both wait for the device to use them;
  // the event buffer's written length is returned.
  absl::Status SendStatusBytes(absl::Span<const uint8_t> bytes);
  absl::StatusOr<uint32_t> PostEventBuffer(uint32_t length);
  // Stops taking events: used buffers are no longer reposted.
  void set_repost(bool repost) { repost_ = repost; }

  // A guest reboot as QEMU presents it: rings stopped, then a new driver
  // (probe again, rings from index 0) on the same connection.
  absl::Status Reboot();
  void Disconnect();

 private:
  explicit VirtioInputDriver(InputDriverOptions options)
      : options_(std::move(options)) {}
  absl::Status Probe();
  absl::StatusOr<virtio_input_config> Select(uint8_t select, uint8_t subsel);
  absl::Status Start();
  absl::Status PostEventBuffers();
  // Reaps used event buffers into partial_/packets_, reposting them.
  absl::Status Reap();

  InputDriverOptions options_;
  std::unique_ptr<VhostUserLink> link_;
  uint64_t features_ = 0;
  ProbedInputDevice device_;
  virtio_input_config config_{};  // QEMU's copy: SET_CONFIG sends it whole
  std::shared_ptr<const virtio::GuestMemory> memory_;
  std::unique_ptr<virtio::GuestAllocator> allocator_;
  std::unique_ptr<virtio::DriverQueue> events_, status_;
  std::map<uint16_t, uint64_t> buffer_of_head_;  // event ring head -> gpa
  uint64_t status_buffer_ = 0;                   // gpa of the status bytes
  bool repost_ = true;
  std::vector<input::InputEvent> partial_;
  std::deque<std::vector<input::InputEvent>> packets_;
};

}  // namespace vgpu::guest_sim
