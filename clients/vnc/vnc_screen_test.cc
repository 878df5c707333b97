// A real RFB client (libvncclient) against VncScreen: what it sees equals
// what was fed, in each encoding it may ask for, through copies and a
// resize; passwords, view-only clients, the client limit, the cursor shape.
#include "clients/vnc/vnc_screen.h"

#include <atomic>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "clients/vnc/test_viewer.h"

namespace vgpu::vnc {
namespace {

std::vector<uint32_t> Noise(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> pixels(count);
  for (uint32_t& p : pixels) p = rng() & 0x00FFFFFF;
  return pixels;
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
  void OnPointer(uint32_t buttons, uint32_t x, uint32_t) override {
    last_buttons = buttons;
    last_x = x;
    ++pointers;
  }
  std::atomic<uint32_t> keys{0}, pointers{0}, last_key{0}, last_buttons{0},
      last_x{0};
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

}  // namespace
}  // namespace vgpu::vnc
