// A real RFB client (libvncclient) against VncScreen: what it sees equals
// what was fed, in each encoding it may ask for, through copies and a
// resize; passwords, view-only clients, the client limit, the cursor shape.
#include "clients/vnc/vnc_screen.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

#include "clients/vnc/rfb_extensions.h"
#include "clients/vnc/test_viewer.h"
#include "common/eventually.h"
#include "common/mutex.h"

namespace vgpu::vnc {
namespace {

std::vector<uint32_t> Noise(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> pixels(count);
  for (uint32_t& p : pixels) p = rng() & 0x00FFFFFF;
  return pixels;
}

// Each of R, G, B within 16 (JPEG).
bool Near(uint32_t a, uint32_t b) {
  for (int shift = 0; shift < 24; shift += 8) {
    const int d = static_cast<int>((a >> shift) & 0xFF) -
                  static_cast<int>((b >> shift) & 0xFF);
    if (d > 16 || d < -16) return false;
  }
  return true;
}

const uint8_t* Bytes(const std::vector<uint32_t>& pixels) {
  return reinterpret_cast<const uint8_t*>(pixels.data());
}

class VncScreenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VncScreenTest, AViewerSeesWhatWasFedThroughCopiesAndAResize) {
  constexpr uint32_t kW = 320, kH = 200;
  auto screen = VncScreen::Create({}, kW, kH);
  ASSERT_TRUE(screen.ok()) << screen.status();
  std::vector<uint32_t> shown = Noise(size_t{kW} * kH, 1);
  ASSERT_TRUE((*screen)->Update(0, 0, kW, kH, Bytes(shown), kW * 4).ok());
  auto viewer =
      TestViewer::Connect({.port = (*screen)->port(), .encodings = GetParam()});
  ASSERT_NE(viewer, nullptr);
  EXPECT_TRUE(viewer->Until([&] { return viewer->Shows(shown, kW, kH); }));
  // A scroll by 16 rows as a copy, then the new rows.
  ASSERT_TRUE((*screen)->Copy(0, 0, kW, kH - 16, 0, 16).ok());
  std::vector<uint32_t> scrolled(shown.begin() + 16 * kW, shown.end());
  std::vector<uint32_t> fresh = Noise(size_t{kW} * 16, 2);
  scrolled.insert(scrolled.end(), fresh.begin(), fresh.end());
  ASSERT_TRUE((*screen)->Update(0, kH - 16, kW, 16, Bytes(fresh), kW * 4).ok());
  EXPECT_TRUE(viewer->Until([&] { return viewer->Shows(scrolled, kW, kH); }));
  // A new size.
  ASSERT_TRUE((*screen)->SetMode(200, 120).ok());
  std::vector<uint32_t> small = Noise(200 * 120, 3);
  ASSERT_TRUE((*screen)->Update(0, 0, 200, 120, Bytes(small), 200 * 4).ok());
  EXPECT_TRUE(viewer->Until([&] { return viewer->Shows(small, 200, 120); }));
}

INSTANTIATE_TEST_SUITE_P(Encodings, VncScreenTest,
                         ::testing::Values("raw", "hextile", "zrle",
                                           "copyrect zlib", "copyrect tight"));

TEST(VncScreenErrorsTest, FeedsOutsideTheScreenAreRefused) {
  auto screen = VncScreen::Create({}, 64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  uint32_t pixel = 0;
  EXPECT_FALSE(
      (*screen)
          ->Update(60, 0, 8, 1, reinterpret_cast<const uint8_t*>(&pixel), 32)
          .ok());
  EXPECT_FALSE((*screen)->Copy(0, 0, 8, 8, 60, 0).ok());
  EXPECT_FALSE((*screen)->Copy(0xFFFFFFFFu, 0, 2, 1, 0, 0).ok());
  EXPECT_FALSE((*screen)->SetMode(0, 10).ok());
  EXPECT_FALSE((*screen)->SetCursor(64, 64, 0, 0, std::string(10, 'x')).ok());
  EXPECT_FALSE(
      (*screen)->SetCursor(1000, 1, 0, 0, std::string(4000, 'x')).ok());
  EXPECT_FALSE(VncScreen::Create({}, 0, 10).ok());
  EXPECT_FALSE(VncScreen::Create({.host = "localhost"}, 10, 10).ok());
  // The same port twice.
  auto again = VncScreen::Create({.port = (*screen)->port()}, 10, 10);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kUnavailable);
}

// Counts what reaches the input sink.
class CountingInput : public VncInput {
 public:
  void OnKey(bool, uint32_t keysym) override {
    last_key = keysym;
    ++keys;
  }
  void OnExtendedKey(bool down, uint32_t keysym, uint32_t keycode,
                     bool follows_leds) override {
    last_keycode = keycode;
    last_down = down;
    last_follows_leds = follows_leds;
    OnKey(down, keysym);
  }
  void OnPointer(uint32_t buttons, uint32_t x, uint32_t) override {
    last_buttons = buttons;
    last_x = x;
    ++pointers;
  }
  std::atomic<uint32_t> keys{0}, pointers{0}, last_key{0}, last_buttons{0},
      last_x{0}, last_keycode{0};
  std::atomic<bool> last_down{false}, last_follows_leds{false};
};

TEST(VncScreenAuthTest, PasswordsGiveControlOrViewOnly) {
  CountingInput input;
  auto screen = VncScreen::Create({.passwords = {"full-pw1"},
                                   .view_only_passwords = {"view-pw2"},
                                   .input = &input},
                                  64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  const uint16_t port = (*screen)->port();
  EXPECT_EQ(TestViewer::Connect({.port = port}), nullptr);  // no password
  EXPECT_EQ(TestViewer::Connect({.port = port, .password = "wrong"}), nullptr);

  auto full = TestViewer::Connect({.port = port, .password = "full-pw1"});
  ASSERT_NE(full, nullptr);
  ASSERT_TRUE(full->SendKey(0x61, true));
  ASSERT_TRUE(full->SendPointer(10, 20, 1));
  auto view = TestViewer::Connect({.port = port, .password = "view-pw2"});
  ASSERT_NE(view, nullptr);
  ASSERT_TRUE(view->SendKey(0x62, true));
  ASSERT_TRUE(view->SendPointer(30, 40, 4));
  // A full-control key after the view-only one: once it is in, the
  // view-only one was handled (and dropped) before it.
  ASSERT_TRUE(view->Until([&] { return view->width() == 64; }));
  ASSERT_TRUE(full->SendKey(0x63, true));
  ASSERT_TRUE(full->Until([&] { return input.keys.load() == 2; }));
  EXPECT_EQ(input.last_key.load(), 0x63u);
  EXPECT_EQ(input.pointers.load(), 1u);
  EXPECT_EQ(input.last_x.load(), 10u);
  EXPECT_EQ(input.last_buttons.load(), 1u);
}

TEST(VncScreenLimitsTest, ClientsOverTheLimitAreRefusedOthersStay) {
  auto screen = VncScreen::Create({.max_clients = 2}, 64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  const uint16_t port = (*screen)->port();
  auto first = TestViewer::Connect({.port = port});
  auto second = TestViewer::Connect({.port = port});
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(TestViewer::Connect({.port = port}), nullptr);
  EXPECT_EQ((*screen)->stats().refused.load(), 1u);
  // The first two still get updates.
  std::vector<uint32_t> pixels = Noise(64 * 48, 7);
  ASSERT_TRUE((*screen)->Update(0, 0, 64, 48, Bytes(pixels), 64 * 4).ok());
  EXPECT_TRUE(first->Until([&] { return first->Shows(pixels, 64, 48); }));
  EXPECT_TRUE(second->Until([&] { return second->Shows(pixels, 64, 48); }));
  // One leaves: a new one may come.
  second.reset();
  ASSERT_TRUE(
      first->Until([&] { return (*screen)->stats().clients.load() == 1; }));
  EXPECT_NE(TestViewer::Connect({.port = port}), nullptr);
}

TEST(VncScreenCursorTest, TheShapeReachesCursorClientsAndNeverThePicture) {
  auto screen = VncScreen::Create({}, 64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  std::vector<uint32_t> pixels = Noise(64 * 48, 9);
  ASSERT_TRUE((*screen)->Update(0, 0, 64, 48, Bytes(pixels), 64 * 4).ok());
  auto viewer = TestViewer::Connect(
      {.port = (*screen)->port(), .encodings = "copyrect zrle"});
  auto plain =
      TestViewer::Connect({.port = (*screen)->port(), .encodings = "raw"});
  ASSERT_NE(viewer, nullptr);
  ASSERT_NE(plain, nullptr);
  // A 16x8 shape: left half opaque, right half transparent; hotspot 2,3.
  std::string bgra(16 * 8 * 4, '\0');
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) bgra[(y * 16 + x) * 4 + 3] = '\xFF';
  ASSERT_TRUE((*screen)->SetCursor(16, 8, 2, 3, bgra).ok());
  ASSERT_TRUE(viewer->Until([&] {
    return viewer->cursor_shapes() > 0 && viewer->cursor_width() == 16;
  }));
  EXPECT_EQ(viewer->cursor_height(), 8);
  EXPECT_EQ(viewer->cursor_hot_x(), 2);
  EXPECT_EQ(viewer->cursor_hot_y(), 3);
  EXPECT_EQ(viewer->cursor_mask()[0], 1);
  EXPECT_EQ(viewer->cursor_mask()[15], 0);
  // A client without cursor shapes sees the picture only.
  EXPECT_TRUE(plain->Until([&] { return plain->Shows(pixels, 64, 48); }));
  ASSERT_TRUE(plain->SendPointer(5, 5, 0));
  ASSERT_TRUE(plain->RequestFull());
  ASSERT_TRUE(plain->Until([&] { return plain->updates() >= 2; }));
  EXPECT_TRUE(plain->Shows(pixels, 64, 48));
}

// Big-endian bytes of a QEMU extended key event message.
std::string QemuKey(bool down, uint32_t keysym, uint32_t keycode,
                    uint8_t sub_type = 0) {
  std::string m = {static_cast<char>(255), static_cast<char>(sub_type), 0,
                   static_cast<char>(down ? 1 : 0)};
  AppendBigEndian32(&m, keysym);
  AppendBigEndian32(&m, keycode);
  return m;
}

TEST(VncScreenQemuTest, ExtendedKeysAreAcknowledgedAndDelivered) {
  CountingInput input;
  auto screen = VncScreen::Create({.input = &input}, 64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  auto client = RawRfbClient::Connect((*screen)->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SetEncodings({0, kQemuExtendedKeyEncoding}));
  // The acknowledgement a client waits for before sending such keys.
  ASSERT_TRUE(
      client->ReadPseudoRect(kQemuExtendedKeyEncoding, 0, absl::Seconds(10)));
  ASSERT_TRUE(client->Send(QemuKey(true, 0x61, 0x1E)));
  ASSERT_TRUE(client->Send(QemuKey(false, 0xFF53, 0xCD)));  // Right, E0 4D
  auto viewer = TestViewer::Connect({.port = (*screen)->port()});
  ASSERT_NE(viewer, nullptr);
  ASSERT_TRUE(viewer->Until([&] { return input.keys.load() == 2; }));
  EXPECT_EQ(input.last_key.load(), 0xFF53u);
  EXPECT_EQ(input.last_keycode.load(), 0xCDu);
  EXPECT_FALSE(input.last_down.load());
  // It did not ask for the LED state: the bridge keeps its locks in step.
  EXPECT_FALSE(input.last_follows_leds.load());
  // A client that asks for it follows the guest's locks itself.
  auto follower = RawRfbClient::Connect((*screen)->port());
  ASSERT_NE(follower, nullptr);
  ASSERT_TRUE(follower->SetEncodings(
      {0, kQemuExtendedKeyEncoding, kQemuLedStateEncoding}));
  ASSERT_TRUE(
      follower->ReadPseudoRect(kQemuExtendedKeyEncoding, 0, absl::Seconds(10)));
  ASSERT_TRUE(follower->Send(QemuKey(true, 0x62, 0x30)));
  ASSERT_TRUE(viewer->Until([&] { return input.keys.load() == 3; }));
  EXPECT_TRUE(input.last_follows_leds.load());
}

TEST(VncScreenQemuTest, LedStateReachesClientsThatAskForIt) {
  auto screen = VncScreen::Create({}, 64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  (*screen)->SetLedState(0x4);  // Caps Lock
  auto client = RawRfbClient::Connect((*screen)->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SetEncodings({0, kQemuLedStateEncoding}));
  auto leds =
      client->ReadPseudoRect(kQemuLedStateEncoding, 1, absl::Seconds(10));
  ASSERT_TRUE(leds.has_value());
  EXPECT_EQ(leds->payload[0], 0x4);
  (*screen)->SetLedState(0x3);  // Num and Scroll Lock
  leds = client->ReadPseudoRect(kQemuLedStateEncoding, 1, absl::Seconds(10));
  ASSERT_TRUE(leds.has_value());
  EXPECT_EQ(leds->payload[0], 0x3);
}

TEST(VncScreenQemuTest, AClientSendingGarbageIsDroppedAndOthersStay) {
  CountingInput input;
  auto screen = VncScreen::Create({.input = &input}, 64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  std::vector<uint32_t> pixels = Noise(64 * 48, 11);
  ASSERT_TRUE((*screen)->Update(0, 0, 64, 48, Bytes(pixels), 64 * 4).ok());
  auto viewer = TestViewer::Connect({.port = (*screen)->port()});
  ASSERT_NE(viewer, nullptr);
  // An unknown QEMU sub-type (its length is unknown), and a message type
  // nobody knows.
  for (const std::string& garbage :
       {QemuKey(true, 1, 2, /*sub_type=*/7), std::string("\xC8garbage", 8)}) {
    auto bad = RawRfbClient::Connect((*screen)->port());
    ASSERT_NE(bad, nullptr);
    ASSERT_TRUE(bad->Send(garbage));
    EXPECT_TRUE(bad->WaitClosed(absl::Seconds(10)));
  }
  EXPECT_EQ(input.keys.load(), 0u);
  EXPECT_TRUE(viewer->Until([&] { return viewer->Shows(pixels, 64, 48); }));
  ASSERT_TRUE(viewer->Until([&] { return (*screen)->stats().clients == 1; }));
}

// Encode once: a Tight client with a JPEG quality level is served the
// daemon's rects (here fills, which are exact) for its profile, and
// losslessly what it has no forwarded encoding for; a ZRLE client beside it
// is served libvncserver's encoding of the screen's copy. The profiles in
// use are reported as clients come and go.
TEST(VncScreenForwardTest, TightJpegClientsGetTheForwardedRectsOthersTheCopy) {
  constexpr uint32_t kW = 256, kH = 96;
  Mutex mu;
  std::vector<std::set<ForwardProfile>> reports;
  auto screen =
      VncScreen::Create({.profiles_changed =
                             [&](const std::set<ForwardProfile>& profiles) {
                               MutexLock lock(&mu);
                               reports.push_back(profiles);
                             }},
                        kW, kH);
  ASSERT_TRUE(screen.ok()) << screen.status();
  auto reported = [&](const std::set<ForwardProfile>& want) {
    MutexLock lock(&mu);
    return !reports.empty() && reports.back() == want;
  };
  std::vector<uint32_t> shown = Noise(size_t{kW} * kH, 21);
  ASSERT_TRUE((*screen)->Update(0, 0, kW, kH, Bytes(shown), kW * 4).ok());
  // Tight quality level 6 is libvncserver's JPEG quality 79 at 4:4:4; its
  // daemon stream is up.
  const ForwardProfile q6{.quality = 79, .subsampling = 0};
  (*screen)->SetForwardLive(q6, true);
  auto tight = TestViewer::Connect({.port = (*screen)->port(),
                                    .encodings = "tight copyrect",
                                    .quality_level = 6});
  auto zrle = TestViewer::Connect(
      {.port = (*screen)->port(), .encodings = "zrle copyrect"});
  ASSERT_NE(tight, nullptr);
  ASSERT_NE(zrle, nullptr);
  // Its first screen has no forwarded encoding: lossless, exact.
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(shown, kW, kH); }));
  EXPECT_TRUE(zrle->Until([&] { return zrle->Shows(shown, kW, kH); }));
  EXPECT_TRUE(Eventually([&] { return reported({q6}); }));
  EXPECT_TRUE(
      Eventually([&] { return (*screen)->stats().lossless_rects.load() > 0; }));

  // A forwarded fill reaches the Tight client only (the copy is unchanged).
  auto update = std::make_shared<ForwardedUpdate>();
  update->width = kW;
  update->height = kH;
  update->rects.push_back({.x = 16,
                           .y = 8,
                           .width = 64,
                           .height = 32,
                           .kind = ForwardedRect::Kind::kFill,
                           .bgrx = 0x00C03010});
  (*screen)->Forward(q6, update);
  std::vector<uint32_t> filled = shown;
  for (uint32_t y = 8; y < 40; ++y)
    for (uint32_t x = 16; x < 80; ++x) filled[y * kW + x] = 0x00C03010;
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(filled, kW, kH); }));
  // Counted once written (the viewer may see it first).
  EXPECT_TRUE(Eventually(
      [&] { return (*screen)->stats().forwarded_fill_rects.load() == 1; }));
  // Another profile's update and one made for another size do not reach
  // it; a rect without payload (the daemon's lossless refresh) is sent
  // losslessly from the copy.
  auto other = std::make_shared<ForwardedUpdate>(*update);
  other->rects[0] = {.x = 150,
                     .y = 10,
                     .width = 20,
                     .height = 20,
                     .kind = ForwardedRect::Kind::kFill,
                     .bgrx = 0x00FFFFFF};
  (*screen)->Forward({.quality = 15, .subsampling = 1}, other);
  auto stale = std::make_shared<ForwardedUpdate>(*other);
  stale->width = kW * 2;
  (*screen)->Forward(q6, stale);
  auto refresh = std::make_shared<ForwardedUpdate>(*update);
  refresh->rects[0].kind = ForwardedRect::Kind::kLossless;
  (*screen)->Forward(q6, refresh);
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(shown, kW, kH); }));
  EXPECT_EQ((*screen)->stats().forwarded_fill_rects.load(), 1u);

  // Copies and updates of the screen's copy reach the ZRLE client only
  // (for the Tight one, the daemon's encoding of the change would come).
  ASSERT_TRUE((*screen)->Copy(0, 0, kW, kH - 16, 0, 16).ok());
  std::vector<uint32_t> scrolled(shown.begin() + 16 * kW, shown.end());
  std::vector<uint32_t> fresh = Noise(size_t{kW} * 16, 22);
  scrolled.insert(scrolled.end(), fresh.begin(), fresh.end());
  ASSERT_TRUE((*screen)->Update(0, kH - 16, kW, 16, Bytes(fresh), kW * 4).ok());
  EXPECT_TRUE(zrle->Until([&] { return zrle->Shows(scrolled, kW, kH); }));
  // Had they reached the Tight client's regions, they would go out with
  // its next forwarded update at the latest.
  auto next = std::make_shared<ForwardedUpdate>(*update);
  next->rects[0] = {.x = 100,
                    .y = 50,
                    .width = 20,
                    .height = 20,
                    .kind = ForwardedRect::Kind::kFill,
                    .bgrx = 0x0000FF00};
  // A rect without payload (the daemon's lossless refresh) is sent
  // losslessly from the copy as it is now.
  next->rects.push_back({.x = 200,
                         .y = 0,
                         .width = 16,
                         .height = 16,
                         .kind = ForwardedRect::Kind::kLossless});
  (*screen)->Forward(q6, next);
  std::vector<uint32_t> marked = shown;
  for (uint32_t y = 50; y < 70; ++y)
    for (uint32_t x = 100; x < 120; ++x) marked[y * kW + x] = 0x0000FF00;
  for (uint32_t y = 0; y < 16; ++y)
    for (uint32_t x = 200; x < 216; ++x)
      marked[y * kW + x] = scrolled[y * kW + x];
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(marked, kW, kH); }));
  // Asking for the whole screen again brings the copy's pixels, losslessly.
  ASSERT_TRUE(tight->RequestFull());
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(scrolled, kW, kH); }));

  // Its stream goes down: the client is encoded here again (repainted with
  // libvncserver's JPEG, one rect for the whole screen).
  (*screen)->SetForwardLive(q6, false);
  std::vector<uint32_t> flat(32 * 32, 0x00336699);
  ASSERT_TRUE((*screen)->Update(0, 0, 32, 32, Bytes(flat), 32 * 4).ok());
  EXPECT_TRUE(tight->Until([&] {
    for (int y = 0; y < 32; ++y) {
      for (int x = 0; x < 32; ++x) {
        if (!Near(tight->PixelAt(x, y), 0x00336699)) return false;
      }
    }
    return true;
  }));

  tight.reset();
  EXPECT_TRUE(Eventually([&] { return reported({}); }));
}

