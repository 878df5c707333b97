// vgpu-displayd's vhost-user server against our vhost-user front-end over a
// real unix socket: memfd guest RAM passed as fds, rings driven by kick and
// call eventfds, the full command path, and the connection lifecycle
// (disconnect, reconnect, guest reboot, malformed messages).
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include "gtest/gtest.h"

#include "device/guest_sim/frontend.h"
#include "device/vhost_user/gpu_vhost_device.h"
#include "device/vhost_user/server.h"
#include "device/virtio/mapping_guard.h"
#include "server/frame_store.h"

namespace vgpu {
namespace {

using gpu::wire::Rect;
constexpr uint32_t kOk = gpu::wire::kRespOkNodata;

class VhostUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/vgpu-test-" + std::to_string(getpid()) +
            ".sock";
    gpu::GpuDeviceOptions options;
    options.displays = {{640, 480, true}};
    mirror_.set_enabled(MirrorEnabled());
    auto device = gpu::GpuDevice::Create(options, &mirror_);
    ASSERT_TRUE(device.ok());
    device_ = std::move(*device);
    auto loop = vhost_user::EventLoop::Create();
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = std::move(*loop);
    gpu_vhost_.emplace(device_.get(), loop_.get(), &mirror_);
    auto server =
        vhost_user::VhostUserServer::Create(path_, loop_.get(), &*gpu_vhost_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    thread_ = std::thread([this] { loop_->Run(); });
  }
  void TearDown() override { StopServer(); }
  void StopServer() {
    loop_->Stop();
    if (thread_.joinable()) thread_.join();
  }

  virtual bool MirrorEnabled() const { return false; }

  absl::StatusOr<std::unique_ptr<synth::VhostUserFrontend>> Connect(
      bool blob = false, bool two_regions = false, bool serve_display = true) {
    synth::FrontendOptions options;
    options.serve_display = serve_display;
    options.socket_path = path_;
    options.use_blob = blob;
    options.guest.two_regions = two_regions;
    options.guest.ram_bytes = 32 << 20;
    options.timeout = absl::Seconds(5);
    return synth::VhostUserFrontend::Connect(options);
  }

  // Draws a gradient in a 640x480 resource and presents it.
  static void DrawAndPresent(guest_sim::SimulatedGuest& guest, uint32_t id,
                             uint32_t seed) {
    auto gpa = guest.MakeScanoutResource(id, 640, 480);
    ASSERT_TRUE(gpa.ok()) << gpa.status();
    Present(guest, id, *gpa, seed);
  }
  // Draws the picture of `seed` into resource `id` (640x480 at `gpa`),
  // transfers and flushes it.
  static void Present(guest_sim::SimulatedGuest& guest, uint32_t id,
                      uint64_t gpa, uint32_t seed) {
    std::vector<uint32_t> pixels(640 * 480);
    for (uint32_t i = 0; i < pixels.size(); ++i)
      pixels[i] = 0xFF000000u | (i * 2654435761u + seed);
    ASSERT_TRUE(
        guest
            .WriteGuest(gpa, absl::MakeConstSpan(
                                 reinterpret_cast<uint8_t*>(pixels.data()),
                                 pixels.size() * 4))
            .ok());
    ASSERT_EQ(guest.Transfer(id, Rect{0, 0, 640, 480}, 0), kOk);
    ASSERT_EQ(guest.Flush(id, Rect{0, 0, 640, 480}), kOk);
  }
  bool ShowsSeed(uint32_t seed) {
    return store_.WaitForFrame(
        0,
        [seed](const gpu::Frame& frame) {
          uint32_t i = 123 * 640 + 456;
          return frame.PixelAt(456, 123) ==
                 (0xFF000000u | (i * 2654435761u + seed));
        },
        absl::Seconds(5));
  }

