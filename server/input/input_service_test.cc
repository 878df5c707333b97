// The Input service over a real gRPC channel, in front of real virtio-input
// devices on vhost-user sockets, with a driver that behaves as QEMU 10 +
// Linux do playing the guest: what each call does arrives in the guest
// exactly, in order.
#include "server/input/input_service.h"

#include <stdlib.h>

#include <filesystem>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <grpcpp/grpcpp.h>
#include <linux/input-event-codes.h>

#include "device/guest_sim/input_driver.h"
#include "device/vhost_user/event_loop.h"
#include "device/vhost_user/server.h"

namespace vgpu::server {
namespace {

namespace pb = vgpu::input::v1;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;
using Event = input::InputEvent;

constexpr uint32_t kWidth = 1280, kHeight = 800;

Event Key(uint16_t code, int32_t down) { return {EV_KEY, code, down}; }

class InputServiceTest : public ::testing::Test {
 protected:
  struct Options {
    bool mouse = true;
    std::string token;
  };
  void Start() { Start(Options{true, ""}); }
  void Start(Options options) {
    char dir[] = "/tmp/vgpu-input-service-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    auto loop = vhost_user::EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = *std::move(loop);
    const input::InputKind kinds[] = {input::InputKind::kKeyboard,
                                      input::InputKind::kTablet,
                                      input::InputKind::kMouse};
    for (int i = 0; i < (options.mouse ? 3 : 2); ++i) {
      devices_[i] = std::make_unique<input::InputDevice>(
          input::SpecFor(kinds[i], "t"), loop_.get());
      auto server = vhost_user::VhostUserServer::Create(
          dir_ + "/" + std::to_string(i), loop_.get(), devices_[i].get());
      ASSERT_TRUE(server.ok()) << server.status();
      servers_[i] = *std::move(server);
    }
    InputServiceOptions service_options;
    service_options.keyboard = devices_[0].get();
    service_options.tablet = devices_[1].get();
    service_options.mouse = devices_[2].get();
    service_options.scanout_size =
        [](uint32_t scanout) -> std::optional<std::pair<uint32_t, uint32_t>> {
      if (scanout != 0) return std::nullopt;
      return std::pair{kWidth, kHeight};
    };
    service_options.token = options.token;
    service_ = std::make_unique<InputService>(service_options);
    for (auto& device : devices_) {
      if (device) device->set_observer([this] { service_->DevicesChanged(); });
    }
    thread_ = std::thread([this] { loop_->Run(); });
    for (int i = 0; i < (options.mouse ? 3 : 2); ++i) {
      auto driver = guest_sim::VirtioInputDriver::Connect(
          {.socket_path = dir_ + "/" + std::to_string(i)});
      ASSERT_TRUE(driver.ok()) << driver.status();
      drivers_[i] = *std::move(driver);
      const absl::Time deadline = absl::Now() + absl::Seconds(10);
      while (!devices_[i]->attached() && absl::Now() < deadline)
        absl::SleepFor(absl::Milliseconds(1));
      ASSERT_TRUE(devices_[i]->attached());
    }
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = pb::Input::NewStub(server_->InProcessChannel({}));
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    for (auto& driver : drivers_) driver.reset();
    if (loop_) loop_->Stop();
    if (thread_.joinable()) thread_.join();
    // The device thread has stopped: observers can change.
    for (auto& device : devices_) {
      if (device) device->set_observer(nullptr);
    }
    service_.reset();
    for (auto& server : servers_) server.reset();
    for (auto& device : devices_) device.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // The next packet the guest's driver `index` (0 keyboard, 1 tablet,
  // 2 mouse) receives.
  std::vector<Event> Next(int index) {
    auto packet = drivers_[index]->NextPacket(absl::Now() + absl::Seconds(10));
    EXPECT_TRUE(packet.ok()) << packet.status();
    return packet.ok() ? *packet : std::vector<Event>{};
  }

  grpc::Status SendKeys(std::vector<std::pair<uint32_t, bool>> keys,
                        bool take = false, const std::string& token = "") {
    pb::SendKeysRequest request;
    for (const auto& [code, down] : keys) {
      pb::KeyEvent* key = request.add_keys();
      key->set_code(code);
      key->set_down(down);
    }
    request.set_take_control(take);
    grpc::ClientContext context;
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    pb::SendKeysResponse response;
    return stub_->SendKeys(&context, request, &response);
  }

  grpc::Status Type(const std::string& text, const std::string& layout = "") {
    pb::TypeTextRequest request;
    request.set_text(text);
    request.set_layout(layout);
    grpc::ClientContext context;
    pb::TypeTextResponse response;
    return stub_->TypeText(&context, request, &response);
  }

  grpc::Status Pointer(std::vector<pb::PointerEvent> events) {
    pb::SendPointerRequest request;
    for (auto& event : events) *request.add_events() = event;
    grpc::ClientContext context;
    pb::SendPointerResponse response;
    return stub_->SendPointer(&context, request, &response);
  }

  std::string dir_;
  std::unique_ptr<vhost_user::EventLoop> loop_;
  std::unique_ptr<input::InputDevice> devices_[3];
  std::unique_ptr<vhost_user::VhostUserServer> servers_[3];
  std::unique_ptr<InputService> service_;
  std::thread thread_;
  std::unique_ptr<guest_sim::VirtioInputDriver> drivers_[3];
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<pb::Input::Stub> stub_;
};

pb::PointerEvent At(int32_t x, int32_t y) {
  pb::PointerEvent event;
  event.set_x(x);
  event.set_y(y);
  return event;
}

TEST_F(InputServiceTest, SendKeysInOrderAndReleasesWhatIsLeftDown) {
  Start();
  ASSERT_TRUE(SendKeys({{KEY_LEFTCTRL, true},
                        {KEY_LEFTALT, true},
                        {KEY_DELETE, true},
                        {KEY_DELETE, false}})
                  .ok());
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_LEFTCTRL, 1)));
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_LEFTALT, 1)));
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_DELETE, 1)));
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_DELETE, 0)));
  // The call ends with Ctrl and Alt still down: they are released.
  EXPECT_THAT(Next(0),
              UnorderedElementsAre(Key(KEY_LEFTCTRL, 0), Key(KEY_LEFTALT, 0)));
  grpc::Status unknown = SendKeys({{BTN_LEFT, true}});
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(unknown.error_message(), ::testing::HasSubstr("unknown key"));
}

