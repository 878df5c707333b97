// A guest in a box for tests, benchmarks and the demo: memfd-backed guest RAM
// (optionally split into two regions with a hole, as QEMU lays out >3 GiB
// guests), a control and a cursor queue driven through real descriptor
// rings, and a GpuDevice processing them. Commands are posted the way the
// Linux driver posts them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

#include "device/gpu/display_sink.h"
#include "device/gpu/gpu_device.h"
#include "device/gpu/wire.h"
#include "device/virtio/driver_queue.h"
#include "device/virtio/guest_memory.h"
#include "device/virtio/virtqueue.h"

namespace vgpu::guest_sim {

// Records what the device told the display server, and passes it on to
// `next` when one is set (a FrameStore, in tests of the whole path).
class RecordingSink : public gpu::DisplaySink {
 public:
  void set_next(gpu::DisplaySink* next) { next_ = next; }
  struct FrameEvent {
    uint32_t scanout_id;
    gpu::FramePtr frame;
    std::vector<gpu::PixelRect> damage;
    // The smallest rect holding all of `damage`.
    gpu::PixelRect bounds() const {
      gpu::PixelRect box;
      for (const gpu::PixelRect& r : damage) box = gpu::BoundingBox(box, r);
      return box;
    }
  };
  void OnScanoutMode(const gpu::ScanoutMode& mode,
                     gpu::FramePtr first_frame) override {
    modes.push_back(mode);
    if (first_frame) {
      const gpu::PixelRect whole{0, 0, mode.width, mode.height};
      Record(mode.scanout_id, first_frame, {&whole, 1});
    }
    if (next_) next_->OnScanoutMode(mode, std::move(first_frame));
  }
  void OnFrame(uint32_t scanout_id, gpu::FramePtr frame,
               absl::Span<const gpu::PixelRect> damage) override {
    Record(scanout_id, frame, damage);
    if (next_) next_->OnFrame(scanout_id, std::move(frame), damage);
  }
  void OnCursor(const gpu::CursorUpdate& update) override {
    cursors.push_back(update);
    if (next_) next_->OnCursor(update);
  }

  // Keep every frame (tests) or only the latest (benchmarks, soak tests).
  bool keep_frames = true;
  gpu::FramePtr latest;
  uint64_t frame_count = 0;
  std::vector<gpu::ScanoutMode> modes;
  std::vector<FrameEvent> frames;
  std::vector<gpu::CursorUpdate> cursors;

 private:
  void Record(uint32_t scanout_id, const gpu::FramePtr& frame,
              absl::Span<const gpu::PixelRect> damage) {
    if (keep_frames) {
      frames.push_back({scanout_id, frame, {damage.begin(), damage.end()}});
    }
    latest = frame;  // what a display server always holds
    ++frame_count;
  }

  gpu::DisplaySink* next_ = nullptr;
};

struct SimulatedGuestOptions {
  uint64_t ram_bytes = 64ull << 20;
  // Split RAM into two regions, the second at 4 GiB (QEMU's high RAM).
  bool two_regions = false;
  uint16_t queue_size = 256;
  bool event_idx = true;
  bool indirect = true;
  gpu::GpuDeviceOptions device;
  uint64_t driver_features = ~0ull;
};

// Thread-compatible.
class SimulatedGuest {
 public:
  static absl::StatusOr<std::unique_ptr<SimulatedGuest>> Create(
      SimulatedGuestOptions options = {});

  // Tells the device about new buffers on `queue` and returns once `driver`
  // has a used entry to reap (or fails after a timeout).
  using DeviceLink =
      std::function<absl::Status(uint32_t queue, virtio::DriverQueue& driver)>;
  // Guest RAM and rings only, for a device in another process (vhost-user):
  // the caller hands the layout to the device and then calls set_link().
  static absl::StatusOr<std::unique_ptr<SimulatedGuest>> CreateDriverOnly(
      SimulatedGuestOptions options);
  void set_link(DeviceLink link) { link_ = std::move(link); }
  const std::shared_ptr<const virtio::GuestMemory>& memory_ptr() const {
    return memory_;
  }
  virtio::DriverQueue& cursor() { return *cursor_driver_; }

  // The in-process device (Create() only).
  gpu::GpuDevice& device() { return *device_; }
  RecordingSink& sink() { return sink_; }
  const virtio::GuestMemory& memory() const { return *memory_; }
  virtio::GuestAllocator& allocator() { return allocator_; }
  virtio::DriverQueue& control() { return *control_driver_; }
  virtio::SplitVirtqueue& control_device_queue() { return *control_queue_; }
  // Guest-physical base of the second region (two_regions only).
  uint64_t high_base() const { return high_base_; }