  std::string path_;
  server::FrameStore store_;
  vhost_user::DisplayMirror mirror_{&store_, 8u << 20};
  std::unique_ptr<gpu::GpuDevice> device_;
  std::unique_ptr<vhost_user::EventLoop> loop_;  // the device thread's
  std::optional<vhost_user::GpuVhostDevice> gpu_vhost_;
  std::unique_ptr<vhost_user::VhostUserServer> server_;
  std::thread thread_;
};

TEST_F(VhostUserTest, FramesTravelThroughTheSocketPath) {
  auto frontend = Connect();
  ASSERT_TRUE(frontend.ok()) << frontend.status();
  EXPECT_EQ((*frontend)->num_scanouts(), 1u);
  EXPECT_TRUE((*frontend)->negotiated_features() &
              vhost_user::kFeatureEventIdx);
  DrawAndPresent((*frontend)->guest(), 2, 7);
  EXPECT_TRUE(ShowsSeed(7));
  auto mode = store_.Mode(0);
  ASSERT_TRUE(mode.has_value());
  EXPECT_EQ(mode->width, 640u);
}

TEST_F(VhostUserTest, TwoRegionGuestMemoryUsesMmapOffset) {
  auto frontend = Connect(false, /*two_regions=*/true);
  ASSERT_TRUE(frontend.ok()) << frontend.status();
  guest_sim::SimulatedGuest& guest = (*frontend)->guest();
  ASSERT_EQ(guest.Create2d(2, 640, 480), kOk);
  auto high = guest.Alloc(640 * 480 * 4, 4096, /*high=*/true);
  ASSERT_TRUE(high.ok());
  gpu::wire::MemEntry entry{*high, 640 * 480 * 4, 0};
  ASSERT_EQ(guest.AttachEntries(2, {&entry, 1}), kOk);
  ASSERT_EQ(guest.SetScanout(0, 2, Rect{0, 0, 640, 480}), kOk);
  std::vector<uint32_t> pixels(640 * 480, 0xFF123456u);
  ASSERT_TRUE(
      guest
          .WriteGuest(*high, absl::MakeConstSpan(
                                 reinterpret_cast<uint8_t*>(pixels.data()),
                                 pixels.size() * 4))
          .ok());
  ASSERT_EQ(guest.Transfer(2, Rect{0, 0, 640, 480}, 0), kOk);
  ASSERT_EQ(guest.Flush(2, Rect{0, 0, 640, 480}), kOk);
  EXPECT_TRUE(store_.WaitForFrame(
      0, [](const gpu::Frame& f) { return f.PixelAt(639, 479) == 0xFF123456u; },
      absl::Seconds(5)));
}

TEST_F(VhostUserTest, BlobResourcesOverVhostUser) {
  auto frontend = Connect(/*blob=*/true);
  ASSERT_TRUE(frontend.ok()) << frontend.status();
  guest_sim::SimulatedGuest& guest = (*frontend)->guest();
  uint64_t size = 640 * 480 * 4;
  auto gpa = guest.Alloc(size);
  ASSERT_TRUE(gpa.ok());
  gpu::wire::MemEntry entry{*gpa, static_cast<uint32_t>(size), 0};
  ASSERT_EQ(guest.CreateBlob(9, size, {&entry, 1}), kOk);
  ASSERT_EQ(
      guest.SetScanoutBlob(0, 9, 640, 480, 640 * 4, 0, Rect{0, 0, 640, 480}),
      kOk);
  std::vector<uint32_t> pixels(640 * 480, 0xFF00FF00u);
  ASSERT_TRUE(
      guest
          .WriteGuest(*gpa, absl::MakeConstSpan(
                                reinterpret_cast<uint8_t*>(pixels.data()),
                                pixels.size() * 4))
          .ok());
  ASSERT_EQ(guest.Flush(9, Rect{0, 0, 640, 480}, /*fenced=*/true, 1), kOk);
  EXPECT_TRUE(store_.WaitForFrame(
      0, [](const gpu::Frame& f) { return f.PixelAt(10, 10) == 0xFF00FF00u; },
      absl::Seconds(5)));
}

TEST_F(VhostUserTest, DisconnectResetsTheDeviceAndANewFrontendWorks) {
  {
    auto first = Connect();
    ASSERT_TRUE(first.ok()) << first.status();
    DrawAndPresent((*first)->guest(), 2, 1);
    ASSERT_TRUE(ShowsSeed(1));
  }  // the VMM goes away
  // Viewers see the scanout go away, then the new guest's frame.
  auto deadline = absl::Now() + absl::Seconds(5);
  while (store_.Mode(0)->enabled && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(5));
  EXPECT_FALSE(store_.Mode(0)->enabled);
  auto second = Connect();
  ASSERT_TRUE(second.ok()) << second.status();
  DrawAndPresent((*second)->guest(), 2,
                 2);  // same id as before: the old one is gone
  EXPECT_TRUE(ShowsSeed(2));
  EXPECT_EQ(server_->stats().connections, 2u);
}

TEST_F(VhostUserTest, GuestRebootOnTheSameConnectionStartsClean) {
  auto frontend = Connect();
  ASSERT_TRUE(frontend.ok()) << frontend.status();
  DrawAndPresent((*frontend)->guest(), 2, 3);
  ASSERT_TRUE(ShowsSeed(3));
  ASSERT_TRUE((*frontend)->Reboot().ok());
  // A fresh Linux driver starts its ids at 2 again.
  DrawAndPresent((*frontend)->guest(), 2, 4);
  EXPECT_TRUE(ShowsSeed(4));
}

TEST_F(VhostUserTest, SecondFrontendIsRejectedWhileOneIsActive) {
  auto first = Connect();
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = Connect();
  EXPECT_FALSE(second.ok());
  DrawAndPresent((*first)->guest(), 2, 5);
  EXPECT_TRUE(ShowsSeed(5));
}

int RawConnect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  return fd;
}

