#include "clients/vnc/test_viewer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include <rfb/rfbclient.h>

#include "clients/vnc/rfb_extensions.h"
#include "common/listen_address.h"

namespace vgpu::vnc {
namespace {

// rfbClientGetClientData's key: any unique address.
int viewer_tag;

TestViewer* ViewerOf(rfbClient* client) {
  return static_cast<TestViewer*>(rfbClientGetClientData(client, &viewer_tag));
}

char* GetPassword(rfbClient* client) {
  return strdup(ViewerOf(client)->password().c_str());
}

void GotCursorShape(rfbClient* client, int hot_x, int hot_y, int width,
                    int height, int /*bytes_per_pixel*/) {
  ViewerOf(client)->OnCursorShape(hot_x, hot_y, width, height);
}

void FinishedUpdate(rfbClient* client) { ViewerOf(client)->OnUpdate(); }
void GotPixels(rfbClient* client, int, int, int, int) {
  ViewerOf(client)->OnPixels();
}

// libvncclient narrates every handshake on stderr.
void Quiet(const char* /*format*/, ...) {}

}  // namespace

std::unique_ptr<TestViewer> TestViewer::Connect(
    const TestViewerOptions& options) {
  rfbClientLog = Quiet;
  std::unique_ptr<TestViewer> viewer(new TestViewer());
  viewer->password_ = options.password;
  rfbClient* client = rfbGetClient(8, 3, 4);
  client->format.redShift = 16;
  client->format.greenShift = 8;
  client->format.blueShift = 0;
  viewer->encodings_ = options.encodings;
  // Empty: libvncclient's own list (which also asks for QEMU key events).
  client->appData.encodingsString =
      viewer->encodings_.empty() ? nullptr : viewer->encodings_.c_str();
  client->appData.useRemoteCursor = TRUE;
  if (options.quality_level >= 0) {
    client->appData.enableJPEG = TRUE;
    client->appData.qualityLevel = options.quality_level;
  } else {
    client->appData.enableJPEG = FALSE;
  }
  client->canHandleNewFBSize = TRUE;
  client->GetPassword = GetPassword;
  client->GotCursorShape = GotCursorShape;
  client->FinishedFrameBufferUpdate = FinishedUpdate;
  client->GotFrameBufferUpdate = GotPixels;
  free(client->serverHost);  // rfbGetClient's empty default
  client->serverHost = strdup(options.host.c_str());
  client->serverPort = options.port;
  rfbClientSetClientData(client, &viewer_tag, viewer.get());
  if (!rfbInitClient(client, nullptr, nullptr)) return nullptr;  // freed
  viewer->client_ = client;
  viewer->name_ = client->desktopName != nullptr ? client->desktopName : "";
  return viewer;
}

TestViewer::~TestViewer() {
  if (client_ == nullptr) return;
  // libvncclient leaves these to the application.
  free(client_->frameBuffer);
  free(client_->rcSource);
  free(client_->rcMask);
  rfbClientCleanup(client_);
}

int TestViewer::width() const { return client_->width; }
int TestViewer::height() const { return client_->height; }

uint32_t TestViewer::PixelAt(int x, int y) const {
  uint32_t pixel;
  std::memcpy(&pixel,
              client_->frameBuffer + (static_cast<size_t>(y) * width() + x) * 4,
              4);
  return pixel & 0x00FFFFFF;
}

bool TestViewer::Until(const std::function<bool()>& done,
                       absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    const int ready = WaitForMessage(client_, 50000);
    if (ready < 0) return false;
    if (ready > 0 && !HandleRFBServerMessage(client_)) return false;
  }
  return true;
}

bool TestViewer::Shows(const std::vector<uint32_t>& want, int w, int h) const {
  if (w != width() || h != height() ||
      want.size() != static_cast<size_t>(w) * h) {
    return false;
  }
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      if (PixelAt(x, y) != (want[static_cast<size_t>(y) * w + x] & 0x00FFFFFF))
        return false;
    }
  }
  return true;
}

