// The virtio-gpu 2D device model: decodes control and cursor commands from
// descriptor chains, validates them against a hostile guest, keeps
// resources and scanouts, and turns flushes into frames for a DisplaySink.
//
// Resources come in two kinds (ARCHITECTURE.md §2):
//  * copied: a 2D resource whose host copy (a TileGrid) is filled by
//    TRANSFER_TO_HOST_2D; FLUSH publishes it without copying pixels;
//  * shared: a guest blob, or a 2D resource the policy reads in place; FLUSH
//    copies the damaged pixels from guest pages into tiles and publishes.
// Either way a changed pixel is copied once on its way out.
//
// Every chain gets a reply; only a corrupt queue stops the device (then
// needs_reset() is true until Reset()).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"

#include "device/gpu/display_sink.h"
#include "device/gpu/frame.h"
#include "device/gpu/wire.h"
#include "device/virtio/guest_backing.h"
#include "device/virtio/guest_memory.h"
#include "device/virtio/virtqueue.h"

namespace vgpu::gpu {

enum class ResourcePolicy {
  kCopy,    // 2D resources keep a host copy filled by TRANSFER
  kShared,  // 2D resources are read from guest pages at FLUSH
  kAuto,    // copy below auto_shared_min_bytes, shared at or above it
};

struct DisplayConfig {
  uint32_t width = 1280;
  uint32_t height = 800;
  bool enabled = true;
};

struct GpuDeviceOptions {
  // One entry per scanout, 1..16. Modes are 16..4095 pixels per side.
  std::vector<DisplayConfig> displays = std::vector<DisplayConfig>(1);
  ResourcePolicy policy = ResourcePolicy::kCopy;
  uint64_t auto_shared_min_bytes = 4ull << 20;
  // Host bytes resources and scanout tiles may hold (QEMU's default).
  uint64_t max_host_memory = 256ull << 20;
  uint32_t max_resources = 16384;
  uint32_t max_backing_entries = 16384;
  bool offer_edid = true;
  bool offer_blob = true;
  bool offer_resource_uuid = true;
};

inline constexpr uint32_t kControlQueue = 0;
inline constexpr uint32_t kCursorQueue = 1;

struct DeviceStats {
  absl::flat_hash_map<uint32_t, uint64_t> commands;  // by command type
  absl::flat_hash_map<uint32_t, uint64_t> errors;    // by response code
  uint64_t transfer_bytes_copied =
      0;  // guest -> tiles during TRANSFER_TO_HOST_2D
  uint64_t flush_bytes_copied =
      0;  // guest -> tiles during FLUSH (shared resources)
  // guest -> tiles when a shared source is shown in a new mode (its first
  // frame goes out with the mode)
  uint64_t mode_capture_bytes_copied = 0;
  uint64_t cursor_bytes_copied = 0;
  uint64_t frames_published = 0;
  uint64_t damage_rects = 0;    // rects told with those frames (changed parts)
  uint64_t bad_chains = 0;      // a buffer was not guest RAM
  uint64_t cursor_ignored = 0;  // cursor commands dropped as malformed
  uint64_t queue_errors = 0;    // corrupt queues (device needs reset)
  GridStats grid;
};

// Lives on the device thread.
class GpuDevice {
 public:
  static absl::StatusOr<std::unique_ptr<GpuDevice>> Create(
      GpuDeviceOptions options, DisplaySink* sink);
  ~GpuDevice();

  // Virtio feature bits this device offers (device-specific bits only).
  uint64_t OfferedFeatures() const;
  // The bits the driver acknowledged.
  void SetDriverFeatures(uint64_t features);
  // The guest RAM the queues and backings refer to. Existing backings keep
  // the mappings they use alive.
  void SetGuestMemory(std::shared_ptr<const virtio::GuestMemory> memory);
  const std::shared_ptr<const virtio::GuestMemory>& guest_memory() const {
    return memory_;
  }

  // Drains `queue` (kControlQueue or kCursorQueue). Returns whether the
  // driver wants an interrupt. A corrupt queue returns an error and sets
  // needs_reset().
  absl::StatusOr<bool> ProcessQueue(uint32_t queue_index,
                                    virtio::SplitVirtqueue& queue);

  // Handles one control chain; returns the bytes written to its writable
  // part. Exposed for fuzzing and tests that bypass rings.
  uint32_t HandleControl(absl::Span<const absl::Span<uint8_t>> readable,
                         absl::Span<const absl::Span<uint8_t>> writable,
                         bool bad_buffer = false);
  void HandleCursor(absl::Span<const absl::Span<uint8_t>> readable);

