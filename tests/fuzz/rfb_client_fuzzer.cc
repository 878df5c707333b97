// Fuzzes the RFB client messages the VNC bridge handles itself — QEMU
// client messages (extended key events, other sub-types), SetDesktopSize
// and SetEncodings with the QEMU pseudo-encodings — with key and pointer
// events around them, through a real libvncserver screen (VncScreen): each
// input is one client on a socketpair whose messages are built from the
// input's bytes (well-formed framing for libvncserver's own parsers, any
// contents for ours). The client must end when its input does; a client
// that hangs the screen aborts.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "clients/vnc/rfb_extensions.h"
#include "clients/vnc/vnc_screen.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

class Sink : public vgpu::vnc::VncInput {
 public:
  void OnKey(bool, uint32_t) override {}
  void OnPointer(uint32_t, uint32_t, uint32_t) override {}
};

vgpu::vnc::VncScreen* Screen() {
  static Sink sink;
  // Destroyed at exit, which joins the last client's thread.
  static std::unique_ptr<vgpu::vnc::VncScreen> screen = [] {
    vgpu::fuzz::QuietLogs();
    vgpu::vnc::VncScreenOptions options;
    options.input = &sink;
    options.max_clients = 64;
    options.resize = [](uint32_t width, uint32_t) { return width % 2 == 0; };
    auto created = vgpu::vnc::VncScreen::Create(options, 64, 48);
    if (!created.ok()) std::abort();
    return *std::move(created);
  }();
  return screen.get();
}

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return size_ == 0; }
  uint8_t Byte() {
    if (size_ == 0) return 0;
    --size_;
    return *data_++;
  }
  void Append(std::string* out, size_t count) {
    for (size_t i = 0; i < count; ++i)
      out->push_back(static_cast<char>(Byte()));
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

std::string Messages(const uint8_t* data, size_t size) {
  static constexpr int32_t kEncodings[] = {-258, -261, 0,    1,    7,
                                           16,   -223, -308, -239, -224};
  Reader in(data, size);
  std::string out;
  while (!in.empty()) {
    switch (in.Byte() % 5) {
      case 0:  // QEMU client message: any sub-type, any contents
        out.push_back(static_cast<char>(255));
        in.Append(&out, 11);
        break;
      case 1: {  // SetDesktopSize with 1..3 screens
        out += {static_cast<char>(251), 0};
        in.Append(&out, 4);  // width, height
        const uint8_t screens = static_cast<uint8_t>(1 + in.Byte() % 3);
        out += {static_cast<char>(screens), 0};
        in.Append(&out, size_t{screens} * 16);
        break;
      }
      case 2: {  // SetEncodings
        const uint8_t count = in.Byte() % 4;
        out += {2, 0, 0, static_cast<char>(count)};
        for (uint8_t i = 0; i < count; ++i) {
          vgpu::vnc::AppendBigEndian32(
              &out, static_cast<uint32_t>(
                        kEncodings[in.Byte() % (sizeof(kEncodings) /
                                                sizeof(kEncodings[0]))]));
        }
        break;
      }
      case 3:  // KeyEvent
        out += {4, static_cast<char>(in.Byte() & 1), 0, 0};
        in.Append(&out, 4);
        break;
      default:  // PointerEvent
        out.push_back(5);
        in.Append(&out, 5);
        break;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vgpu::vnc::VncScreen* screen = Screen();
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return 0;
  // Version 3.8, security None, shared: written before the screen takes
  // the client, so its probe for websockets and TLS (100 ms of waiting for
  // a first byte) sees "RFB " at once.
  const std::string handshake = std::string("RFB 003.008\n") + '\x01' + '\x01';
  if (write(pair[0], handshake.data(), handshake.size()) !=
      static_cast<ssize_t>(handshake.size())) {
    std::abort();
  }
  if (!screen->AddClient(pair[1]).ok()) {
    close(pair[0]);
    return 0;
  }
  const std::string bytes = Messages(data, size);
  // The server writes while reading: drain its output as we send.
  size_t sent = 0;
  if (bytes.empty()) shutdown(pair[0], SHUT_WR);
  char sink[16384];
  while (true) {
    pollfd fd{.fd = pair[0],
              .events = static_cast<short>(POLLIN |
                                           (sent < bytes.size() ? POLLOUT : 0)),
              .revents = 0};
    if (poll(&fd, 1, 10000) <= 0) std::abort();  // the client hangs
    if (fd.revents & POLLIN) {
      if (read(pair[0], sink, sizeof(sink)) <= 0) break;  // server closed
    } else if (fd.revents & POLLOUT) {
      const ssize_t n =
          write(pair[0], bytes.data() + sent, bytes.size() - sent);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
      if (sent == bytes.size()) shutdown(pair[0], SHUT_WR);
    } else {
      break;  // hang-up or error: the server closed
    }
  }
  close(pair[0]);
  return 0;
}