// The connection is closed (the peer reads EOF) and the server goes on.
void ExpectClosedAfter(const std::string& path, const void* bytes,
                       size_t size) {
  int fd = RawConnect(path);
  ASSERT_EQ(write(fd, bytes, size), static_cast<ssize_t>(size));
  char buffer[64];
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ssize_t n = read(fd, buffer, sizeof(buffer));
  // EOF, or a reset when the server closed with our bytes still unread.
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET))
      << n << " " << std::strerror(errno);
  close(fd);
}

TEST_F(VhostUserTest, MalformedMessagesCloseTheConnectionOnly) {
  vhost_user::Header bad_version{vhost_user::kGetFeatures, 0, 0};
  ExpectClosedAfter(path_, &bad_version, sizeof(bad_version));
  struct {
    vhost_user::Header header;
    uint32_t value;
  } short_state{{vhost_user::kSetVringNum, vhost_user::kVersion, 4}, 256};
  ExpectClosedAfter(path_, &short_state, sizeof(short_state));
  vhost_user::Header huge{vhost_user::kSetMemTable, vhost_user::kVersion,
                          1u << 30};
  ExpectClosedAfter(path_, &huge, sizeof(huge));
  struct {
    vhost_user::Header header;
    vhost_user::VringState state;
  } bad_queue{{vhost_user::kSetVringNum, vhost_user::kVersion, 8}, {7, 256}};
  ExpectClosedAfter(path_, &bad_queue, sizeof(bad_queue));
  struct {
    vhost_user::Header header;
    uint64_t value;
  } kick_without_fd{{vhost_user::kSetVringKick, vhost_user::kVersion, 8}, 0};
  ExpectClosedAfter(path_, &kick_without_fd, sizeof(kick_without_fd));
  // Still serving.
  auto frontend = Connect();
  ASSERT_TRUE(frontend.ok()) << frontend.status();
  DrawAndPresent((*frontend)->guest(), 2, 6);
  EXPECT_TRUE(ShowsSeed(6));
  EXPECT_GE(server_->stats().dropped, 5u);
}

// Guest RAM whose file is shorter than the region declared for it: refused
// at SET_MEM_TABLE (touching it would raise SIGBUS), the server goes on.
TEST_F(VhostUserTest, AMemoryTableLargerThanItsFileIsRefused) {
  int ram = memfd_create("short-ram", MFD_CLOEXEC);
  ASSERT_EQ(ftruncate(ram, 2 << 20), 0);
  struct {
    vhost_user::MemTableHeader header;
    vhost_user::MemRegion region;
  } table{};
  table.header.nregions = 1;
  table.region.guest_phys_addr = 0;
  table.region.memory_size = 64 << 20;  // the file has 2 MiB
  table.region.userspace_addr = 0x7f0000000000;
  int fd = RawConnect(path_);
  ASSERT_TRUE(vhost_user::WriteStruct(fd, vhost_user::kSetMemTable,
                                      vhost_user::kVersion, table, {ram})
                  .ok());
  char byte;
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  EXPECT_EQ(read(fd, &byte, 1), 0);  // closed
  close(fd);
  close(ram);
  auto frontend = Connect();
  ASSERT_TRUE(frontend.ok()) << frontend.status();
  DrawAndPresent((*frontend)->guest(), 2, 7);
  EXPECT_TRUE(ShowsSeed(7));
}