std::string TestViewer::ToPpm() const {
  std::string ppm = "P6\n" + std::to_string(width()) + " " +
                    std::to_string(height()) + "\n255\n";
  ppm.reserve(ppm.size() + static_cast<size_t>(width()) * height() * 3);
  for (int y = 0; y < height(); ++y) {
    for (int x = 0; x < width(); ++x) {
      const uint32_t p = PixelAt(x, y);
      ppm.push_back(static_cast<char>(p >> 16));
      ppm.push_back(static_cast<char>(p >> 8));
      ppm.push_back(static_cast<char>(p));
    }
  }
  return ppm;
}

double TestViewer::Psnr(const std::vector<uint32_t>& want, int w, int h) const {
  if (w != width() || h != height() ||
      want.size() != static_cast<size_t>(w) * h) {
    return 0;
  }
  double squared = 0;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const uint32_t a = PixelAt(x, y);
      const uint32_t b = want[static_cast<size_t>(y) * w + x];
      for (int shift = 0; shift < 24; shift += 8) {
        const double d = static_cast<double>((a >> shift) & 0xFF) -
                         static_cast<double>((b >> shift) & 0xFF);
        squared += d * d;
      }
    }
  }
  if (squared == 0) return std::numeric_limits<double>::infinity();
  const double mse = squared / (3.0 * w * h);
  return 10 * std::log10(255.0 * 255.0 / mse);
}

void TestViewer::OnCursorShape(int hot_x, int hot_y, int w, int h) {
  ++cursor_shapes_;
  cursor_width_ = w;
  cursor_height_ = h;
  cursor_hot_x_ = hot_x;
  cursor_hot_y_ = hot_y;
  cursor_mask_.assign(client_->rcMask,
                      client_->rcMask + static_cast<size_t>(w) * h);
}

bool TestViewer::SendKey(uint32_t keysym, bool down) {
  return SendKeyEvent(client_, keysym, down ? TRUE : FALSE) != 0;
}

bool TestViewer::SendPointer(int x, int y, int buttons) {
  return SendPointerEvent(client_, x, y, buttons) != 0;
}

bool TestViewer::RequestSize(int w, int h) {
  return SendExtDesktopSize(client_, static_cast<uint16_t>(w),
                            static_cast<uint16_t>(h)) != 0;
}

bool TestViewer::RequestFull() {
  return SendFramebufferUpdateRequest(client_, 0, 0, width(), height(),
                                      FALSE) != 0;
}

std::unique_ptr<RawRfbClient> RawRfbClient::Connect(uint16_t port) {
  std::unique_ptr<RawRfbClient> client(new RawRfbClient());
  client->fd_ = ConnectLoopbackTcp(port);
  if (client->fd_ < 0) return nullptr;
  const absl::Duration timeout = absl::Seconds(10);
  char version[12];
  uint8_t count = 0;
  if (!client->ReadExact(version, 12, timeout) ||
      !client->Send("RFB 003.008\n") ||
      !client->ReadExact(&count, 1, timeout) || count == 0) {
    return nullptr;
  }
  std::string types(count, '\0');
  uint8_t result[4];
  if (!client->ReadExact(types.data(), count, timeout) ||
      !absl::StrContains(types, '\x01') || !client->Send("\x01") ||
      !client->ReadExact(result, 4, timeout) || ReadBigEndian32(result) != 0 ||
      !client->Send("\x01")) {  // ClientInit: shared
    return nullptr;
  }
  uint8_t init[24];
  if (!client->ReadExact(init, 24, timeout)) return nullptr;
  client->bytes_per_pixel_ = init[4] / 8;
  std::string name(ReadBigEndian32(init + 20), '\0');
  if (!client->ReadExact(name.data(), name.size(), timeout)) return nullptr;
  return client;
}

RawRfbClient::~RawRfbClient() {
  if (fd_ >= 0) close(fd_);
}