// The daemon's two streams (the copy's and the forwarded one) run apart. A
// forwarding client is sent nothing from the copy until the copy shows the
// newest frame it was forwarded: else an older picture would stay (nothing
// forwarded repaints it, and the copy's own changes go only to clients that
// libvncserver encodes for).
TEST(VncScreenForwardTest, CopyWaitsForTheFramesForwarded) {
  constexpr uint32_t kW = 128, kH = 64;
  auto screen = VncScreen::Create(
      {.profiles_changed = [](const std::set<ForwardProfile>&) {}}, kW, kH);
  ASSERT_TRUE(screen.ok()) << screen.status();
  constexpr uint64_t kDaemon = 7;
  std::vector<uint32_t> first = Noise(size_t{kW} * kH, 31);
  ASSERT_TRUE((*screen)->Update(0, 0, kW, kH, Bytes(first), kW * 4).ok());
  (*screen)->SetCopyFrame(kDaemon, 10);
  const ForwardProfile q6{.quality = 79, .subsampling = 0};
  (*screen)->SetForwardLive(q6, true);
  auto tight = TestViewer::Connect({.port = (*screen)->port(),
                                    .encodings = "tight copyrect",
                                    .quality_level = 6});
  ASSERT_NE(tight, nullptr);
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(first, kW, kH); }));

  // A frame's update: a 16x16 fill at the top left (which the client shows
  // once the update was handled) and the rows below it to be sent from the
  // copy (as the daemon's lossless refresh or an adaptive stream's rects).
  auto forward = [&](uint32_t width, uint32_t height, uint64_t instance,
                     uint64_t sequence, uint32_t fill) {
    auto update = std::make_shared<ForwardedUpdate>();
    update->width = width;
    update->height = height;
    update->instance = instance;
    update->sequence = sequence;
    update->rects.push_back({.x = 0,
                             .y = 0,
                             .width = 16,
                             .height = 16,
                             .kind = ForwardedRect::Kind::kFill,
                             .bgrx = fill});
    update->rects.push_back({.x = 0,
                             .y = 16,
                             .width = width,
                             .height = height - 16,
                             .kind = ForwardedRect::Kind::kLossless});
    (*screen)->Forward(q6, update);
  };
  auto filled = [&](std::vector<uint32_t> pixels, uint32_t width,
                    uint32_t fill) {
    for (uint32_t y = 0; y < 16; ++y)
      for (uint32_t x = 0; x < 16; ++x) pixels[y * width + x] = fill;
    return pixels;
  };
  auto shows_fill = [&](uint32_t fill) {
    return [&tight, fill] {
      return tight->PixelAt(0, 0) == fill && tight->PixelAt(15, 15) == fill;
    };
  };

  // Frame 12 is forwarded while the copy still shows frame 10: the fill
  // goes, the rows below wait until the copy shows frame 12.
  forward(kW, kH, kDaemon, 12, 0x00FF8000);
  EXPECT_TRUE(tight->Until(shows_fill(0x00FF8000)));
  std::vector<uint32_t> second = Noise(size_t{kW} * kH, 32);
  ASSERT_TRUE((*screen)->Update(0, 0, kW, kH, Bytes(second), kW * 4).ok());
  (*screen)->SetCopyFrame(kDaemon, 12);
  std::vector<uint32_t> want = filled(second, kW, 0x00FF8000);
  for (uint32_t y = 0; y < 16; ++y)
    for (uint32_t x = 16; x < kW; ++x) want[y * kW + x] = first[y * kW + x];
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(want, kW, kH); }));

  // A new mode, which the forwarded stream has first: its frame 20 comes
  // for a size the screen does not have yet (so it is not sent). The copy
  // then shows the new mode's frame 19, then 20; only 20 may be painted.
  constexpr uint32_t kW2 = 96, kH2 = 80;
  forward(kW2, kH2, kDaemon, 20, 0x00FF8000);
  ASSERT_TRUE((*screen)->SetMode(kW2, kH2).ok());
  std::vector<uint32_t> older = Noise(size_t{kW2} * kH2, 33);
  ASSERT_TRUE((*screen)->Update(0, 0, kW2, kH2, Bytes(older), kW2 * 4).ok());
  (*screen)->SetCopyFrame(kDaemon, 19);
  forward(kW2, kH2, kDaemon, 19, 0x0000FF00);  // handled once it shows
  EXPECT_TRUE(tight->Until([&] {
    return tight->width() == int{kW2} && tight->height() == int{kH2};
  }));
  EXPECT_TRUE(tight->Until(shows_fill(0x0000FF00)));
  std::vector<uint32_t> newer = Noise(size_t{kW2} * kH2, 34);
  ASSERT_TRUE((*screen)->Update(0, 0, kW2, kH2, Bytes(newer), kW2 * 4).ok());
  (*screen)->SetCopyFrame(kDaemon, 20);
  want = filled(newer, kW2, 0x0000FF00);
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(want, kW2, kH2); }));

  // The daemon restarted: its frame 1 is not older than the old daemon's
  // frame 20. The copy waits until it shows the new daemon's.
  constexpr uint64_t kRestarted = 8;
  forward(kW2, kH2, kRestarted, 1, 0x000080FF);
  EXPECT_TRUE(tight->Until(shows_fill(0x000080FF)));
  std::vector<uint32_t> restarted = Noise(size_t{kW2} * kH2, 35);
  ASSERT_TRUE(
      (*screen)->Update(0, 0, kW2, kH2, Bytes(restarted), kW2 * 4).ok());
  (*screen)->SetCopyFrame(kRestarted, 1);
  want = filled(restarted, kW2, 0x000080FF);
  for (uint32_t y = 0; y < 16; ++y)
    for (uint32_t x = 16; x < kW2; ++x) want[y * kW2 + x] = newer[y * kW2 + x];
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(want, kW2, kH2); }));
}

