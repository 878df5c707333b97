// InputDevice over the real vhost-user transport, driven by a virtio-input
// driver that behaves as QEMU 10 + Linux do (4-entry rings, one event per
// buffer, whole-config probing).
#include "device/input/input_device.h"

#include <linux/input.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <linux/input-event-codes.h>

#include "device/guest_sim/input_driver.h"
#include "device/vhost_user/event_loop.h"
#include "device/vhost_user/server.h"

namespace vgpu::input {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

std::vector<InputEvent> Key(uint16_t code, int32_t value) {
  return {{EV_KEY, code, value}};
}
std::vector<InputEvent> MoveTo(int32_t x, int32_t y) {
  return {{EV_ABS, ABS_X, x}, {EV_ABS, ABS_Y, y}};
}

// The device thread, a device on a socket, and drivers that connect to it.
class InputDeviceTest : public ::testing::Test {
 protected:
  void Serve(InputKind kind, InputDeviceOptions options = {}) {
    char dir[] = "/tmp/vgpu-input-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/input.sock";
    auto loop = vhost_user::EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = *std::move(loop);
    device_ = std::make_unique<InputDevice>(SpecFor(kind, "serial-7"),
                                            loop_.get(), options);
    auto server = vhost_user::VhostUserServer::Create(socket_, loop_.get(),
                                                      device_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    thread_ = std::thread([this] { loop_->Run(); });
  }

  void TearDown() override {
    driver_.reset();
    if (loop_) loop_->Stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
    device_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<guest_sim::VirtioInputDriver> Connect() {
    auto driver =
        guest_sim::VirtioInputDriver::Connect({.socket_path = socket_});
    EXPECT_TRUE(driver.ok()) << driver.status();
    if (!driver.ok()) return nullptr;
    // The device may count the driver only once its event queue runs.
    WaitFor([this] { return device_->attached(); });
    return *std::move(driver);
  }

  template <typename F>
  void WaitFor(F condition) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!condition() && absl::Now() < deadline)
      absl::SleepFor(absl::Milliseconds(1));
    ASSERT_TRUE(condition());
  }

  std::vector<InputEvent> Next() {
    auto packet = driver_->NextPacket(absl::Now() + absl::Seconds(10));
    EXPECT_TRUE(packet.ok()) << packet.status();
    return packet.ok() ? *packet : std::vector<InputEvent>{};
  }

