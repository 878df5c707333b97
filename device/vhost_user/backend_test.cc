// VhostUserBackend with a device that is not the GPU: the transport asks
// the device for its queues, features and config and hands it its own
// requests, so a new virtio device plugs in with no transport code.
#include "device/vhost_user/backend.h"

#include <sys/socket.h>

#include <array>
#include <cstring>
#include <optional>
#include <vector>

#include "gtest/gtest.h"

namespace vgpu::vhost_user {
namespace {

constexpr uint64_t kDeviceFeature = 1ull << 5;
constexpr uint32_t kDeviceRequest = 99;  // not one of vhost-user's

// Three queues, a config space of its own, one request of its own.
class FakeDevice : public VhostUserDevice {
 public:
  uint32_t num_queues() const override { return 3; }
  uint64_t OfferedFeatures() const override { return kDeviceFeature; }
  void SetDriverFeatures(uint64_t features) override { driver_ = features; }
  void SetGuestMemory(
      std::shared_ptr<const virtio::GuestMemory> memory) override {
    memory_ = std::move(memory);
  }
  const std::shared_ptr<const virtio::GuestMemory>& guest_memory()
      const override {
    return memory_;
  }
  void ReadConfig(uint32_t offset, absl::Span<uint8_t> out) const override {
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = static_cast<uint8_t>(
          offset + i < config.size() ? config[offset + i] : 0);
  }
  void WriteConfig(uint32_t offset, absl::Span<const uint8_t> in) override {
    for (size_t i = 0; i < in.size() && offset + i < config.size(); ++i)
      config[offset + i] = in[i];
  }
  absl::StatusOr<bool> ProcessQueue(uint32_t,
                                    virtio::SplitVirtqueue&) override {
    return false;
  }
  bool needs_reset() const override { return false; }
  void Reset() override { ++resets; }
  absl::Status HandleRequest(Message& message) override {
    if (message.header.request != kDeviceRequest)
      return absl::NotFoundError("not ours");
    if (message.payload.size() != 4)
      return absl::InvalidArgumentError("want 4 bytes");
    ++own_requests;
    return absl::OkStatus();
  }
  void Disconnected() override { ++disconnects; }

  std::array<uint8_t, 8> config = {1, 2, 3, 4, 5, 6, 7, 8};
  uint64_t driver_ = 0;
  int resets = 0;
  int own_requests = 0;
  int disconnects = 0;

 private:
  std::shared_ptr<const virtio::GuestMemory> memory_;
};

class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = *std::move(loop);
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    peer_ = Fd(pair[1]);
    backend_.emplace(&device_, loop_.get(), Fd(pair[0]));
    ASSERT_TRUE(
        backend_->Start([this](const absl::Status& why) { closed_ = why; })
            .ok());
  }
  // Sends a request and lets the back-end handle it.
  template <typename T>
  void Send(uint32_t request, const T& body, uint32_t flags = kVersion) {
    ASSERT_TRUE(WriteStruct(peer_.get(), request, flags, body).ok());
    loop_->RunOnce(1000);
  }
  Message Reply() {
    absl::StatusOr<Message> reply = ReadMessage(peer_.get());
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? *std::move(reply) : Message{};
  }
  template <typename T>
  T ReplyAs() {
    T value{};
    EXPECT_TRUE(Reply().PayloadAs(&value));
    return value;
  }

  FakeDevice device_;
  std::unique_ptr<EventLoop> loop_;
  Fd peer_;
  std::optional<VhostUserBackend> backend_;
  std::optional<absl::Status> closed_;
};

TEST_F(BackendTest, TheDeviceSaysItsFeaturesQueuesAndConfig) {
  const uint64_t none = 0;
  Send(kGetFeatures, none);
  const uint64_t features = ReplyAs<uint64_t>();
  EXPECT_TRUE(features & kDeviceFeature);
  EXPECT_TRUE(features & kFeatureVersion1);
  EXPECT_TRUE(features & kFeatureProtocolFeatures);
  Send(kSetFeatures, features);
  EXPECT_EQ(device_.driver_, features);
  Send(kGetQueueNum, none);
  EXPECT_EQ(ReplyAs<uint64_t>(), 3u);
  // GET_CONFIG: a header, then the bytes asked for.
  struct {
    ConfigHeader header;
    uint8_t data[4];
  } config = {{2, 4, 0}, {}};
  Send(kGetConfig, config);
  Message reply = Reply();
  ASSERT_EQ(reply.payload.size(), sizeof(config));
  EXPECT_EQ(std::vector<uint8_t>(reply.payload.begin() + sizeof(ConfigHeader),
                                 reply.payload.end()),
            (std::vector<uint8_t>{3, 4, 5, 6}));
  // SET_CONFIG of two bytes: 14 bytes of payload, no padding.
  std::vector<uint8_t> write(sizeof(ConfigHeader) + 2, 9);
  const ConfigHeader header = {0, 2, 0};
  std::memcpy(write.data(), &header, sizeof(header));
  ASSERT_TRUE(WriteMessage(peer_.get(),
                           Header{kSetConfig, kVersion,
                                  static_cast<uint32_t>(write.size())},
                           write)
                  .ok());
  loop_->RunOnce(1000);
  EXPECT_EQ(device_.config[0], 9);
  EXPECT_EQ(device_.config[2], 3);
  EXPECT_FALSE(closed_.has_value());
}

TEST_F(BackendTest, TheDevicesOwnRequestsGoToIt) {
  const uint32_t body = 7;
  Send(kDeviceRequest, body);
  EXPECT_EQ(device_.own_requests, 1);
  EXPECT_FALSE(closed_.has_value());
  // Malformed by the device's own rule: the connection goes.
  const uint64_t wrong = 7;
  Send(kDeviceRequest, wrong);
  ASSERT_TRUE(closed_.has_value());
  EXPECT_TRUE(absl::IsDataLoss(*closed_)) << *closed_;
  EXPECT_EQ(device_.disconnects, 1);
  EXPECT_EQ(device_.resets, 1);
}

TEST_F(BackendTest, AQueueTheDeviceHasNotIsMalformed) {
  Send(kSetVringNum, VringState{2, 64});
  EXPECT_FALSE(closed_.has_value());
  Send(kSetVringNum, VringState{3, 64});
  ASSERT_TRUE(closed_.has_value());
  EXPECT_TRUE(absl::IsDataLoss(*closed_)) << *closed_;
}

TEST_F(BackendTest, AHangUpDisconnectsAndResetsTheDevice) {
  peer_.Reset();
  loop_->RunOnce(1000);
  ASSERT_TRUE(closed_.has_value());
  EXPECT_TRUE(absl::IsUnavailable(*closed_)) << *closed_;
  EXPECT_EQ(device_.disconnects, 1);
  EXPECT_EQ(device_.resets, 1);
}

}  // namespace
}  // namespace vgpu::vhost_user
