// A real RFB client for tests and probes: libvncclient (Debian's 0.9.14)
// in B,G,R,X, asking for the encodings it is told (as a VNC viewer's
// SetEncodings would), with VNC authentication, DesktopSize and the
// cursor shape.
//
// Thread-compatible: one thread drives a viewer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include <rfb/rfbclient.h>

namespace vgpu::vnc {

struct TestViewerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 5900;
  // libvncclient's names, space-separated, preferred first: "tight",
  // "zrle", "hextile", "raw", "copyrect", "zlib", ...
  std::string encodings = "copyrect zrle";
  int quality_level = -1;     // Tight JPEG quality level 0..9, -1: lossless
  std::string password = {};  // for VNC authentication
};

class TestViewer {
 public:
  // nullptr when the connection or the handshake fails (e.g. a wrong
  // password).
  static std::unique_ptr<TestViewer> Connect(const TestViewerOptions& options);
  ~TestViewer();

  int width() const;
  int height() const;
  uint32_t PixelAt(int x, int y) const;  // 0x00RRGGBB
  const std::string& desktop_name() const { return name_; }
  // FramebufferUpdates received, and rects of pixels among them (an update
  // may carry only a cursor shape or position).
  uint64_t updates() const { return updates_; }
  uint64_t pixel_rects() const { return pixel_rects_; }

  // Handles server messages until `done()` holds (true) or `timeout`
  // passes or the connection ends (false).
  bool Until(const std::function<bool()>& done,
             absl::Duration timeout = absl::Seconds(20));
  // The screen is `width` x `height` and equals `want` (B,G,R,X, X
  // ignored) exactly.
  bool Shows(const std::vector<uint32_t>& want, int width, int height) const;
  // Binary PPM of the screen.
  std::string ToPpm() const;
  // Peak signal-to-noise ratio of the screen against `want` over R, G and
  // B, in dB (infinity when equal); 0 if the size differs.
  double Psnr(const std::vector<uint32_t>& want, int width, int height) const;

  // The last cursor shape received (RichCursor): size, hotspot, and the
  // mask (1: shown) as one byte per pixel.
  int cursor_width() const { return cursor_width_; }
  int cursor_height() const { return cursor_height_; }
  int cursor_hot_x() const { return cursor_hot_x_; }
  int cursor_hot_y() const { return cursor_hot_y_; }
  uint64_t cursor_shapes() const { return cursor_shapes_; }
  const std::vector<uint8_t>& cursor_mask() const { return cursor_mask_; }

  // Input, as a viewer sends it.
  bool SendKey(uint32_t keysym, bool down);
  bool SendPointer(int x, int y, int buttons);
  // SetDesktopSize (ExtendedDesktopSize), one screen.
  bool RequestSize(int width, int height);
  // Asks for the whole screen again (a non-incremental request).
  bool RequestFull();

  // Public for libvncclient's callbacks.
  void OnCursorShape(int hot_x, int hot_y, int width, int height);
  void OnUpdate() { ++updates_; }
  void OnPixels() { ++pixel_rects_; }
  const std::string& password() const { return password_; }

 private:
  TestViewer() = default;
  rfbClient* client_ = nullptr;
  std::string encodings_;  // libvncclient keeps a pointer to it
  std::string name_;
  std::string password_;
  uint64_t updates_ = 0;
  uint64_t pixel_rects_ = 0;
  int cursor_width_ = 0, cursor_height_ = 0;
  int cursor_hot_x_ = 0, cursor_hot_y_ = 0;
  uint64_t cursor_shapes_ = 0;
  std::vector<uint8_t> cursor_mask_;
};

// A bare RFB 3.8 client over TCP for protocol tests: it does the
// handshake (security None, shared), then sends and reads raw bytes.
class RawRfbClient {
 public:
  // nullptr when the connection or the handshake fails.
  static std::unique_ptr<RawRfbClient> Connect(uint16_t port);
  ~RawRfbClient();

  bool Send(const std::string& bytes);
  // SetEncodings with these encodings.
  bool SetEncodings(const std::vector<int32_t>& encodings);
  struct Rect {
    uint16_t x = 0, y = 0, width = 0, height = 0;
    std::string payload;
  };
  // Reads server messages until a FramebufferUpdate holding a rect of
  // `encoding` comes, and to its end; returns the rect's header and first
  // `payload` bytes. Only pseudo-rects, Raw and RichCursor rects are
  // understood. nullopt on timeout, a closed connection or anything else.
  // After each update without it, sends `request_after_update` (a viewer's
  // next FramebufferUpdateRequest) when given.
  std::optional<Rect> ReadPseudoRect(
      int32_t encoding, size_t payload, absl::Duration timeout,
      const std::string& request_after_update = "");
  // True once the server closed the connection (reads return 0), within
  // `timeout`.
  bool WaitClosed(absl::Duration timeout);

 private:
  RawRfbClient() = default;
  bool ReadExact(void* bytes, size_t size, absl::Duration timeout);
  int fd_ = -1;
  uint32_t bytes_per_pixel_ = 4;
};

}  // namespace vgpu::vnc
