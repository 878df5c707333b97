// A vhost-user listening socket of vgpu-displayd: accepts one front-end at
// a time (QEMU's -chardev socket, or our synthetic guest) and runs a
// VhostUserBackend for it, driving one device, on the device thread (its
// EventLoop, which any number of servers share). When the front-end goes away
// the device is reset and the next one can connect; the daemon lives on.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

#include "common/unix_socket.h"
#include "device/vhost_user/backend.h"
#include "device/vhost_user/device.h"
#include "device/vhost_user/event_loop.h"

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
  // by `loop` (the device thread's); `loop` and `device` outlive the
  // server.
  static absl::StatusOr<std::unique_ptr<VhostUserServer>> Create(
      const std::string& socket_path, EventLoop* loop, VhostUserDevice* device);
  ~VhostUserServer();

  const ServerStats& stats() const { return stats_; }
  bool connected() const { return backend_ != nullptr; }

 private:
  VhostUserServer(std::unique_ptr<OwnedUnixSocket> socket,
                  VhostUserDevice* device, EventLoop* loop, Fd listener)
      : socket_(std::move(socket)),
        path_(socket_->path()),
        device_(device),
        loop_(loop),
        listener_(std::move(listener)) {}
  void OnAccept();

  std::unique_ptr<OwnedUnixSocket> socket_;  // removes the path last
  std::string path_;
  VhostUserDevice* device_;
  EventLoop* loop_;
  Fd listener_;
  std::unique_ptr<VhostUserBackend> backend_;
  ServerStats stats_;
};

}  // namespace vgpu::vhost_user
