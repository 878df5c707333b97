#include "clients/vnc/test_viewer.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "absl/time/clock.h"
#include <rfb/rfbclient.h>

namespace vgpu::vnc {
namespace {

// rfbClientGetClientData's key: any unique address.
int kViewerTag;

TestViewer* ViewerOf(rfbClient* client) {
  return static_cast<TestViewer*>(rfbClientGetClientData(client, &kViewerTag));
}

char* GetPassword(rfbClient* client) {
  return strdup(ViewerOf(client)->password().c_str());
}

void GotCursorShape(rfbClient* client, int hot_x, int hot_y, int width,
                    int height, int /*bytes_per_pixel*/) {
  ViewerOf(client)->OnCursorShape(hot_x, hot_y, width, height);
}

void FinishedUpdate(rfbClient* client) { ViewerOf(client)->OnUpdate(); }

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
  client->appData.encodingsString = viewer->encodings_.c_str();
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
  client->serverHost = strdup(options.host.c_str());
  client->serverPort = options.port;
  rfbClientSetClientData(client, &kViewerTag, viewer.get());
  if (!rfbInitClient(client, nullptr, nullptr)) return nullptr;  // freed
  viewer->client_ = client;
  viewer->name_ = client->desktopName != nullptr ? client->desktopName : "";
  return viewer;
}

TestViewer::~TestViewer() {
  if (client_ != nullptr) rfbClientCleanup(client_);
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

bool TestViewer::RequestFull() {
  return SendFramebufferUpdateRequest(client_, 0, 0, width(), height(),
                                      FALSE) != 0;
}

}  // namespace vgpu::vnc
