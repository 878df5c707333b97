#include "clients/input/key_names.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <linux/input-event-codes.h>

namespace vgpu::clients {
namespace {

using ::testing::ElementsAre;

TEST(KeyNamesTest, NamesLettersDigitsAndFunctionKeys) {
  EXPECT_EQ(*KeyCode("a"), KEY_A);
  EXPECT_EQ(*KeyCode("Z"), KEY_Z);
  EXPECT_EQ(*KeyCode("1"), KEY_1);
  EXPECT_EQ(*KeyCode("0"), KEY_0);
  EXPECT_EQ(*KeyCode("f1"), KEY_F1);
  EXPECT_EQ(*KeyCode("F10"), KEY_F10);
  EXPECT_EQ(*KeyCode("f11"), KEY_F11);
  EXPECT_EQ(*KeyCode("f12"), KEY_F12);
  EXPECT_EQ(*KeyCode("f13"), KEY_F13);
  EXPECT_EQ(*KeyCode("f24"), KEY_F24);
  EXPECT_EQ(*KeyCode("Enter"), KEY_ENTER);
  EXPECT_EQ(*KeyCode("altgr"), KEY_RIGHTALT);
  EXPECT_EQ(*KeyCode("30"), KEY_A);
}

TEST(KeyNamesTest, Combos) {
  EXPECT_THAT(*KeyCombo("ctrl+alt+delete"),
              ElementsAre(KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE));
  EXPECT_THAT(*KeyCombo("shift+a"), ElementsAre(KEY_LEFTSHIFT, KEY_A));
}

TEST(KeyNamesTest, UnknownNamesAreRefused) {
  EXPECT_FALSE(KeyCode("").ok());
  EXPECT_FALSE(KeyCode("f25").ok());
  EXPECT_FALSE(KeyCode("hyper").ok());
  EXPECT_FALSE(KeyCode("999").ok());
  EXPECT_FALSE(KeyCombo("ctrl++a").ok());
  EXPECT_FALSE(KeyCombo("ctrl+").ok());
}

}  // namespace
}  // namespace vgpu::clients
