#include "server/input/key_translator.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <linux/input-event-codes.h>

namespace vgpu::server {
namespace {

using ::testing::ElementsAre;
using Event = input::InputEvent;

Event Key(uint16_t code, int32_t down) { return {EV_KEY, code, down}; }

class KeyTranslatorTest : public ::testing::Test {
 protected:
  KeyTranslatorTest() : spec_(input::SpecFor(input::InputKind::kKeyboard, "")) {
    auto us = Keymap::Create("us");
    EXPECT_TRUE(us.ok()) << us.status();
    translator_.emplace(&spec_, std::shared_ptr<const Keymap>(*std::move(us)));
  }
  std::vector<Event> Code(uint16_t code, bool down, LockState locks = {}) {
    auto events = translator_->Translate(code, 0, down, locks);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<Event>{};
  }
  std::vector<Event> Sym(uint32_t keysym, bool down, LockState locks = {}) {
    auto events = translator_->Translate(0, keysym, down, locks);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<Event>{};
  }

  input::InputDeviceSpec spec_;
  std::optional<KeyTranslator> translator_;
};

constexpr LockState kCaps{.caps_lock = true};
constexpr uint32_t kLeft = 0xff51;

TEST_F(KeyTranslatorTest, ShiftIsAddedForCapitalsAndForTheGuestsCapsLock) {
  EXPECT_THAT(Sym('A', true), ElementsAre(Key(KEY_LEFTSHIFT, 1), Key(KEY_A, 1),
                                          Key(KEY_LEFTSHIFT, 0)));
  EXPECT_THAT(Sym('A', false), ElementsAre(Key(KEY_A, 0)));
  EXPECT_THAT(
      Sym('a', true, kCaps),
      ElementsAre(Key(KEY_LEFTSHIFT, 1), Key(KEY_A, 1), Key(KEY_LEFTSHIFT, 0)));
  EXPECT_THAT(Sym('a', false, kCaps), ElementsAre(Key(KEY_A, 0)));
}

// Ctrl+w stays Ctrl+w with the guest's CapsLock on (with Shift added it
// would be Ctrl+Shift+W, another shortcut).
TEST_F(KeyTranslatorTest, ShortcutsAreNotShiftedForCapsLock) {
  EXPECT_THAT(Code(KEY_LEFTCTRL, true), ElementsAre(Key(KEY_LEFTCTRL, 1)));
  EXPECT_THAT(Sym('w', true, kCaps), ElementsAre(Key(KEY_W, 1)));
  EXPECT_THAT(Sym('w', false, kCaps), ElementsAre(Key(KEY_W, 0)));
  EXPECT_THAT(Code(KEY_LEFTCTRL, false), ElementsAre(Key(KEY_LEFTCTRL, 0)));
  // Ctrl sent as a keysym (Control_L) counts the same.
  EXPECT_THAT(Sym(0xffe3, true), ElementsAre(Key(KEY_LEFTCTRL, 1)));
  EXPECT_THAT(Sym('w', true, kCaps), ElementsAre(Key(KEY_W, 1)));
}

// The viewer holds Shift: a keysym that Shift would change has it lifted
// around its key; one Shift does not change (Shift+Left) keeps it.
TEST_F(KeyTranslatorTest, AHeldShiftIsLiftedOnlyWhereItChangesTheKey) {
  EXPECT_THAT(Code(KEY_RIGHTSHIFT, true), ElementsAre(Key(KEY_RIGHTSHIFT, 1)));
  EXPECT_THAT(Sym('A', true, kCaps),
              ElementsAre(Key(KEY_RIGHTSHIFT, 0), Key(KEY_A, 1),
                          Key(KEY_RIGHTSHIFT, 1)));
  EXPECT_THAT(Sym('A', false, kCaps), ElementsAre(Key(KEY_A, 0)));
  EXPECT_THAT(Sym('B', true), ElementsAre(Key(KEY_B, 1)));  // Shift as held
  EXPECT_THAT(Sym(kLeft, true), ElementsAre(Key(KEY_LEFT, 1)));
  // After a ReleaseAll the viewer holds nothing: Shift is added again.
  translator_->Forget();
  EXPECT_THAT(Sym('C', true), ElementsAre(Key(KEY_LEFTSHIFT, 1), Key(KEY_C, 1),
                                          Key(KEY_LEFTSHIFT, 0)));
}

}  // namespace
}  // namespace vgpu::server
