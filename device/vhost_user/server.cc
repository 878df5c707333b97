#include "device/vhost_user/server.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

#include "common/log.h"

namespace vgpu::vhost_user {

absl::StatusOr<std::unique_ptr<VhostUserServer>> VhostUserServer::Create(
    const std::string& socket_path, EventLoop* loop, VhostUserDevice* device) {
  auto socket = OwnedUnixSocket::Listen(socket_path, /*backlog=*/4);
  if (!socket.ok()) return socket.status();
  Fd listener((*socket)->TakeFd());
  std::unique_ptr<VhostUserServer> server(new VhostUserServer(
      *std::move(socket), device, loop, std::move(listener)));
  absl::Status watched =
      server->loop_->Watch(server->listener_.get(), EPOLLIN,
                           [s = server.get()](uint32_t) { s->OnAccept(); });
  if (!watched.ok()) return watched;
  return server;
}

VhostUserServer::~VhostUserServer() {
  backend_.reset();
  loop_->Unwatch(listener_.get());
  listener_.Reset();
}

void VhostUserServer::OnAccept() {
  Fd connection(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!connection.valid()) {
    VGPU_LOG(WARNING) << "accept on " << path_ << ": " << std::strerror(errno);
    return;
  }
  if (backend_ != nullptr) {
    ++stats_.rejected;
    VGPU_LOG(WARNING) << "a second front-end connected to " << path_
                      << " while one is active; closing it";
    return;
  }
  ++stats_.connections;
  ucred peer{};
  socklen_t peer_length = sizeof(peer);
  getsockopt(connection.get(), SOL_SOCKET, SO_PEERCRED, &peer, &peer_length);
  VGPU_LOG(INFO) << "front-end connected on " << path_ << " (pid " << peer.pid
                 << ")";
  backend_ =
      std::make_unique<VhostUserBackend>(device_, loop_, std::move(connection));
  absl::Status started = backend_->Start([this](const absl::Status& reason) {
    if (absl::IsUnavailable(reason)) {
      VGPU_LOG(INFO)
          << "front-end disconnected; device reset, waiting for the next one";
    } else {
      ++stats_.dropped;
      VGPU_LOG(ERROR) << "closing the front-end connection: "
                      << reason.message()
                      << "; device reset, waiting for the next one";
    }
    // Destroy the backend once its handler has returned.
    loop_->Post([this] { backend_.reset(); });
  });
  if (!started.ok()) {
    VGPU_LOG(ERROR) << "cannot serve the front-end: " << started.message();
    backend_.reset();
  }
}

}  // namespace vgpu::vhost_user