  std::string dir_, socket_;
  std::unique_ptr<vhost_user::EventLoop> loop_;
  std::unique_ptr<InputDevice> device_;
  std::unique_ptr<vhost_user::VhostUserServer> server_;
  std::thread thread_;
  std::unique_ptr<guest_sim::VirtioInputDriver> driver_;
};

TEST_F(InputDeviceTest, KeyboardProbesAsLinuxReadsIt) {
  Serve(InputKind::kKeyboard);
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  const guest_sim::ProbedInputDevice& probed = driver_->device();
  EXPECT_EQ(probed.name, "vgpu-display keyboard");
  EXPECT_EQ(probed.serial, "serial-7");
  EXPECT_EQ(probed.ids.bustype, BUS_VIRTUAL);
  EXPECT_TRUE(probed.repeat);  // the guest repeats held keys
  for (uint16_t key : {KEY_ESC, KEY_A, KEY_102ND, KEY_RIGHTALT, KEY_KPENTER,
                       KEY_MUTE, KEY_VOLUMEUP, KEY_PLAYPAUSE, KEY_MICMUTE}) {
    EXPECT_TRUE(probed.Has(EV_KEY, key)) << key;
  }
  EXPECT_FALSE(probed.Has(EV_KEY, BTN_LEFT));
  EXPECT_TRUE(probed.Has(EV_LED, LED_CAPSL));
  EXPECT_TRUE(probed.Has(EV_LED, LED_NUML));
  EXPECT_EQ(probed.events.count(EV_ABS), 0u);
  EXPECT_EQ(probed.events.count(EV_REL), 0u);
  EXPECT_TRUE(driver_->negotiated_features() & vhost_user::kFeatureVersion1);
}

TEST_F(InputDeviceTest, TabletAndMouseDescribeTheirAxes) {
  Serve(InputKind::kTablet);
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  const guest_sim::ProbedInputDevice& tablet = driver_->device();
  EXPECT_EQ(tablet.name, "vgpu-display tablet");
  EXPECT_FALSE(tablet.repeat);
  ASSERT_EQ(tablet.axes.size(), 2u);
  EXPECT_EQ(tablet.axes.at(ABS_X).min, 0u);
  EXPECT_EQ(tablet.axes.at(ABS_X).max, uint32_t{kTabletAxisMax});
  EXPECT_EQ(tablet.axes.at(ABS_Y).max, uint32_t{kTabletAxisMax});
  for (uint16_t button : {BTN_LEFT, BTN_RIGHT, BTN_MIDDLE, BTN_SIDE, BTN_EXTRA})
    EXPECT_TRUE(tablet.Has(EV_KEY, button));
  EXPECT_TRUE(tablet.Has(EV_REL, REL_WHEEL));
  EXPECT_TRUE(tablet.Has(EV_REL, REL_WHEEL_HI_RES));
  EXPECT_FALSE(tablet.Has(EV_REL, REL_X));
  EXPECT_FALSE(tablet.Has(EV_KEY, KEY_A));

  InputDeviceSpec mouse = MouseSpec("m");
  EXPECT_TRUE(mouse.Has(EV_REL, REL_X));
  EXPECT_TRUE(mouse.Has(EV_REL, REL_Y));
  EXPECT_FALSE(mouse.Has(EV_ABS, ABS_X));
}

TEST(InputConfigSpaceTest, SelectsAndReadsAtAnyOffset) {
  const InputDeviceSpec spec = KeyboardSpec("s");
  InputConfigSpace config(&spec);
  // The driver writes one byte at a time; QEMU sends the whole 136 bytes.
  const uint8_t select = VIRTIO_INPUT_CFG_ID_NAME;
  config.Write(0, {&select, 1});
  const uint8_t subsel = 0;
  config.Write(1, {&subsel, 1});
  std::vector<uint8_t> all(136);
  config.Read(0, absl::MakeSpan(all));
  EXPECT_EQ(all[0], VIRTIO_INPUT_CFG_ID_NAME);
  EXPECT_EQ(all[2], spec.name.size());
  EXPECT_EQ(std::string(all.begin() + 8, all.begin() + 8 + all[2]), spec.name);
  // A read past the end is zeros; one straddling it is cut.
  std::vector<uint8_t> tail(16, 0xee);
  config.Read(130, absl::MakeSpan(tail));
  EXPECT_THAT(std::vector<uint8_t>(tail.begin() + 6, tail.end()),
              ::testing::Each(0));
  config.Read(4000, absl::MakeSpan(tail));
  EXPECT_THAT(tail, ::testing::Each(0));
  // Unknown pairs read size 0 (spec §5.8.4), as do writes beyond subsel.
  std::vector<uint8_t> whole(136, 0);
  whole[0] = 0x7f;
  whole[2] = 99;  // the driver must not write size; ignored
  config.Write(0, whole);
  config.Read(0, absl::MakeSpan(all));
  EXPECT_EQ(all[0], 0x7f);
  EXPECT_EQ(all[2], 0);
  whole[0] = VIRTIO_INPUT_CFG_EV_BITS;
  whole[1] = EV_ABS;  // a keyboard has no axes
  config.Write(0, whole);
  config.Read(0, absl::MakeSpan(all));
  EXPECT_EQ(all[2], 0);
  whole[1] = EV_KEY;
  config.Write(0, whole);
  config.Read(0, absl::MakeSpan(all));
  EXPECT_EQ(all[2], KEY_MICMUTE / 8 + 1);
}

TEST_F(InputDeviceTest, PacketsArriveWholeAndInOrderThroughFourBuffers) {
  Serve(InputKind::kKeyboard);
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  // 20 keys typed at once: 40 packets of 2 events on a ring of 4.
  for (uint16_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(device_->Send(Key(KEY_1 + i % 10, 1)).ok());
    ASSERT_TRUE(device_->Send(Key(KEY_1 + i % 10, 0)).ok());
  }
  // A packet longer than the ring spans refills and still arrives whole.
  std::vector<InputEvent> chord = {{EV_KEY, KEY_LEFTCTRL, 1},
                                   {EV_KEY, KEY_LEFTALT, 1},
                                   {EV_KEY, KEY_LEFTSHIFT, 1},
                                   {EV_KEY, KEY_LEFTMETA, 1},
                                   {EV_KEY, KEY_DELETE, 1}};
  ASSERT_TRUE(device_->Send(chord).ok());
  for (uint16_t i = 0; i < 20; ++i) {
    EXPECT_THAT(Next(), ElementsAreArray(Key(KEY_1 + i % 10, 1))) << i;
    EXPECT_THAT(Next(), ElementsAreArray(Key(KEY_1 + i % 10, 0))) << i;
  }
  EXPECT_THAT(Next(), ElementsAreArray(chord));
  EXPECT_EQ(driver_->partial_events(), 0u);
  EXPECT_EQ(device_->stats().events_delivered, 40u * 2 + 6);
}

TEST_F(InputDeviceTest, MotionMergesKeysAndButtonsNeverDo) {
  Serve(InputKind::kTablet);
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  driver_->set_repost(false);  // the guest is busy: 4 buffers, then none
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(device_->Send(MoveTo(i, 2 * i)).ok());
  ASSERT_TRUE(device_->Send({{EV_KEY, BTN_LEFT, 1}}).ok());
  for (int i = 100; i < 200; ++i)
    ASSERT_TRUE(device_->Send(MoveTo(i, 2 * i)).ok());
  ASSERT_TRUE(device_->Send({{EV_KEY, BTN_LEFT, 0}}).ok());
  ASSERT_TRUE(device_->Send({{EV_ABS, ABS_X, 500}}).ok());
  driver_->set_repost(true);
  // Motion delivered so far, then the latest position before the press,
  // the press, the latest before the release, the release, the last move.
  std::vector<std::vector<InputEvent>> packets;
  while (packets.empty() ||
         packets.back() != std::vector<InputEvent>{{EV_ABS, ABS_X, 500}})
    packets.push_back(Next());
  ASSERT_GE(packets.size(), 5u);
  const size_t n = packets.size();
  EXPECT_THAT(packets[n - 5], ElementsAreArray(MoveTo(99, 198)));
  EXPECT_THAT(packets[n - 4], ElementsAre(InputEvent{EV_KEY, BTN_LEFT, 1}));
  EXPECT_THAT(packets[n - 3], ElementsAreArray(MoveTo(199, 398)));
  EXPECT_THAT(packets[n - 2], ElementsAre(InputEvent{EV_KEY, BTN_LEFT, 0}));
  // At most the first two moves went out before the ring ran dry.
  EXPECT_LE(n, 7u);
  EXPECT_GE(device_->stats().motion_merged, 190u);
}

TEST_F(InputDeviceTest, RelativeMotionAddsUp) {
  Serve(InputKind::kMouse);
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  driver_->set_repost(false);
  int32_t sent_x = 0, sent_y = 0;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(device_->Send({{EV_REL, REL_X, 3}, {EV_REL, REL_Y, -1}}).ok());
    sent_x += 3;
    sent_y -= 1;
  }
  ASSERT_TRUE(device_->Send({{EV_KEY, BTN_RIGHT, 1}}).ok());
  driver_->set_repost(true);
  int32_t x = 0, y = 0;
  while (true) {
    std::vector<InputEvent> packet = Next();
    if (packet == std::vector<InputEvent>{{EV_KEY, BTN_RIGHT, 1}}) break;
    ASSERT_FALSE(packet.empty());
    for (const InputEvent& e : packet) (e.code == REL_X ? x : y) += e.value;
  }
  EXPECT_EQ(x, sent_x);  // nothing lost in the merge
  EXPECT_EQ(y, sent_y);
}

