#include "server/input/keymap.h"

#include "gtest/gtest.h"
#include <linux/input-event-codes.h>

namespace vgpu::server {
namespace {

void ExpectStroke(const Keymap& keymap, char32_t c, uint16_t code, bool shift,
                  bool altgr, LockState locks = {}) {
  std::optional<KeyStroke> stroke = keymap.ForCharacter(c, locks);
  ASSERT_TRUE(stroke.has_value())
      << keymap.name() << " U+" << std::hex << static_cast<uint32_t>(c);
  EXPECT_EQ(stroke->code, code)
      << keymap.name() << " U+" << std::hex << static_cast<uint32_t>(c);
  EXPECT_EQ(stroke->shift, shift) << keymap.name();
  EXPECT_EQ(stroke->altgr, altgr) << keymap.name();
}

TEST(KeymapTest, UsLayout) {
  auto us = Keymap::Create("us");
  ASSERT_TRUE(us.ok()) << us.status();
  ExpectStroke(**us, U'a', KEY_A, false, false);
  ExpectStroke(**us, U'A', KEY_A, true, false);
  ExpectStroke(**us, U'@', KEY_2, true, false);
  ExpectStroke(**us, U'1', KEY_1, false, false);  // not the keypad's
  ExpectStroke(**us, U' ', KEY_SPACE, false, false);
  ExpectStroke(**us, U'\n', KEY_ENTER, false, false);
  ExpectStroke(**us, U'\t', KEY_TAB, false, false);
  ExpectStroke(**us, U'|', KEY_BACKSLASH, true, false);
  EXPECT_FALSE((*us)->ForCharacter(U'é').has_value());
  EXPECT_FALSE((*us)->ForCharacter(U'€').has_value());  // beyond MicMute
}

TEST(KeymapTest, GermanAndFrenchNeedAltGr) {
  auto de = Keymap::Create("de");
  ASSERT_TRUE(de.ok()) << de.status();
  ExpectStroke(**de, U'z', KEY_Y, false, false);  // QWERTZ
  ExpectStroke(**de, U'@', KEY_Q, false, true);
  ExpectStroke(**de, U'ß', KEY_MINUS, false, false);
  ExpectStroke(**de, U'€', KEY_E, false, true);
  auto fr = Keymap::Create("fr");
  ASSERT_TRUE(fr.ok()) << fr.status();
  ExpectStroke(**fr, U'a', KEY_Q, false, false);  // AZERTY
  ExpectStroke(**fr, U'é', KEY_2, false, false);
  ExpectStroke(**fr, U'1', KEY_1, true, false);
  ExpectStroke(**fr, U'@', KEY_0, false, true);
}

// The guest's CapsLock inverts Shift for letters only; its NumLock decides
// whether a keypad key types a digit bare or with Shift.
TEST(KeymapTest, TheGuestsLocksAreCompensated) {
  auto us = Keymap::Create("us");
  ASSERT_TRUE(us.ok()) << us.status();
  const LockState caps{.caps_lock = true};
  ExpectStroke(**us, U'a', KEY_A, true, false, caps);
  ExpectStroke(**us, U'A', KEY_A, false, false, caps);
  ExpectStroke(**us, U'1', KEY_1, false, false, caps);
  ExpectStroke(**us, U'!', KEY_1, true, false, caps);
  constexpr uint32_t kKp1 = 0xffb1, kKpEnd = 0xff9c;
  std::optional<KeyStroke> kp1 = (*us)->ForKeysym(kKp1, {.num_lock = true});
  ASSERT_TRUE(kp1.has_value());
  EXPECT_EQ(kp1->code, KEY_KP1);
  EXPECT_FALSE(kp1->shift);
  std::optional<KeyStroke> end = (*us)->ForKeysym(kKpEnd, {.num_lock = true});
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->code, KEY_KP1);  // Shift undoes NumLock on the keypad
  EXPECT_TRUE(end->shift);
  end = (*us)->ForKeysym(kKpEnd, {.num_lock = false});
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->code, KEY_KP1);
  EXPECT_FALSE(end->shift);
  // No modifier reaches KP_1 with NumLock off: the key is still the one.
  kp1 = (*us)->ForKeysym(kKp1, {.num_lock = false});
  ASSERT_TRUE(kp1.has_value());
  EXPECT_EQ(kp1->code, KEY_KP1);
  auto de = Keymap::Create("de");
  ASSERT_TRUE(de.ok()) << de.status();
  ExpectStroke(**de, U'ü', KEY_LEFTBRACE, true, false, caps);
  ExpectStroke(**de, U'@', KEY_Q, false, true, caps);
}

TEST(KeymapTest, UnknownLayoutsAreRefused) {
  EXPECT_TRUE(absl::IsInvalidArgument(Keymap::Create("xx").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Keymap::Create("").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Keymap::Create("us,de").status()));
  KeymapCache cache;
  auto first = cache.Get("us", "");
  auto second = cache.Get("us", "");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->get(), second->get());
  EXPECT_FALSE(cache.Get("nope", "").ok());
}

}  // namespace
}  // namespace vgpu::server