// A Tight JPEG client that libvncserver encodes for (no forwarding here)
// first gets JPEG, and the same pixels losslessly once they stay still.
TEST(VncScreenRefreshTest, JpegRegionsComeAgainLosslesslyOnceStill) {
  constexpr uint32_t kW = 160, kH = 96;
  auto screen = VncScreen::Create({}, kW, kH);
  ASSERT_TRUE(screen.ok()) << screen.status();
  std::vector<uint32_t> photo = Noise(size_t{kW} * kH, 41);
  ASSERT_TRUE((*screen)->Update(0, 0, kW, kH, Bytes(photo), kW * 4).ok());
  auto tight = TestViewer::Connect(
      {.port = (*screen)->port(), .encodings = "tight", .quality_level = 6});
  ASSERT_NE(tight, nullptr);
  // Noise in JPEG is far from exact: the exact picture can only be the
  // refresh.
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(photo, kW, kH); }));
}

// A copy of what a client was sent with JPEG is JPEG where it lands too,
// and is refreshed there as well.
TEST(VncScreenRefreshTest, CopiesOfJpegRegionsAreRefreshedToo) {
  constexpr uint32_t kW = 160, kH = 96, kHalf = kH / 2;
  auto screen = VncScreen::Create({}, kW, kH);
  ASSERT_TRUE(screen.ok()) << screen.status();
  const VncScreenStats& stats = (*screen)->stats();
  auto tight = TestViewer::Connect({.port = (*screen)->port(),
                                    .encodings = "copyrect tight",
                                    .quality_level = 6});
  ASSERT_NE(tight, nullptr);
  // The first screen (all of it) has been refreshed: what is refreshed
  // from here on was sent later.
  ASSERT_TRUE(
      tight->Until([&] { return stats.lossless_refreshes.load() >= 1; }));
  const std::vector<uint32_t> photo = Noise(size_t{kW} * kHalf, 43);
  ASSERT_TRUE((*screen)->Update(0, 0, kW, kHalf, Bytes(photo), kW * 4).ok());
  // The top has come as JPEG (its refresh comes after 300 ms of stillness
  // at the earliest) and moves to the bottom, which was not sent since.
  ASSERT_TRUE(tight->Until([&] {
    int lit = 0;
    for (int y = 0; y < static_cast<int>(kHalf); y += 4)
      for (int x = 0; x < static_cast<int>(kW); x += 4)
        lit += tight->PixelAt(x, y) != 0;
    return lit > static_cast<int>(kW * kHalf / 32);
  }));
  ASSERT_TRUE((*screen)->Copy(0, kHalf, kW, kHalf, 0, 0).ok());
  std::vector<uint32_t> want = photo;
  want.insert(want.end(), photo.begin(), photo.end());
  EXPECT_TRUE(tight->Until([&] { return tight->Shows(want, kW, kH); }));
}