TEST_F(InputDeviceTest, AGuestThatTakesNothingCostsBoundedMemory) {
  Serve(InputKind::kTablet, {.max_pending_events = 32});
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  driver_->set_repost(false);
  // Two packets fill the guest's 4 buffers, which it does not give back.
  ASSERT_TRUE(device_->Send({{EV_KEY, BTN_LEFT, 1}}).ok());
  ASSERT_TRUE(device_->Send({{EV_KEY, BTN_LEFT, 0}}).ok());
  WaitFor([this] { return device_->stats().events_delivered == 4; });
  int accepted = 2;
  absl::Status status;
  for (int i = 2; i < 100 && status.ok(); ++i) {
    status = device_->Send({{EV_KEY, BTN_LEFT, (i + 1) % 2}});
    if (status.ok()) ++accepted;
  }
  EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
  // 32 events wait, 2 per packet.
  EXPECT_EQ(accepted, 2 + 16);
  // Motion is dropped, not refused.
  EXPECT_TRUE(device_->Send(MoveTo(1, 1)).ok());
  EXPECT_EQ(device_->stats().motion_dropped, 1u);
  EXPECT_EQ(device_->stats().packets_refused, 1u);
  // Once the guest takes input again, every accepted packet arrives in order.
  driver_->set_repost(true);
  for (int i = 0; i < accepted; ++i)
    EXPECT_THAT(Next(), ElementsAre(InputEvent{EV_KEY, BTN_LEFT, (i + 1) % 2}))
        << i;
  EXPECT_TRUE(device_->Send(MoveTo(2, 2)).ok());
  EXPECT_THAT(Next(), ElementsAreArray(MoveTo(2, 2)));
}