// The file behind guest RAM shrinks while the device runs (a peer truncates
// it): the device's next read past the new end faults, the connection is
// dropped and the daemon lives to serve the next VM.
TEST_F(VhostUserTest, GuestRamThatShrinksLaterCannotKillTheServer) {
  const uint64_t faults = virtio::MappingFaultCount();
  {
    synth::FrontendOptions options;
    options.socket_path = path_;
    options.guest.ram_bytes = 32 << 20;
    options.timeout = absl::Seconds(1);
    auto frontend = synth::VhostUserFrontend::Connect(options);
    ASSERT_TRUE(frontend.ok()) << frontend.status();
    guest_sim::SimulatedGuest& guest = (*frontend)->guest();
    DrawAndPresent(guest, 2, 8);
    ASSERT_TRUE(ShowsSeed(8));
    int ram = guest.memory().regions()[0].mapping->fd();
    ASSERT_GE(ram, 0);
    // The rings and the command area stay inside the first 2 MiB; the
    // pixels do not.
    ASSERT_EQ(ftruncate(ram, 2 << 20), 0);
    EXPECT_NE(guest.Transfer(2, Rect{0, 0, 640, 480}, 0), kOk);
  }
  // The device was reset (the scanout went away), and the server goes on.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (store_.Mode(0)->enabled && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(5));
  EXPECT_FALSE(store_.Mode(0)->enabled);
  EXPECT_GT(virtio::MappingFaultCount(), faults);
  auto next = Connect();
  ASSERT_TRUE(next.ok()) << next.status();
  DrawAndPresent((*next)->guest(), 2, 9);
  EXPECT_TRUE(ShowsSeed(9));
}

class MirrorTest : public VhostUserTest {
 protected:
  bool MirrorEnabled() const override { return true; }
};

TEST_F(MirrorTest, ScanoutAndUpdatesReachQemusDisplaySocket) {
  auto frontend = Connect();
  ASSERT_TRUE(frontend.ok()) << frontend.status();
  DrawAndPresent((*frontend)->guest(), 2, 8);
  ASSERT_TRUE(ShowsSeed(8));
  const synth::DisplayChannelStats& display = (*frontend)->display_stats();
  auto deadline = absl::Now() + absl::Seconds(5);
  while (display.update_bytes < 640u * 480 * 4 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_GE(display.scanouts.load(), 1u);
  EXPECT_GE(display.update_bytes.load(), 640u * 480 * 4);
}

TEST_F(MirrorTest, AStuckDisplaySocketNeverBlocksTheDevice) {
  // The VMM never reads its display socket: the mirror's queue fills up and
  // updates are dropped, while every guest command still completes.
  auto frontend = Connect(false, false, /*serve_display=*/false);
  ASSERT_TRUE(frontend.ok()) << frontend.status();
  guest_sim::SimulatedGuest& guest = (*frontend)->guest();
  auto gpa = guest.MakeScanoutResource(2, 640, 480);
  ASSERT_TRUE(gpa.ok());
  // Every frame new pixels (identical ones would be no damage at all).
  for (uint32_t seed = 100; seed < 140; ++seed) Present(guest, 2, *gpa, seed);
  EXPECT_TRUE(store_.WaitForFrameCount(40, absl::Seconds(5)));
  StopServer();
  EXPECT_GT(mirror_.stats().updates_dropped, 0u);
}

TEST_F(MirrorTest, EpipeOnTheDisplaySocketIsSurvived) {
  auto frontend = Connect();
  ASSERT_TRUE(frontend.ok()) << frontend.status();
  guest_sim::SimulatedGuest& guest = (*frontend)->guest();
  auto gpa = guest.MakeScanoutResource(2, 640, 480);
  ASSERT_TRUE(gpa.ok());
  Present(guest, 2, *gpa, 9);
  ASSERT_TRUE(ShowsSeed(9));
  (*frontend)->CloseDisplayChannel();
  // New pixels each time, so each flush has something to mirror.
  for (uint32_t seed = 10; seed < 15; ++seed) Present(guest, 2, *gpa, seed);
  EXPECT_TRUE(server_->connected());
  StopServer();
  EXPECT_EQ(mirror_.stats().channels_lost, 1u);
}

}  // namespace
}  // namespace vgpu
