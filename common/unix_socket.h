// A listening unix socket that never takes over a live one.
//
// vgpu-displayd's vhost-user socket and its gRPC unix socket are paths other
// programs connect to (QEMU, viewers). Starting a second daemon on the same
// path must not steal it: the first daemon's VM would lose its display and,
// when the second one exits, the path would be gone. So before binding:
//   - `PATH.lock` is created and locked (flock, exclusive, held while this
//     object lives); another process holding it means "in use";
//   - an existing PATH that is not a socket is an error; a socket that
//     accepts a connection belongs to a live process ("in use"); one that
//     refuses is stale and replaced.
// On destruction the socket and the lock file are removed (the socket only
// if it is still the one this object bound).
//
// Thread rules: none; the object is immutable after Listen().
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace vgpu {

class OwnedUnixSocket {
 public:
  // Errors: InvalidArgument (path empty or longer than sun_path allows),
  // NotFound (its folder does not exist), AlreadyExists (in use, or not a
  // socket), or the system's error of socket/bind/listen.
  static absl::StatusOr<std::unique_ptr<OwnedUnixSocket>> Listen(
      const std::string& path, int backlog);
  ~OwnedUnixSocket();
  OwnedUnixSocket(const OwnedUnixSocket&) = delete;
  OwnedUnixSocket& operator=(const OwnedUnixSocket&) = delete;

  // The listening descriptor; the caller owns it afterwards (closes it).
  // Call once.
  int TakeFd();
  // For a listener that must bind the path itself (gRPC's, with TLS): closes
  // our socket and removes its file, keeping the lock; after the other
  // listener bound it, Adopt() records that socket as the one to remove.
  void Unbind();
  void Adopt();
  const std::string& path() const { return path_; }

 private:
  OwnedUnixSocket(std::string path, int lock_fd)
      : path_(std::move(path)), lock_fd_(lock_fd) {}

  const std::string path_;
  int lock_fd_ = -1;
  int listen_fd_ = -1;
  dev_t device_ = 0;  // of the bound socket file: removed only if unchanged
  ino_t inode_ = 0;
};

}  // namespace vgpu
