// A VNC client that stops reading must not slow the others or grow the
// bridge's memory: one raw client asks for updates of a changing 1080p
// screen and then reads nothing for 10 s, while a healthy libvncclient
// viewer keeps receiving. libvncserver's threaded mode gives each client
// its own output thread, so only the stuck one blocks.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

#include "clients/vnc/test_viewer.h"
#include "clients/vnc/vnc_screen.h"

namespace vgpu::vnc {
namespace {

// Resident memory of this process, bytes.
size_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    size_t kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %zu kB", &kb) == 1) return kb << 10;
  }
  return 0;
}

TEST(VncStuckClientTest, OthersKeepTheirFrameRateAndMemoryStaysBounded) {
  constexpr uint32_t kW = 1920, kH = 1080;
  auto screen = VncScreen::Create({}, kW, kH);
  ASSERT_TRUE(screen.ok()) << screen.status();
  std::vector<uint32_t> pixels(size_t{kW} * kH);
  auto draw = [&](uint32_t frame) {
    for (uint32_t y = 0; y < kH; y += 4)
      for (uint32_t x = 0; x < kW; ++x)
        pixels[size_t{y} * kW + x] = (x * 3 + y + frame * 40) & 0xFFFFFF;
    return (*screen)->Update(0, 0, kW, kH,
                             reinterpret_cast<const uint8_t*>(pixels.data()),
                             size_t{kW} * 4);
  };
  ASSERT_TRUE(draw(0).ok());

  // The stuck client: raw encoding (8 MB an update), a small receive
  // buffer, continuous requests, and then no reading at all.
  auto stuck = RawRfbClient::Connect((*screen)->port());
  ASSERT_NE(stuck, nullptr);
  ASSERT_TRUE(stuck->SetEncodings({0}));
  std::string requests;
  for (int i = 0; i < 64; ++i)
    requests += std::string("\x03\x01\0\0\0\0\x07\x80\x04\x38", 10);
  ASSERT_TRUE(stuck->Send(requests));

  auto healthy =
      TestViewer::Connect({.port = (*screen)->port(), .encodings = "hextile"});
  ASSERT_NE(healthy, nullptr);
  ASSERT_TRUE(healthy->Until([&] { return healthy->updates() > 0; }));
  const size_t resident_before = ResidentBytes();

  // 10 s of frames at 10 per second; the healthy viewer reads as they come.
  const absl::Time start = absl::Now();
  const uint64_t updates_before = healthy->updates();
  uint32_t frames = 0;
  while (absl::Now() - start < absl::Seconds(10)) {
    ASSERT_TRUE(draw(++frames).ok());
    const absl::Time next = start + absl::Milliseconds(100) * frames;
    healthy->Until([&] { return absl::Now() >= next; },
                   absl::Milliseconds(200));
  }
  const uint64_t received = healthy->updates() - updates_before;
  const size_t resident_after = ResidentBytes();
  std::printf(
      "healthy viewer: %llu updates for %u frames; resident %zu -> "
      "%zu MB\n",
      static_cast<unsigned long long>(received), frames, resident_before >> 20,
      resident_after >> 20);
  // Updates merge frames when the viewer is busy decoding; a viewer stalled
  // by the stuck one would get about none (libvncserver's single-threaded
  // loop gave 49 of 302 in the same situation).
  EXPECT_GE(received, frames / 2);
  // Nothing queues per client: libvncserver encodes from the screen when a
  // client can take it.
  EXPECT_LT(resident_after, resident_before + (64u << 20));
}

}  // namespace
}  // namespace vgpu::vnc
