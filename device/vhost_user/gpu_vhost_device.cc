#include "device/vhost_user/gpu_vhost_device.h"

#include <fcntl.h>

#include "device/vhost_user/protocol.h"

namespace vgpu::vhost_user {

GpuVhostDevice::GpuVhostDevice(gpu::GpuDevice* device, EventLoop* loop,
                               DisplayMirror* mirror)
    : device_(device), mirror_(mirror) {
  if (mirror_ != nullptr) mirror_->set_loop(loop);
}

GpuVhostDevice::~GpuVhostDevice() { DropDisplaySocket(); }

absl::Status GpuVhostDevice::HandleRequest(Message& message) {
  if (message.header.request != kGpuSetSocket)
    return absl::NotFoundError("not a virtio-gpu request");
  if (message.fds.size() != 1)
    return absl::InvalidArgumentError("expected one fd");
  // QEMU makes a new channel at every DRIVER_OK. We never read from it (we
  // send no request that wants a reply), and write to it only when
  // mirroring, without blocking.
  if (mirror_ != nullptr) mirror_->SetChannel(-1);
  display_ = std::move(message.fds[0]);
  fcntl(display_.get(), F_SETFL, fcntl(display_.get(), F_GETFL) | O_NONBLOCK);
  if (mirror_ != nullptr) mirror_->SetChannel(display_.get());
  return absl::OkStatus();
}

void GpuVhostDevice::Disconnected() { DropDisplaySocket(); }

void GpuVhostDevice::DropDisplaySocket() {
  if (mirror_ != nullptr) mirror_->SetChannel(-1);
  display_.Reset();
}

}  // namespace vgpu::vhost_user