TEST_F(InputDeviceTest, LedsComeFromTheStatusQueue) {
  Serve(InputKind::kKeyboard);
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  const LedState before = device_->leds();
  EXPECT_EQ(before.bits, 0u);
  std::thread guest([this] {
    EXPECT_TRUE(driver_->SendStatus({{EV_LED, LED_CAPSL, 1}}).ok());
  });
  std::optional<LedState> after =
      device_->WaitForLeds(before.changes, absl::Now() + absl::Seconds(10));
  guest.join();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->bits, 1u << LED_CAPSL);
  ASSERT_TRUE(
      driver_->SendStatus({{EV_LED, LED_NUML, 1}, {EV_LED, LED_CAPSL, 0}})
          .ok());
  EXPECT_EQ(device_->leds().bits, 1u << LED_NUML);
  // The same state again is no change.
  const uint64_t changes = device_->leds().changes;
  ASSERT_TRUE(driver_->SendStatus({{EV_LED, LED_NUML, 1}}).ok());
  EXPECT_EQ(device_->leds().changes, changes);
  EXPECT_FALSE(
      device_->WaitForLeds(changes, absl::Now() + absl::Milliseconds(10)));
}

TEST_F(InputDeviceTest, HostileBuffersAreCountedAndTheDeviceGoesOn) {
  Serve(InputKind::kKeyboard);
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  // Status buffers that are not whole events.
  const uint8_t five[5] = {0x11, 0, 1, 0, 1};
  ASSERT_TRUE(driver_->SendStatusBytes(five).ok());
  ASSERT_TRUE(driver_->SendStatusBytes({}).ok());
  EXPECT_EQ(device_->stats().status_malformed, 2u);
  EXPECT_EQ(device_->leds().bits, 0u);
  // Two events in one status buffer are fine.
  const virtio_input_event two[2] = {{EV_LED, LED_SCROLLL, 1}, {EV_SND, 1, 1}};
  ASSERT_TRUE(driver_
                  ->SendStatusBytes(absl::MakeConstSpan(
                      reinterpret_cast<const uint8_t*>(two), sizeof(two)))
                  .ok());
  EXPECT_EQ(device_->leds().bits, 1u << LED_SCROLLL);

  // An event buffer too small for an event is returned empty; the event
  // waits for the next buffer. Linux's buffers are all in the ring, so
  // take them first.
  driver_->set_repost(false);
  ASSERT_TRUE(device_->Send(Key(KEY_Q, 1)).ok());
  ASSERT_TRUE(device_->Send(Key(KEY_Q, 0)).ok());
  EXPECT_THAT(Next(), ElementsAreArray(Key(KEY_Q, 1)));
  EXPECT_THAT(Next(), ElementsAreArray(Key(KEY_Q, 0)));
  ASSERT_TRUE(device_->Send(Key(KEY_W, 1)).ok());
  auto written = driver_->PostEventBuffer(4);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 0u);
  EXPECT_EQ(device_->stats().short_buffers, 1u);
  // A buffer of 20 bytes gets one event, as Linux reads one from each.
  ASSERT_TRUE(device_->Send(Key(KEY_W, 0)).ok());
  written = driver_->PostEventBuffer(20);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 8u);
  written = driver_->PostEventBuffer(20);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 8u);
  EXPECT_EQ(device_->stats().events_delivered, 6u);
}

