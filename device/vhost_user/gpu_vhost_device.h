// virtio-gpu over vhost-user: a GpuDevice as VhostUserBackend sees it,
// plus what vhost-user-gpu adds: the display socket QEMU hands over with
// GPU_SET_SOCKET (a new one at every DRIVER_OK), which the DisplayMirror,
// if any, mirrors the screen to.
//
// Thread rules: the device thread's, as the GpuDevice.
#pragma once

#include "device/gpu/gpu_device.h"
#include "device/vhost_user/device.h"
#include "device/vhost_user/display_mirror.h"
#include "device/vhost_user/event_loop.h"

namespace vgpu::vhost_user {

class GpuVhostDevice : public VhostUserDevice {
 public:
  // `device`, `loop` and `mirror` (may be null: no mirroring) outlive this.
  GpuVhostDevice(gpu::GpuDevice* device, EventLoop* loop,
                 DisplayMirror* mirror = nullptr);
  ~GpuVhostDevice() override;

  uint32_t num_queues() const override { return 2; }  // control, cursor
  uint64_t OfferedFeatures() const override {
    return device_->OfferedFeatures();
  }
  void SetDriverFeatures(uint64_t features) override {
    device_->SetDriverFeatures(features);
  }
  void SetGuestMemory(
      std::shared_ptr<const virtio::GuestMemory> memory) override {
    device_->SetGuestMemory(std::move(memory));
  }
  const std::shared_ptr<const virtio::GuestMemory>& guest_memory()
      const override {
    return device_->guest_memory();
  }
  void ReadConfig(uint32_t offset, absl::Span<uint8_t> out) const override {
    device_->ReadConfig(offset, out);
  }
  void WriteConfig(uint32_t offset, absl::Span<const uint8_t> in) override {
    device_->WriteConfig(offset, in);
  }
  absl::StatusOr<bool> ProcessQueue(uint32_t index,
                                    virtio::SplitVirtqueue& ring) override {
    return device_->ProcessQueue(index, ring);
  }
  bool needs_reset() const override { return device_->needs_reset(); }
  void Reset() override { device_->Reset(); }
  // A control queue starting from 0 while the device holds resources is a
  // guest that reset and probes again (a paused VM resumes from where it
  // stopped instead).
  bool ResetsOnQueueStart(uint32_t index, uint16_t base) const override {
    return index == gpu::kControlQueue && base == 0 &&
           device_->resource_count() > 0;
  }
  // GPU_SET_SOCKET.
  absl::Status HandleRequest(Message& message) override;
  // The display socket goes with the connection.
  void Disconnected() override;

  // The display channel QEMU gave us with GPU_SET_SOCKET (-1 if none).
  int display_socket() const { return display_.get(); }

 private:
  void DropDisplaySocket();

  gpu::GpuDevice* device_;
  DisplayMirror* mirror_;
  Fd display_;
};

}  // namespace vgpu::vhost_user