TEST_F(InputServiceTest, TypeTextUsesTheLayoutAndItsModifiers) {
  Start();
  ASSERT_TRUE(Type("aA@\n").ok());
  const std::vector<std::vector<Event>> us = {
      {Key(KEY_A, 1)},         {Key(KEY_A, 0)},     {Key(KEY_LEFTSHIFT, 1)},
      {Key(KEY_A, 1)},         {Key(KEY_A, 0)},     {Key(KEY_LEFTSHIFT, 0)},
      {Key(KEY_LEFTSHIFT, 1)}, {Key(KEY_2, 1)},     {Key(KEY_2, 0)},
      {Key(KEY_LEFTSHIFT, 0)}, {Key(KEY_ENTER, 1)}, {Key(KEY_ENTER, 0)}};
  for (const auto& packet : us) EXPECT_EQ(Next(0), packet);
  ASSERT_TRUE(Type("z@", "de").ok());
  const std::vector<std::vector<Event>> de = {
      {Key(KEY_Y, 1)}, {Key(KEY_Y, 0)}, {Key(KEY_RIGHTALT, 1)},
      {Key(KEY_Q, 1)}, {Key(KEY_Q, 0)}, {Key(KEY_RIGHTALT, 0)}};
  for (const auto& packet : de) EXPECT_EQ(Next(0), packet);
  // A character the layout lacks, an unknown layout: refused
  // before anything is typed.
  EXPECT_EQ(Type("ok é").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Type("x", "klingon").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A call carries at most a page of text.
  EXPECT_EQ(Type(std::string(16385, 'a')).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Type("k").ok());
  EXPECT_EQ(Next(0), std::vector<Event>{Key(KEY_K, 1)});
}

// With the guest's CapsLock on, a lower-case letter needs Shift and an
// upper-case one none (what QEMU's VNC server does for keysyms).
TEST_F(InputServiceTest, TypeTextAllowsForTheGuestsCapsLock) {
  Start();
  ASSERT_TRUE(drivers_[0]->SendStatus({{EV_LED, LED_CAPSL, 1}}).ok());
  ASSERT_TRUE(Type("aB1").ok());
  const std::vector<std::vector<Event>> caps = {
      {Key(KEY_LEFTSHIFT, 1)}, {Key(KEY_A, 1)}, {Key(KEY_A, 0)},
      {Key(KEY_LEFTSHIFT, 0)}, {Key(KEY_B, 1)}, {Key(KEY_B, 0)},
      {Key(KEY_1, 1)},         {Key(KEY_1, 0)}};
  for (const auto& packet : caps) EXPECT_EQ(Next(0), packet);
  ASSERT_TRUE(drivers_[0]->SendStatus({{EV_LED, LED_CAPSL, 0}}).ok());
  ASSERT_TRUE(Type("a").ok());
  EXPECT_EQ(Next(0), std::vector<Event>{Key(KEY_A, 1)});
}

TEST_F(InputServiceTest, TheTabletSpansTheScanoutInPixels) {
  Start();
  pb::PointerEvent click;
  click.set_button(pb::BUTTON_LEFT);
  click.set_button_down(true);
  pb::PointerEvent wheel;
  wheel.set_wheel(-2);
  ASSERT_TRUE(Pointer({At(0, 0), At(kWidth - 1, kHeight - 1), At(-5, 99999),
                       At(640, 400), click, wheel})
                  .ok());
  // Motion waiting for the guest merges (latest wins): read on until the
  // click.
  std::vector<std::vector<Event>> moves;
  std::vector<Event> packet;
  while ((packet = Next(1)) != std::vector<Event>{Key(BTN_LEFT, 1)}) {
    ASSERT_FALSE(packet.empty());
    moves.push_back(packet);
  }
  ASSERT_FALSE(moves.empty());
  // 640,400 on a 1280x800 scanout, as the guest maps it back (value *
  // (size - 1) / 32767, rounded down).
  const std::vector<Event>& last = moves.back();
  ASSERT_EQ(last.size(), 2u);
  EXPECT_EQ(int64_t{last[0].value} * (kWidth - 1) / 32767, 640);
  EXPECT_EQ(int64_t{last[1].value} * (kHeight - 1) / 32767, 400);
  EXPECT_THAT(Next(1), ElementsAre(Event{EV_REL, REL_WHEEL, -2},
                                   Event{EV_REL, REL_WHEEL_HI_RES, -240}));
  // The button left down is released when the call ends.
  EXPECT_THAT(Next(1), ElementsAre(Key(BTN_LEFT, 0)));
  // Every pixel maps back to itself; outside is clipped.
  for (int32_t x : {1, 2, 3, 100, 639, 1000, 1278}) {
    ASSERT_TRUE(Pointer({At(x, 0)}).ok());
    std::vector<Event> move = Next(1);
    ASSERT_EQ(move.size(), 2u);
    EXPECT_EQ(int64_t{move[0].value} * (kWidth - 1) / 32767, x);
  }
  ASSERT_TRUE(Pointer({At(-5, 99999)}).ok());
  EXPECT_THAT(Next(1), ElementsAre(Event{EV_ABS, ABS_X, 0},
                                   Event{EV_ABS, ABS_Y, 32767}));
  pb::PointerEvent elsewhere = At(1, 1);
  elsewhere.set_scanout_id(3);
  EXPECT_EQ(Pointer({elsewhere}).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(InputServiceTest, RelativeMotionGoesToTheMouse) {
  Start();
  pb::PointerEvent move;
  move.set_dx(5);
  move.set_dy(-3);
  ASSERT_TRUE(Pointer({move}).ok());
  EXPECT_THAT(Next(2),
              ElementsAre(Event{EV_REL, REL_X, 5}, Event{EV_REL, REL_Y, -3}));
}

TEST_F(InputServiceTest, WithoutAMouseRelativeMotionIsRefused) {
  Start(Options{false, ""});
  pb::PointerEvent move;
  move.set_dx(1);
  grpc::Status status = Pointer({move});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("--mouse_socket"));
}

// A stream that holds control, read from another thread.
class Viewer {
 public:
  explicit Viewer(pb::Input::Stub* stub) {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(60));
    stream_ = stub->StreamInput(&context_);
  }
  ~Viewer() {
    stream_->WritesDone();
    pb::StreamInputResponse ignored;
    while (stream_->Read(&ignored)) {
    }
    stream_->Finish();
  }
  void Write(const pb::StreamInputRequest& request) {
    ASSERT_TRUE(stream_->Write(request));
  }
  // The next response of kind `kind` (others skipped).
  pb::StreamInputResponse Await(pb::StreamInputResponse::ResponseCase kind) {
    pb::StreamInputResponse response;
    while (stream_->Read(&response)) {
      if (response.response_case() == kind) return response;
    }
    ADD_FAILURE() << "stream ended";
    return response;
  }
  void Control(bool take, const std::string& layout = "") {
    pb::StreamInputRequest request;
    request.mutable_control()->set_take(take);
    request.mutable_control()->set_layout(layout);
    request.mutable_control()->set_viewer("test\aconsole");  // BEL dropped
    Write(request);
  }
  void Key(uint32_t code, uint32_t keysym, bool down) {
    pb::StreamInputRequest request;
    request.mutable_key()->set_code(code);
    request.mutable_key()->set_keysym(keysym);
    request.mutable_key()->set_down(down);
    Write(request);
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<pb::StreamInputRequest, pb::StreamInputResponse>>
      stream_;
};

TEST_F(InputServiceTest, OneViewerControlsAndAnotherMayTakeIt) {
  Start();
  auto viewer = std::make_unique<Viewer>(stub_.get());
  viewer->Control(false);
  EXPECT_TRUE(
      viewer->Await(pb::StreamInputResponse::kControl).control().controlling());
  viewer->Key(KEY_LEFTSHIFT, 0, true);
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_LEFTSHIFT, 1)));
  // Someone else is refused, unless they take control.
  grpc::Status refused = SendKeys({{KEY_A, true}, {KEY_A, false}});
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), ::testing::HasSubstr("take_control"));
  // The holder is named as it called itself, then its address.
  EXPECT_THAT(refused.error_message(),
              ::testing::HasSubstr("controlled by testconsole ("));
  ASSERT_TRUE(SendKeys({{KEY_B, true}, {KEY_B, false}}, /*take=*/true).ok());
  // The old holder's Shift is lifted before the taker's keys.
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_LEFTSHIFT, 0)));
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_B, 1)));
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_B, 0)));
  pb::StreamInputResponse lost =
      viewer->Await(pb::StreamInputResponse::kControl);
  EXPECT_FALSE(lost.control().controlling());
  EXPECT_THAT(lost.control().reason(), ::testing::HasSubstr("taken by"));
  viewer->Key(KEY_C, 0, true);
  EXPECT_EQ(viewer->Await(pb::StreamInputResponse::kError).error().code(),
            static_cast<int32_t>(grpc::StatusCode::FAILED_PRECONDITION));
  // Control back; a keysym in the stream's layout, then leaving with a key
  // down: it is released.
  viewer->Control(true, "de");
  EXPECT_TRUE(
      viewer->Await(pb::StreamInputResponse::kControl).control().controlling());
  // Its Shift was lifted when control was taken: a capital gets one again.
  viewer->Key(0, 'A', true);
  viewer->Key(0, 'A', false);
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_LEFTSHIFT, 1)));
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_A, 1)));
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_LEFTSHIFT, 0)));
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_A, 0)));
  viewer->Key(0, '@', true);
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_RIGHTALT, 1)));
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_Q, 1)));
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_RIGHTALT, 0)));
  // A layout the daemon lacks changes nothing: control and layout stay.
  viewer->Control(false, "klingon");
  pb::StreamInputResponse kept =
      viewer->Await(pb::StreamInputResponse::kControl);
  EXPECT_TRUE(kept.control().controlling());
  EXPECT_THAT(kept.control().reason(), ::testing::HasSubstr("refused"));
  // Another layout: a key held comes up where it went down ('@' is Shift+2
  // in "us"), then new keys use the new layout.
  viewer->Control(false, "us");
  EXPECT_TRUE(
      viewer->Await(pb::StreamInputResponse::kControl).control().controlling());
  viewer->Key(0, '@', false);
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_Q, 0)));
  viewer->Key(0, 'z', true);
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_Z, 1)));
  viewer.reset();
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_Z, 0)));
  // Nobody controls now: a plain call goes through.
  EXPECT_TRUE(SendKeys({{KEY_D, true}, {KEY_D, false}}).ok());
}

