#include "common/unix_socket.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace vgpu {
namespace {

absl::Status SystemError(int error, const std::string& what) {
  return absl::ErrnoToStatus(error, absl::StrCat(what, ": ", strerror(error)));
}

// Whether something accepts connections on the unix socket `address`.
absl::StatusOr<bool> Answers(const sockaddr_un& address) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return SystemError(errno, "socket");
  int connected =
      connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  int error = errno;
  close(fd);
  if (connected == 0 || error == EAGAIN || error == EINPROGRESS) return true;
  if (error == ECONNREFUSED || error == ENOENT) return false;
  return SystemError(error, absl::StrCat("probing ", address.sun_path));
}

// Creates and locks `lock_path`; retries if another process removed the file
// between our open and our flock (so we never hold a lock on an unlinked
// file while a third process locks the new one).
absl::StatusOr<int> TakeLock(const std::string& socket_path,
                             const std::string& lock_path) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                  0600);
    if (fd < 0) return SystemError(errno, "cannot create " + lock_path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int error = errno;
      close(fd);
      if (error == EWOULDBLOCK) {
        return absl::AlreadyExistsError(absl::StrCat(
            socket_path, " is in use: another process holds ", lock_path));
      }
      return SystemError(error, "cannot lock " + lock_path);
    }
    struct stat held {
    }, now{};
    if (fstat(fd, &held) == 0 && stat(lock_path.c_str(), &now) == 0 &&
        held.st_dev == now.st_dev && held.st_ino == now.st_ino) {
      return fd;
    }
    close(fd);  // replaced under us: take the new file
  }
  return absl::UnavailableError("cannot take " + lock_path);
}

}  // namespace

absl::StatusOr<std::unique_ptr<OwnedUnixSocket>> OwnedUnixSocket::Listen(
    const std::string& path, int backlog) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unix socket path must be 1..",
                     sizeof(address.sun_path) - 1, " bytes: '", path, "'"));
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::error_code ignored;
  if (!folder.empty() && !std::filesystem::is_directory(folder, ignored)) {
    return absl::NotFoundError(absl::StrCat("cannot listen on ", path,
                                            ": folder ", folder.string(),
                                            " does not exist"));
  }
  const std::string lock_path = path + ".lock";
  absl::StatusOr<int> lock = TakeLock(path, lock_path);
  if (!lock.ok()) return lock.status();
  // From here the destructor releases the lock and removes its file.
  std::unique_ptr<OwnedUnixSocket> owned(new OwnedUnixSocket(path, *lock));

  struct stat existing {};
  if (lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      return absl::AlreadyExistsError(
          absl::StrCat(path, " exists and is not a socket"));
    }
    absl::StatusOr<bool> alive = Answers(address);
    if (!alive.ok()) return alive.status();
    if (*alive) {
      return absl::AlreadyExistsError(
          absl::StrCat(path,
                       " is in use: a process accepts connections on it "
                       "(stop it, or choose another path)"));
    }
    unlink(path.c_str());  // stale: nobody listens
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return SystemError(errno, "socket");
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, backlog) != 0) {
    int error = errno;
    close(fd);
    return SystemError(error, "cannot listen on " + path);
  }
  owned->listen_fd_ = fd;
  struct stat bound {};
  if (lstat(path.c_str(), &bound) == 0) {
    owned->device_ = bound.st_dev;
    owned->inode_ = bound.st_ino;
  }
  return owned;
}

int OwnedUnixSocket::TakeFd() {
  int fd = listen_fd_;
  listen_fd_ = -1;
  return fd;
}

void OwnedUnixSocket::Unbind() {
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  unlink(path_.c_str());
  inode_ = 0;
}

void OwnedUnixSocket::Adopt() {
  struct stat bound {};
  if (lstat(path_.c_str(), &bound) == 0 && S_ISSOCK(bound.st_mode)) {
    device_ = bound.st_dev;
    inode_ = bound.st_ino;
  }
}

OwnedUnixSocket::~OwnedUnixSocket() {
  if (listen_fd_ >= 0) close(listen_fd_);
  struct stat now {};
  if (inode_ != 0 && lstat(path_.c_str(), &now) == 0 && now.st_dev == device_ &&
      now.st_ino == inode_) {
    unlink(path_.c_str());
  }
  if (lock_fd_ >= 0) {
    unlink((path_ + ".lock").c_str());  // while still holding it
    close(lock_fd_);
  }
}

}  // namespace vgpu
