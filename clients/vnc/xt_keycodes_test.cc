#include "clients/vnc/xt_keycodes.h"

#include "gtest/gtest.h"
#include <linux/input-event-codes.h>

namespace vgpu::vnc {
namespace {

TEST(XtKeycodesTest, OneByteCodesAreEvdevCodes) {
  EXPECT_EQ(XtToEvdev(0x01), KEY_ESC);
  EXPECT_EQ(XtToEvdev(0x1e), KEY_A);
  EXPECT_EQ(XtToEvdev(0x1c), KEY_ENTER);
  EXPECT_EQ(XtToEvdev(0x3a), KEY_CAPSLOCK);
  EXPECT_EQ(XtToEvdev(0x53), KEY_KPDOT);
  EXPECT_EQ(XtToEvdev(0x56), KEY_102ND);
  EXPECT_EQ(XtToEvdev(0x58), KEY_F12);
}

TEST(XtKeycodesTest, E0PrefixedKeysAsQemuSendsThem) {
  EXPECT_EQ(XtToEvdev(0x9c), KEY_KPENTER);
  EXPECT_EQ(XtToEvdev(0x9d), KEY_RIGHTCTRL);
  EXPECT_EQ(XtToEvdev(0xb8), KEY_RIGHTALT);
  EXPECT_EQ(XtToEvdev(0xc8), KEY_UP);
  EXPECT_EQ(XtToEvdev(0xd3), KEY_DELETE);
  EXPECT_EQ(XtToEvdev(0xdb), KEY_LEFTMETA);
  EXPECT_EQ(XtToEvdev(0xa0), KEY_MUTE);
}

TEST(XtKeycodesTest, NumbersNoKeySends) {
  EXPECT_FALSE(XtToEvdev(0).has_value());
  EXPECT_FALSE(XtToEvdev(0x55).has_value());
  EXPECT_FALSE(XtToEvdev(0x80).has_value());
  EXPECT_FALSE(XtToEvdev(0xffff).has_value());
}

}  // namespace
}  // namespace vgpu::vnc