TEST_F(InputServiceTest, ATokenDecidesWhoMayControl) {
  Start(Options{true, "s3cret"});
  grpc::Status denied = SendKeys({{KEY_A, true}});
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // Refused before anything of the call is looked at (a character the
  // layout lacks would be INVALID_ARGUMENT).
  EXPECT_EQ(Type("é").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SendKeys({{KEY_A, true}}, false, "wrong").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(SendKeys({{KEY_A, true}}, false, "s3cret").ok());
  EXPECT_THAT(Next(0), ElementsAre(Key(KEY_A, 1)));
  Viewer viewer(stub_.get());
  viewer.Control(false);
  pb::StreamInputResponse response =
      viewer.Await(pb::StreamInputResponse::kControl);
  EXPECT_FALSE(response.control().controlling());
  EXPECT_THAT(response.control().reason(), ::testing::HasSubstr("token"));
  // Watching needs no token.
  grpc::ClientContext context;
  pb::InputState state;
  ASSERT_TRUE(
      stub_->GetInputState(&context, pb::GetInputStateRequest(), &state).ok());
  ASSERT_EQ(state.devices_size(), 3);
  EXPECT_TRUE(state.devices(0).attached());
}

TEST_F(InputServiceTest, LedsAreWatched) {
  Start();
  grpc::ClientContext context;
  auto reader = stub_->WatchLeds(&context, pb::WatchLedsRequest());
  pb::LedState leds;
  ASSERT_TRUE(reader->Read(&leds));
  EXPECT_TRUE(leds.attached());
  EXPECT_FALSE(leds.caps_lock());
  ASSERT_TRUE(drivers_[0]->SendStatus({{EV_LED, LED_CAPSL, 1}}).ok());
  ASSERT_TRUE(reader->Read(&leds));
  EXPECT_TRUE(leds.caps_lock());
  EXPECT_FALSE(leds.num_lock());
  context.TryCancel();
  while (reader->Read(&leds)) {
  }
  reader->Finish();
}

}  // namespace
}  // namespace vgpu::server