  // Allocates guest memory (from the first region unless `high`).
  absl::StatusOr<uint64_t> Alloc(uint64_t size, uint64_t alignment = 4096,
                                 bool high = false);
  absl::Status WriteGuest(uint64_t gpa, absl::Span<const uint8_t> bytes);
  absl::Status ReadGuest(uint64_t gpa, absl::Span<uint8_t> out);

  // Posts `command` (+ `payload` as a second readable descriptor) with a
  // response buffer of `response_size` bytes, kicks, lets the device process
  // the queue and returns the response bytes (as many as the device wrote).
  absl::StatusOr<std::vector<uint8_t>> Submit(
      absl::Span<const uint8_t> command, absl::Span<const uint8_t> payload = {},
      uint32_t response_size = 24);
  // The response type of Submit's reply (0 if shorter than a header).
  absl::StatusOr<uint32_t> SubmitForType(absl::Span<const uint8_t> command,
                                         absl::Span<const uint8_t> payload = {},
                                         uint32_t response_size = 24);
  // Posts a cursor command (out-only chain, as Linux does) and processes it.
  absl::Status SubmitCursor(const gpu::wire::UpdateCursor& command);

  // One display update as Linux sends it: TRANSFER_TO_HOST_2D + RESOURCE_FLUSH
  // for every rect (offsets for a framebuffer `pitch` bytes per row), posted
  // together with one kick. Fails unless every reply is OK_NODATA.
  // With `fenced`, each flush carries a fence (Linux does this for blobs).
  absl::Status Present(uint32_t id, absl::Span<const gpu::wire::Rect> rects,
                       uint32_t pitch, bool fenced = false);

  // Typical driver sequences; each returns the response type.
  uint32_t Create2d(uint32_t id, uint32_t width, uint32_t height,
                    uint32_t format = gpu::wire::kFormatB8G8R8X8);
  // Allocates `bytes` of guest memory in `chunks` pieces and attaches them.
  // The backing's guest address is returned in *gpa (first chunk).
  uint32_t AttachNewBacking(uint32_t id, uint64_t bytes, uint64_t* gpa,
                            uint32_t chunks = 1);
  uint32_t AttachEntries(uint32_t id,
                         absl::Span<const gpu::wire::MemEntry> entries);
  uint32_t CreateBlob(uint32_t id, uint64_t size,
                      absl::Span<const gpu::wire::MemEntry> entries);
  uint32_t SetScanout(uint32_t scanout, uint32_t id, gpu::wire::Rect rect);
  uint32_t SetScanoutBlob(uint32_t scanout, uint32_t id, uint32_t width,
                          uint32_t height, uint32_t stride, uint32_t offset,
                          gpu::wire::Rect rect,
                          uint32_t format = gpu::wire::kFormatB8G8R8X8);
  uint32_t Transfer(uint32_t id, gpu::wire::Rect rect, uint64_t offset);
  uint32_t Flush(uint32_t id, gpu::wire::Rect rect, bool fenced = false,
                 uint64_t fence_id = 0);
  uint32_t Unref(uint32_t id);
  uint32_t Detach(uint32_t id);
  // A resource of width x height with one backing chunk, on `scanout`.
  // Returns the backing's guest address.
  absl::StatusOr<uint64_t> MakeScanoutResource(uint32_t id, uint32_t width,
                                               uint32_t height,
                                               uint32_t scanout = 0);

 private:
  explicit SimulatedGuest(SimulatedGuestOptions options);
  static absl::StatusOr<std::unique_ptr<SimulatedGuest>> CreateMemoryAndRings(
      SimulatedGuestOptions options);
  absl::Status Process(uint32_t queue_index);

  SimulatedGuestOptions options_;
  RecordingSink sink_;
  std::shared_ptr<const virtio::GuestMemory> memory_;
  virtio::GuestAllocator allocator_{0, 0};
  virtio::GuestAllocator high_allocator_{0, 0};
  uint64_t high_base_ = 0;
  std::unique_ptr<gpu::GpuDevice> device_;
  std::unique_ptr<virtio::DriverQueue> control_driver_, cursor_driver_;
  std::unique_ptr<virtio::SplitVirtqueue> control_queue_, cursor_queue_;
  DeviceLink link_;
  uint64_t fence_id_ = 0;
  uint64_t scratch_gpa_ = 0;  // command and response staging
  static constexpr uint64_t kScratchBytes = 1 << 20;
};

// Serialises a wire struct.
template <typename T>
absl::Span<const uint8_t> Bytes(const T& value) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&value),
                             sizeof(T));
}

gpu::wire::CtrlHdr Hdr(uint32_t type, uint32_t flags = 0,
                       uint64_t fence_id = 0);

}  // namespace vgpu::guest_sim
