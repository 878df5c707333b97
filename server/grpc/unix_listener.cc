#include "server/grpc/unix_listener.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include <grpcpp/server_posix.h>

#include "common/log.h"
#include "common/status_macros.h"

namespace vgpu::server {

absl::StatusOr<std::unique_ptr<UnixSocketListener>> UnixSocketListener::Start(
    const std::string& path, grpc::Server* server, int send_buffer_bytes) {
  VGPU_ASSIGN_OR_RETURN(std::unique_ptr<OwnedUnixSocket> socket,
                        OwnedUnixSocket::Listen(path, /*backlog=*/64));
  return Start(std::move(socket), server, send_buffer_bytes);
}

absl::StatusOr<std::unique_ptr<UnixSocketListener>> UnixSocketListener::Start(
    std::unique_ptr<OwnedUnixSocket> socket, grpc::Server* server,
    int send_buffer_bytes) {
  int fd = socket->TakeFd();
  std::unique_ptr<UnixSocketListener> listener(
      new UnixSocketListener(std::move(socket), server, send_buffer_bytes));
  VGPU_ASSIGN_OR_RETURN(
      listener->accept_loop_,
      AcceptLoop::Start(
          fd, SOCK_CLOEXEC | SOCK_NONBLOCK, "gRPC unix listener",
          [raw = listener.get()](int client) { raw->Serve(client); }));
  return listener;
}

UnixSocketListener::~UnixSocketListener() {
  accept_loop_.reset();  // closes the descriptor; then socket_ removes the path
}

void UnixSocketListener::Serve(int client) {
  // Beyond net.core.wmem_max only with CAP_NET_ADMIN: try the forced
  // variant first, then take what the unprivileged one grants.
  if (setsockopt(client, SOL_SOCKET, SO_SNDBUFFORCE, &send_buffer_bytes_,
                 sizeof(send_buffer_bytes_)) != 0) {
    setsockopt(client, SOL_SOCKET, SO_SNDBUF, &send_buffer_bytes_,
               sizeof(send_buffer_bytes_));
  }
  int granted = 0;
  socklen_t length = sizeof(granted);
  getsockopt(client, SOL_SOCKET, SO_SNDBUF, &granted, &length);
  granted_ = granted;
  // gRPC names such a peer "fd:N"; say who that is.
  ucred peer{};
  socklen_t peer_length = sizeof(peer);
  if (getsockopt(client, SOL_SOCKET, SO_PEERCRED, &peer, &peer_length) == 0) {
    VGPU_LOG(INFO) << "gRPC connection fd:" << client << " on " << path()
                   << " from pid " << peer.pid << " (uid " << peer.uid << ")";
  }
  grpc::AddInsecureChannelFromFd(server_, client);  // takes the fd
}

}  // namespace vgpu::server