// The guest's pointer reaches clients that ask for PointerPos, clamped into
// the screen, in an update of its own that answers a request (the client
// asks again after each update, as viewers do).
TEST(VncScreenCursorTest, PointerPositionsReachClientsThatAskForThem) {
  auto screen = VncScreen::Create({}, 64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  auto client = RawRfbClient::Connect((*screen)->port());
  ASSERT_NE(client, nullptr);
  // libvncserver takes PointerPos only with cursor shapes (RichCursor).
  constexpr int32_t kPointerPos = -232, kRichCursor = -239;
  ASSERT_TRUE(client->SetEncodings({0, kRichCursor, kPointerPos}));
  const std::string update_request("\x03\x01\0\0\0\0\0\x40\0\x30", 10);
  (*screen)->SetPointerPosition(30, 20);
  ASSERT_TRUE(client->Send(update_request));
  auto position =
      client->ReadPseudoRect(kPointerPos, 0, absl::Seconds(10), update_request);
  ASSERT_TRUE(position.has_value());
  EXPECT_EQ(position->x, 30);
  EXPECT_EQ(position->y, 20);
  (*screen)->SetPointerPosition(500, 500);
  ASSERT_TRUE(client->Send(update_request));
  position =
      client->ReadPseudoRect(kPointerPos, 0, absl::Seconds(10), update_request);
  ASSERT_TRUE(position.has_value());
  EXPECT_EQ(position->x, 63);
  EXPECT_EQ(position->y, 47);
}

// What the guest draws as its pointer moves reaches a libvncclient viewer
// that asked for PointerPos (TestViewer: useRemoteCursor, and libvncclient's
// usual loop, WaitForMessage on the socket and one message per wake-up).
// Two updates in one round could be read together and the second then
// waited in libvncclient's buffer until more data came.
TEST(VncScreenCursorTest, PixelsDrawnAsThePointerMovesReachPointerClients) {
  auto screen = VncScreen::Create({}, 64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  const std::vector<uint32_t> pixels(64 * 48, 0xFF201810);
  ASSERT_TRUE((*screen)->Update(0, 0, 64, 48, Bytes(pixels), 64 * 4).ok());
  auto viewer = TestViewer::Connect({.port = (*screen)->port()});
  ASSERT_NE(viewer, nullptr);
  ASSERT_TRUE(viewer->Until([&] { return viewer->Shows(pixels, 64, 48); }));
  for (uint32_t i = 0; i < 20; ++i) {
    const uint32_t x = 2 + i * 3, y = 2 + i * 2;
    const uint32_t colour = 0xFF7FD100 | i;
    const std::vector<uint32_t> dot(25, colour);
    (*screen)->SetPointerPosition(x, y);
    ASSERT_TRUE((*screen)->Update(x - 2, y - 2, 5, 5, Bytes(dot), 5 * 4).ok());
    EXPECT_TRUE(viewer->Until(
        [&] {
          return viewer->PixelAt(static_cast<int>(x), static_cast<int>(y)) ==
                 (colour & 0xFFFFFF);
        },
        absl::Seconds(2)))
        << "dot " << i;
  }
}

// Clients that leave as soon as they asked for a picture all end (their
// threads too: libvncserver 0.9.14's output thread can miss the close's
// wake-up, which rfb_client_fuzzer hit about once in 10^4 clients), so the
// client limit still lets new ones in.
TEST(VncScreenLimitsTest, ClientsThatComeAndGoAllLeave) {
  auto screen = VncScreen::Create({.max_clients = 4}, 64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  // Version 3.8, security None, shared, a full FramebufferUpdateRequest.
  const std::string messages = std::string("RFB 003.008\n\x01\x01", 14) +
                               std::string(
                                   "\x03\x00\x00\x00\x00\x00\x00"
                                   "\x40\x00\x30",
                                   10);
  for (int i = 0; i < 300; ++i) {
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    ASSERT_EQ(write(pair[0], messages.data(), messages.size()),
              static_cast<ssize_t>(messages.size()));
    shutdown(pair[0], SHUT_WR);
    // A client that closed its socket may still be ending (its threads).
    ASSERT_TRUE(Eventually([&] { return (*screen)->stats().clients < 4; }))
        << "client " << i;
    ASSERT_TRUE((*screen)->AddClient(pair[1]).ok()) << "client " << i;
    char sink[4096];
    while (read(pair[0], sink, sizeof(sink)) > 0) {
    }
    close(pair[0]);
  }
  EXPECT_TRUE(Eventually([&] { return (*screen)->stats().clients == 0; }));
  EXPECT_NE(TestViewer::Connect({.port = (*screen)->port()}), nullptr);
}

// SetDesktopSize for one screen of `width` x `height`.
std::string SetDesktopSize(uint16_t width, uint16_t height,
                           uint8_t screens = 1) {
  std::string m = {static_cast<char>(251),         0,
                   static_cast<char>(width >> 8),  static_cast<char>(width),
                   static_cast<char>(height >> 8), static_cast<char>(height),
                   static_cast<char>(screens),     0};
  for (uint8_t i = 0; i < screens; ++i) {
    std::string screen(16, '\0');
    screen[8] = static_cast<char>(width >> 8);
    screen[9] = static_cast<char>(width);
    screen[10] = static_cast<char>(height >> 8);
    screen[11] = static_cast<char>(height);
    m += screen;
  }
  return m;
}

TEST(VncScreenResizeTest, SetDesktopSizeAsksTheGuestAndIsAnsweredHonestly) {
  constexpr int32_t kExtendedDesktopSize = -308;
  std::atomic<uint32_t> asked_width{0};
  std::atomic<bool> guest_told{false};
  auto screen = VncScreen::Create({.view_only_passwords = {},
                                   .resize =
                                       [&](uint32_t width, uint32_t) {
                                         asked_width = width;
                                         return guest_told.load();
                                       }},
                                  64, 48);
  ASSERT_TRUE(screen.ok()) << screen.status();
  auto client = RawRfbClient::Connect((*screen)->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SetEncodings({0, kExtendedDesktopSize}));
  // Answers come in updates: each request below asks for one, and the
  // client asks again after each update it gets (as viewers do: an update
  // may come first with the pixels it was owed, the answer in the next).
  const std::string update_request("\x03\x01\0\0\0\0\0\x40\0\x30", 10);
  // The guest was not told: "prohibited" (1), at once.
  ASSERT_TRUE(client->Send(SetDesktopSize(800, 600) + update_request));
  auto answer = client->ReadPseudoRect(kExtendedDesktopSize, 20,
                                       absl::Seconds(10), update_request);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->x, 1);  // requested by this client
  EXPECT_EQ(answer->y, 1);  // resize prohibited
  EXPECT_EQ(asked_width.load(), 800u);
  // Two screens, or a side out of range: "invalid screen layout" (3), and
  // the guest is not asked.
  ASSERT_TRUE(client->Send(SetDesktopSize(640, 480, 2) + update_request));
  answer = client->ReadPseudoRect(kExtendedDesktopSize, 20, absl::Seconds(10),
                                  update_request);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->y, 3);
  ASSERT_TRUE(client->Send(SetDesktopSize(8, 600) + update_request));
  answer = client->ReadPseudoRect(kExtendedDesktopSize, 20, absl::Seconds(10),
                                  update_request);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->y, 3);
  EXPECT_EQ(asked_width.load(), 800u);
  // The guest was told: success, answered with the new mode.
  guest_told = true;
  ASSERT_TRUE(client->Send(SetDesktopSize(320, 200) + update_request));
  ASSERT_TRUE(Eventually(
      [&] { return (*screen)->stats().resizes_granted.load() == 1; }));
  ASSERT_TRUE((*screen)->SetMode(320, 200).ok());
  answer = client->ReadPseudoRect(kExtendedDesktopSize, 20, absl::Seconds(10),
                                  update_request);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->y, 0);  // success
  EXPECT_EQ(answer->width, 320);
  EXPECT_EQ(answer->height, 200);
  EXPECT_EQ((*screen)->stats().resizes_granted.load(), 1u);
  EXPECT_EQ((*screen)->stats().resize_requests.load(), 4u);
}

}  // namespace
}  // namespace vgpu::vnc