TEST_F(InputDeviceTest, BadPacketsAreRefused) {
  Serve(InputKind::kKeyboard);
  EXPECT_TRUE(absl::IsFailedPrecondition(device_->Send(Key(KEY_A, 1))));
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(device_->Send({})));
  EXPECT_TRUE(absl::IsInvalidArgument(device_->Send(Key(BTN_LEFT, 1))));
  EXPECT_TRUE(absl::IsInvalidArgument(device_->Send(Key(KEY_MAX + 1, 1))));
  EXPECT_TRUE(absl::IsInvalidArgument(
      device_->Send({{EV_KEY, KEY_A, 1}, {EV_SYN, SYN_REPORT, 0}})));
  EXPECT_TRUE(absl::IsInvalidArgument(device_->Send({{EV_ABS, ABS_X, 1}})));
  EXPECT_TRUE(absl::IsInvalidArgument(device_->Send({{0xffff, 0, 0}})));
  std::vector<InputEvent> long_packet(65, InputEvent{EV_KEY, KEY_A, 1});
  EXPECT_TRUE(absl::IsInvalidArgument(device_->Send(long_packet)));
  EXPECT_EQ(device_->stats().packets, 0u);
}

TEST_F(InputDeviceTest, ReleaseAllLiftsWhatIsHeld) {
  Serve(InputKind::kKeyboard);
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  ASSERT_TRUE(device_->Send(Key(KEY_LEFTSHIFT, 1)).ok());
  ASSERT_TRUE(device_->Send(Key(KEY_A, 1)).ok());
  ASSERT_TRUE(device_->Send(Key(KEY_A, 0)).ok());
  ASSERT_TRUE(device_->Send(Key(KEY_B, 1)).ok());
  EXPECT_EQ(device_->ReleaseAll(), 2u);
  EXPECT_EQ(device_->ReleaseAll(), 0u);
  for (int i = 0; i < 4; ++i) Next();
  EXPECT_THAT(Next(), ::testing::UnorderedElementsAre(
                          InputEvent{EV_KEY, KEY_B, 0},
                          InputEvent{EV_KEY, KEY_LEFTSHIFT, 0}));
}

TEST_F(InputDeviceTest, AGuestRebootDropsWhatWaitedAndWhatWasPressed) {
  Serve(InputKind::kKeyboard);
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  ASSERT_TRUE(driver_->SendStatus({{EV_LED, LED_CAPSL, 1}}).ok());
  ASSERT_TRUE(device_->Send(Key(KEY_LEFTCTRL, 1)).ok());
  EXPECT_THAT(Next(), ElementsAreArray(Key(KEY_LEFTCTRL, 1)));
  driver_->set_repost(false);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(device_->Send(Key(KEY_X, i % 2)).ok());
  ASSERT_TRUE(driver_->Reboot().ok());
  WaitFor([this] { return device_->stats().events_discarded > 0; });
  EXPECT_EQ(device_->leds().bits, 0u);
  EXPECT_EQ(device_->ReleaseAll(), 0u);  // the new guest holds nothing
  WaitFor([this] { return device_->attached(); });
  ASSERT_TRUE(device_->Send(Key(KEY_Y, 1)).ok());
  EXPECT_THAT(Next(), ElementsAreArray(Key(KEY_Y, 1)));
}

TEST_F(InputDeviceTest, AVmThatGoesAwayAndComesBack) {
  Serve(InputKind::kKeyboard);
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  ASSERT_TRUE(device_->Send(Key(KEY_A, 1)).ok());
  driver_.reset();
  WaitFor([this] { return !device_->attached(); });
  EXPECT_TRUE(absl::IsFailedPrecondition(device_->Send(Key(KEY_A, 0))));
  driver_ = Connect();
  ASSERT_NE(driver_, nullptr);
  EXPECT_EQ(device_->ReleaseAll(), 0u);  // the new VM holds nothing
  ASSERT_TRUE(device_->Send(Key(KEY_B, 1)).ok());
  EXPECT_THAT(Next(), ElementsAreArray(Key(KEY_B, 1)));
}

}  // namespace
}  // namespace vgpu::input