  // Device configuration space (struct virtio_gpu_config).
  void ReadConfig(uint32_t offset, absl::Span<uint8_t> out) const;
  void WriteConfig(uint32_t offset, absl::Span<const uint8_t> in);
  // Called when events_read gains a bit (the transport raises a config
  // interrupt).
  void SetConfigChangedCallback(std::function<void()> callback) {
    config_changed_ = std::move(callback);
  }

  // A viewer asks for a new mode on `scanout_id`: display info and EDID
  // change and VIRTIO_GPU_EVENT_DISPLAY is raised.
  absl::Status SetDisplay(uint32_t scanout_id, const DisplayConfig& display);

  // Drops every resource, backing and scanout (virtio reset, guest reboot).
  void Reset();
  bool needs_reset() const { return needs_reset_; }

  const DeviceStats& stats() const { return stats_; }
  uint64_t host_memory_used() const { return host_memory_used_; }
  size_t resource_count() const { return resources_.size(); }
  // Whether any resource still references guest pages.
  size_t backings_held() const;
  uint32_t num_scanouts() const {
    return static_cast<uint32_t>(scanouts_.size());
  }
  // The last frame published for a scanout (nullptr if none or disabled).
  FramePtr LastFrame(uint32_t scanout_id) const;

 private:
  struct Resource;
  struct Scanout;
  using ResponseBuffer = std::array<uint8_t, sizeof(wire::RespEdid)>;

  GpuDevice(GpuDeviceOptions options, DisplaySink* sink);

  absl::Status Dispatch(const wire::CtrlHdr& hdr, virtio::ChainReader& reader);
  absl::Status GetDisplayInfo();
  absl::Status GetEdid(const wire::GetEdid& cmd);
  absl::Status ResourceCreate2d(const wire::ResourceCreate2d& cmd);
  absl::Status ResourceUnref(const wire::ResourceUnref& cmd);
  absl::Status SetScanout(const wire::SetScanout& cmd);
  absl::Status SetScanoutBlob(const wire::SetScanoutBlob& cmd);
  absl::Status ResourceFlush(const wire::ResourceFlush& cmd);
  absl::Status TransferToHost2d(const wire::TransferToHost2d& cmd);
  absl::Status AttachBacking(const wire::ResourceAttachBacking& cmd,
                             virtio::ChainReader& reader);
  absl::Status DetachBacking(const wire::ResourceDetachBacking& cmd);
  absl::Status AssignUuid(const wire::ResourceAssignUuid& cmd);
  absl::Status CreateBlob(const wire::ResourceCreateBlob& cmd,
                          virtio::ChainReader& reader);

  absl::StatusOr<virtio::GuestBacking> ReadBacking(uint32_t nr_entries,
                                                   virtio::ChainReader& reader);
  absl::StatusOr<Resource*> FindResource(uint32_t resource_id);
  absl::Status Charge(uint64_t bytes);
  void Credit(uint64_t bytes);
  void DisableScanout(uint32_t scanout_id);
  // Points a scanout at `resource`'s `rect`; the resource it showed before
  // forgets it. A size change reaches the sink with its first frame (shared
  // sources are captured here for it); a copied source is shown at once.
  void ShowOnScanout(uint32_t scanout_id, Resource& resource,
                     const PixelRect& rect);
  // The resource shown on `scanout_id` forgets it.
  void ReleaseFromResource(uint32_t scanout_id);
  // The scanout's current picture as a new frame (next sequence number).
  FramePtr MakeFrame(uint32_t scanout_id);
  // Publishes a new frame of the scanout with what changed since its last.
  void PublishFrame(uint32_t scanout_id);
  // Copies `rect` of a shared source from guest pages into its tiles;
  // returns the bytes copied.
  uint64_t CaptureShared(Resource& resource, uint32_t scanout_id,
                         const PixelRect& rect);
  void SetResponse(uint32_t type, const void* payload, size_t size);
  bool Negotiated(uint32_t feature) const {
    return (driver_features_ >> feature) & 1;
  }

  GpuDeviceOptions options_;
  DisplaySink* sink_;
  std::shared_ptr<const virtio::GuestMemory> memory_;
  uint64_t driver_features_ = 0;
  std::map<uint32_t, std::unique_ptr<Resource>> resources_;
  std::vector<std::unique_ptr<Scanout>> scanouts_;
  uint64_t host_memory_used_ = 0;
  uint32_t events_read_ = 0;
  std::function<void()> config_changed_;
  bool needs_reset_ = false;
  std::shared_ptr<const CursorImage> cursor_image_;
  uint64_t uuid_seed_ = 0;  // drawn on first use
  DeviceStats stats_;
  // Response being built for the current command.
  uint32_t response_type_ = 0;
  ResponseBuffer response_{};
  size_t response_size_ = 0;
};

}  // namespace vgpu::gpu