bool RawRfbClient::Send(const std::string& bytes) {
  return write(fd_, bytes.data(), bytes.size()) ==
         static_cast<ssize_t>(bytes.size());
}

bool RawRfbClient::SetEncodings(const std::vector<int32_t>& encodings) {
  std::string message = {2, 0, static_cast<char>(encodings.size() >> 8),
                         static_cast<char>(encodings.size())};
  for (int32_t encoding : encodings)
    AppendBigEndian32(&message, static_cast<uint32_t>(encoding));
  return Send(message);
}

bool RawRfbClient::ReadExact(void* bytes, size_t size, absl::Duration timeout) {
  auto* out = static_cast<uint8_t*>(bytes);
  const absl::Time deadline = absl::Now() + timeout;
  while (size > 0) {
    pollfd poll_fd{.fd = fd_, .events = POLLIN, .revents = 0};
    const int wait_ms =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0 || poll(&poll_fd, 1, wait_ms) <= 0) return false;
    const ssize_t n = read(fd_, out, size);
    if (n <= 0) return false;
    out += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

constexpr int32_t kRichCursorEncoding = -239;

std::optional<RawRfbClient::Rect> RawRfbClient::ReadPseudoRect(
    int32_t encoding, size_t payload, absl::Duration timeout,
    const std::string& request_after_update) {
  const absl::Time deadline = absl::Now() + timeout;
  std::optional<Rect> found;
  while (absl::Now() < deadline) {
    uint8_t header[4];
    if (!ReadExact(header, 4, deadline - absl::Now()) || header[0] != 0)
      return std::nullopt;  // only FramebufferUpdates are expected
    const uint32_t rects = uint32_t{header[2]} << 8 | header[3];
    for (uint32_t i = 0; i < rects; ++i) {
      uint8_t rect[12];
      if (!ReadExact(rect, 12, deadline - absl::Now())) return std::nullopt;
      const uint32_t w = uint32_t{rect[4]} << 8 | rect[5];
      const uint32_t h = uint32_t{rect[6]} << 8 | rect[7];
      const auto rect_encoding =
          static_cast<int32_t>(ReadBigEndian32(rect + 8));
      size_t skip = 0;
      if (rect_encoding == 0) {
        skip = size_t{w} * h * bytes_per_pixel_;
      } else if (rect_encoding == kRichCursorEncoding &&
                 encoding != kRichCursorEncoding) {
        // Pixels, then a 1-bit mask with rows padded to bytes.
        skip = size_t{w} * h * bytes_per_pixel_ + size_t{(w + 7) / 8} * h;
      } else if (rect_encoding == encoding && !found) {
        found = Rect{.x = static_cast<uint16_t>(rect[0] << 8 | rect[1]),
                     .y = static_cast<uint16_t>(rect[2] << 8 | rect[3]),
                     .width = static_cast<uint16_t>(w),
                     .height = static_cast<uint16_t>(h),
                     .payload = std::string(payload, '\0')};
        if (!ReadExact(found->payload.data(), payload, deadline - absl::Now()))
          return std::nullopt;
        continue;
      } else if (rect_encoding >= 0) {
        return std::nullopt;  // an encoding this client did not ask for
      }
      std::string ignored(skip, '\0');
      if (!ReadExact(ignored.data(), skip, deadline - absl::Now()))
        return std::nullopt;
    }
    if (found) return found;
    if (!request_after_update.empty() && !Send(request_after_update))
      return std::nullopt;
  }
  return std::nullopt;
}

bool RawRfbClient::WaitClosed(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char byte;
  while (absl::Now() < deadline) {
    pollfd poll_fd{.fd = fd_, .events = POLLIN, .revents = 0};
    const int wait_ms =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (poll(&poll_fd, 1, std::max(wait_ms, 1)) <= 0) continue;
    const ssize_t n = read(fd_, &byte, 1);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
  }
  return false;
}

}  // namespace vgpu::vnc
