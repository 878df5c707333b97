// A vhost-user listening socket of vgpu-displayd: accepts one front-end at
// a time (QEMU's -chardev socket, or our synthetic guest) and runs a
// GpuBackend for it on the device thread (its EventLoop, which any number
// of servers share). When the front-end goes away the device is reset and
// the next one can connect; the daemon lives on.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

#include "common/unix_socket.h"
#include "device/gpu/gpu_device.h"
#include "device/vhost_user/event_loop.h"
#include "device/vhost_user/gpu_backend.h"

namespace vgpu::vhost_user {

struct ServerStats {
  uint64_t connections = 0;
  uint64_t rejected = 0;  // a second front-end while one is connected
  uint64_t dropped = 0;   // connections closed on a malformed message
};

// Lives on the device thread: made before its loop runs or on it, and
// destroyed there or once the loop has stopped.
class VhostUserServer {
 public:
  // Listens on `socket_path` through OwnedUnixSocket: a stale socket there
  // is replaced, a live one (or its lock held) is AlreadyExists. Served
  // by `loop` (the device thread's), which outlives the server. `mirror`,
  // if given, is the device's sink and mirrors to QEMU's display socket
  // when enabled.
  static absl::StatusOr<std::unique_ptr<VhostUserServer>> Create(
      const std::string& socket_path, EventLoop* loop, gpu::GpuDevice* device,
      DisplayMirror* mirror = nullptr);
  ~VhostUserServer();

  const ServerStats& stats() const { return stats_; }
  bool connected() const { return backend_ != nullptr; }

 private:
  VhostUserServer(std::unique_ptr<OwnedUnixSocket> socket,
                  gpu::GpuDevice* device, DisplayMirror* mirror,
                  EventLoop* loop, Fd listener)
      : socket_(std::move(socket)),
        path_(socket_->path()),
        device_(device),
        mirror_(mirror),
        loop_(loop),
        listener_(std::move(listener)) {}
  void OnAccept();

  std::unique_ptr<OwnedUnixSocket> socket_;  // removes the path last
  std::string path_;
  gpu::GpuDevice* device_;
  DisplayMirror* mirror_;
  EventLoop* loop_;
  Fd listener_;
  std::unique_ptr<GpuBackend> backend_;
  ServerStats stats_;
};

}  // namespace vgpu::vhost_user
