// Fuzzes the vhost-user back-end through its socket, as a hostile front-end
// would drive it. The input is a sequence of records
//   u8 fds (bits 0-1: how many, 0..3; bits 2-3: what kind), u8 pages,
//   u16 length, `length` bytes of message stream
// Each record's bytes go down a socketpair in one sendmsg with its fds
// attached: memfds of `pages` 4 KiB pages (guest RAM; filled from the input,
// so rings and commands in it are the fuzzer's too), a memfd shorter than
// it claims to be, eventfds (kick/call/err), or /dev/null (not a file
// RAM can live in). Framing is the fuzzer's: headers may be truncated,
// payload sizes wrong, messages split across records. The back-end then
// runs off its event loop until it has read everything or dropped the
// connection; the process must survive and the device must be clean after.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "device/gpu/gpu_device.h"
#include "device/vhost_user/backend.h"
#include "device/vhost_user/event_loop.h"
#include "device/vhost_user/gpu_vhost_device.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

using vgpu::vhost_user::Fd;

int MakeFd(int kind, size_t pages, const uint8_t* fill, size_t fill_size) {
  switch (kind) {
    case 0:
    case 1: {
      int fd = memfd_create("fuzz-ram", MFD_CLOEXEC);
      if (fd < 0) return -1;
      // Kind 1 is shorter than it will be declared: half of it is missing.
      size_t bytes = (pages + 1) * 4096;
      if (kind == 1) bytes /= 2;
      if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
        close(fd);
        return -1;
      }
      // The guest's memory is the fuzzer's: repeat the record over it.
      if (fill_size > 0) {
        std::vector<uint8_t> page(bytes);
        for (size_t i = 0; i < bytes; ++i) page[i] = fill[i % fill_size];
        [[maybe_unused]] ssize_t n = pwrite(fd, page.data(), bytes, 0);
      }
      return fd;
    }
    case 2:
      return eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
    default:
      return open("/dev/null", O_RDWR | O_CLOEXEC);
  }
}

bool SendRecord(int socket, const uint8_t* bytes, size_t length,
                const std::vector<int>& fds) {
  msghdr message{};
  uint8_t dummy = 0;
  iovec iov{length > 0 ? const_cast<uint8_t*>(bytes) : &dummy,
            length > 0 ? length : 1};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  if (!fds.empty()) {
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  }
  return sendmsg(socket, &message, MSG_NOSIGNAL) >= 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vgpu::fuzz::QuietLogs();
  vgpu::gpu::GpuDeviceOptions options;
  options.displays = {{320, 240, true}};
  options.max_host_memory = 8 << 20;
  options.max_resources = 32;
  options.max_backing_entries = 64;
  static vgpu::gpu::NullDisplaySink sink;
  auto device = vgpu::gpu::GpuDevice::Create(options, &sink);
  if (!device.ok()) std::abort();
  auto loop = vgpu::vhost_user::EventLoop::Create();
  if (!loop.ok()) std::abort();
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    std::abort();
  int buffer = 1 << 20;
  setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
  setsockopt(pair[1], SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
  Fd peer(pair[1]);

  // Everything the front-end says is written first; then it hangs up its
  // sending side, so the back-end's reads end.
  size_t at = 0;
  size_t records = 0;
  while (at + 4 <= size) {
    const uint8_t fd_byte = data[at];
    const size_t pages = data[at + 1] % 64;
    size_t length = data[at + 2] | (size_t{data[at + 3]} << 8);
    at += 4;
    if (length > size - at) length = size - at;
    std::vector<int> fds;
    for (int i = 0; i < (fd_byte & 3); ++i) {
      int fd = MakeFd((fd_byte >> 2) & 3, pages, data + at, length);
      if (fd >= 0) fds.push_back(fd);
    }
    bool sent = SendRecord(peer.get(), data + at, length, fds);
    for (int fd : fds) close(fd);
    at += length;
    ++records;
    if (!sent) break;
  }
  shutdown(peer.get(), SHUT_WR);

  bool closed = false;
  {
    vgpu::vhost_user::GpuVhostDevice gpu(device->get(), loop->get());
    vgpu::vhost_user::VhostUserBackend backend(&gpu, loop->get(), Fd(pair[0]));
    if (!backend.Start([&closed](const absl::Status&) { closed = true; })
             .ok()) {
      std::abort();
    }
    // One message per turn at most; the hang-up ends it.
    for (size_t turn = 0; turn < records * 8 + 16 && !closed; ++turn) {
      (*loop)->RunOnce(0);
      // Replies are drained so the back-end never blocks on them.
      char reply[4096];
      while (recv(peer.get(), reply, sizeof(reply), MSG_DONTWAIT) > 0) {
      }
    }
  }
  // Whatever happened, the device holds nothing of this front-end.
  if (closed && ((*device)->resource_count() != 0 ||
                 (*device)->host_memory_used() != 0)) {
    std::abort();
  }
  return 0;
}
