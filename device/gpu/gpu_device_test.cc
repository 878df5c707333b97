// Device behaviour through real descriptor rings in memfd guest memory.
#include "device/gpu/gpu_device.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

#include "device/gpu/edid.h"
#include "device/guest_sim/simulated_guest.h"

namespace vgpu::gpu {
namespace {

using guest_sim::Bytes;
using guest_sim::Hdr;
using guest_sim::SimulatedGuest;
using guest_sim::SimulatedGuestOptions;
using wire::Rect;

constexpr uint32_t kOk = wire::kRespOkNodata;

std::unique_ptr<SimulatedGuest> MakeGuest(SimulatedGuestOptions options = {}) {
  auto guest = SimulatedGuest::Create(std::move(options));
  EXPECT_TRUE(guest.ok()) << guest.status();
  return std::move(*guest);
}

// Fills a width x height B8G8R8X8 image at `gpa` with pixel(x, y) = f(x, y).
template <typename F>
void Paint(SimulatedGuest& guest, uint64_t gpa, uint32_t width, uint32_t height,
           F f) {
  std::vector<uint32_t> pixels(size_t{width} * height);
  for (uint32_t y = 0; y < height; ++y)
    for (uint32_t x = 0; x < width; ++x)
      pixels[size_t{y} * width + x] = f(x, y);
  ASSERT_TRUE(
      guest
          .WriteGuest(gpa, absl::MakeConstSpan(
                               reinterpret_cast<uint8_t*>(pixels.data()),
                               pixels.size() * 4))
          .ok());
}

uint32_t Pattern(uint32_t x, uint32_t y) {
  return (x * 7 + y * 13) | (y << 16) | 0xFF000000u;
}

TEST(GpuDeviceTest, GetDisplayInfoReportsConfiguredModes) {
  SimulatedGuestOptions options;
  options.device.displays = {{1920, 1080, true}, {800, 600, false}};
  auto guest = MakeGuest(options);
  auto response = guest->Submit(Bytes(Hdr(wire::kCmdGetDisplayInfo)), {},
                                sizeof(wire::RespDisplayInfo));
  ASSERT_TRUE(response.ok());
  ASSERT_EQ(response->size(), sizeof(wire::RespDisplayInfo));
  wire::RespDisplayInfo info;
  std::memcpy(&info, response->data(), sizeof(info));
  EXPECT_EQ(info.hdr.type, wire::kRespOkDisplayInfo);
  EXPECT_EQ(info.pmodes[0].r.width, 1920u);
  EXPECT_EQ(info.pmodes[0].r.height, 1080u);
  EXPECT_EQ(info.pmodes[0].enabled, 1u);
  EXPECT_EQ(info.pmodes[1].r.width, 800u);
  EXPECT_EQ(info.pmodes[1].enabled, 0u);
  EXPECT_EQ(info.pmodes[2].r.width, 0u);  // zeroed, not leaked memory
}

TEST(GpuDeviceTest, GetEdidReturnsAValidBlockForThePreferredMode) {
  SimulatedGuestOptions options;
  options.device.displays = {{1280, 800, true}, {3840, 2160, true}};
  auto guest = MakeGuest(options);
  for (uint32_t scanout = 0; scanout < 2; ++scanout) {
    wire::GetEdid cmd{Hdr(wire::kCmdGetEdid), scanout, 0};
    auto response = guest->Submit(Bytes(cmd), {}, sizeof(wire::RespEdid));
    ASSERT_TRUE(response.ok());
    wire::RespEdid edid;
    ASSERT_EQ(response->size(), sizeof(edid));
    std::memcpy(&edid, response->data(), sizeof(edid));
    EXPECT_EQ(edid.hdr.type, wire::kRespOkEdid);
    ASSERT_EQ(edid.size, 128u);
    std::array<uint8_t, 128> block;
    std::memcpy(block.data(), edid.edid, 128);
    uint8_t sum = 0;
    for (uint8_t b : block) sum = static_cast<uint8_t>(sum + b);
    EXPECT_EQ(sum, 0) << "checksum";
    EdidMode mode = DecodePreferredMode(block);
    EXPECT_EQ(mode.width, scanout == 0 ? 1280u : 3840u);
    EXPECT_EQ(mode.height, scanout == 0 ? 800u : 2160u);
    EXPECT_EQ(mode.refresh_hz, 60u);
  }
  wire::GetEdid bad{Hdr(wire::kCmdGetEdid), 2, 0};
  EXPECT_EQ(*guest->SubmitForType(Bytes(bad), {}, sizeof(wire::RespEdid)),
            wire::kRespErrInvalidParameter);
}

TEST(GpuDeviceTest, CreateAcceptsAllEightFormatsAndConvertsToCanonical) {
  const uint32_t formats[] = {wire::kFormatB8G8R8A8, wire::kFormatB8G8R8X8,
                              wire::kFormatA8R8G8B8, wire::kFormatX8R8G8B8,
                              wire::kFormatR8G8B8A8, wire::kFormatX8B8G8R8,
                              wire::kFormatA8B8G8R8, wire::kFormatR8G8B8X8};
  // Memory bytes of one pixel with B=0x11 G=0x22 R=0x33 A=0x44, per format.
  const uint8_t bytes[][4] = {
      {0x11, 0x22, 0x33, 0x44}, {0x11, 0x22, 0x33, 0x44},
      {0x44, 0x33, 0x22, 0x11}, {0x44, 0x33, 0x22, 0x11},
      {0x33, 0x22, 0x11, 0x44}, {0x44, 0x11, 0x22, 0x33},
      {0x44, 0x11, 0x22, 0x33}, {0x33, 0x22, 0x11, 0x44}};
  auto guest = MakeGuest();
  for (uint32_t i = 0; i < 8; ++i) {
    uint32_t id = 10 + i;
    ASSERT_EQ(guest->Create2d(id, 16, 16, formats[i]), kOk) << formats[i];
    uint64_t gpa = 0;
    ASSERT_EQ(guest->AttachNewBacking(id, 16 * 16 * 4, &gpa), kOk);
    std::vector<uint8_t> image(16 * 16 * 4);
    for (size_t p = 0; p < 256; ++p) std::memcpy(&image[p * 4], bytes[i], 4);
    ASSERT_TRUE(guest->WriteGuest(gpa, image).ok());
    ASSERT_EQ(guest->Transfer(id, Rect{0, 0, 16, 16}, 0), kOk);
    ASSERT_EQ(guest->SetScanout(0, id, Rect{0, 0, 16, 16}), kOk);
    FramePtr frame = guest->device().LastFrame(0);
    ASSERT_NE(frame, nullptr);
    EXPECT_EQ(frame->PixelAt(5, 5) & 0x00FFFFFFu, 0x00332211u)
        << "format " << formats[i];
  }
  for (uint32_t bad : {0u, 5u, 0xFFFFFFFFu}) {
    EXPECT_EQ(guest->Create2d(99, 16, 16, bad), wire::kRespErrInvalidParameter)
        << bad;
  }
}

TEST(GpuDeviceTest, TransferUsesQemuOffsetSemantics) {
  // off = y * pitch + x * 4 must copy rows (y..y+h) x (x..x+w) from the
  // backing's own layout (the crosvm 5204e5db2 interop case).
  auto guest = MakeGuest();
  auto gpa = guest->MakeScanoutResource(2, 256, 128);
  ASSERT_TRUE(gpa.ok());
  Paint(*guest, *gpa, 256, 128, Pattern);
  Rect r{40, 30, 64, 20};
  ASSERT_EQ(guest->Transfer(2, r, uint64_t{r.y} * 256 * 4 + r.x * 4), kOk);
  ASSERT_EQ(guest->Flush(2, r), kOk);
  FramePtr frame = guest->device().LastFrame(0);
  ASSERT_NE(frame, nullptr);
  EXPECT_EQ(frame->PixelAt(40, 30), Pattern(40, 30));
  EXPECT_EQ(frame->PixelAt(103, 49), Pattern(103, 49));
  EXPECT_EQ(frame->PixelAt(39, 30), 0u);  // outside the transfer: still zero
  EXPECT_EQ(frame->PixelAt(104, 49), 0u);
  EXPECT_EQ(guest->device().stats().transfer_bytes_copied, 64u * 20 * 4);
}

TEST(GpuDeviceTest, FullWidthTransferCopiesContiguousRows) {
  auto guest = MakeGuest();
  auto gpa = guest->MakeScanoutResource(2, 100, 50);
  ASSERT_TRUE(gpa.ok());
  Paint(*guest, *gpa, 100, 50, Pattern);
  ASSERT_EQ(guest->Transfer(2, Rect{0, 10, 100, 5}, 10 * 100 * 4), kOk);
  ASSERT_EQ(guest->Flush(2, Rect{0, 0, 100, 50}), kOk);
  FramePtr frame = guest->device().LastFrame(0);
  EXPECT_EQ(frame->PixelAt(99, 14), Pattern(99, 14));
  EXPECT_EQ(frame->PixelAt(0, 15), 0u);
}

TEST(GpuDeviceTest, FlushDamageIsInScanoutCoordinatesAndClipped) {
  SimulatedGuestOptions options;
  options.device.displays = {{640, 480, true}, {640, 480, true}};
  auto guest = MakeGuest(options);
  ASSERT_EQ(guest->Create2d(2, 1280, 480), kOk);
  uint64_t gpa;
  ASSERT_EQ(guest->AttachNewBacking(2, 1280 * 480 * 4, &gpa), kOk);
  // One big framebuffer, two scanouts side by side.
  ASSERT_EQ(guest->SetScanout(0, 2, Rect{0, 0, 640, 480}), kOk);
  ASSERT_EQ(guest->SetScanout(1, 2, Rect{640, 0, 640, 480}), kOk);
  Paint(*guest, gpa, 1280, 480, Pattern);
  Rect r{600, 100, 80, 10};
  ASSERT_EQ(guest->Transfer(2, r, uint64_t{r.y} * 1280 * 4 + r.x * 4), kOk);
  guest->sink().frames.clear();
  ASSERT_EQ(guest->Flush(2, r), kOk);
  ASSERT_EQ(guest->sink().frames.size(), 2u);
  EXPECT_EQ(guest->sink().frames[0].damage,
            (std::vector<PixelRect>{{600, 100, 40, 10}}));
  EXPECT_EQ(guest->sink().frames[1].damage,
            (std::vector<PixelRect>{{0, 100, 40, 10}}));
  EXPECT_EQ(guest->sink().frames[1].frame->PixelAt(0, 100), Pattern(640, 100));
  EXPECT_EQ(guest->sink().frames[0].frame->PixelAt(639, 109),
            Pattern(639, 109));
}

TEST(GpuDeviceTest, SetScanoutReportsModeAndPublishesTheHostCopy) {
  auto guest = MakeGuest();
  ASSERT_TRUE(guest->MakeScanoutResource(2, 1024, 768).ok());
  ASSERT_EQ(guest->sink().modes.size(), 1u);
  EXPECT_TRUE(guest->sink().modes[0].enabled);
  EXPECT_EQ(guest->sink().modes[0].width, 1024u);
  ASSERT_EQ(guest->sink().frames.size(), 1u);
  EXPECT_EQ(guest->sink().frames[0].damage,
            (std::vector<PixelRect>{{0, 0, 1024, 768}}));
  EXPECT_EQ(guest->SetScanout(0, 0, Rect{}), kOk);
  ASSERT_EQ(guest->sink().modes.size(), 2u);
  EXPECT_FALSE(guest->sink().modes[1].enabled);
  EXPECT_EQ(guest->device().LastFrame(0), nullptr);
}

uint32_t OtherPattern(uint32_t x, uint32_t y) { return ~Pattern(x, y); }

TEST(GpuDeviceTest, UnchangedTilesAreSharedBetweenFrames) {
  auto guest = MakeGuest();
  auto gpa = guest->MakeScanoutResource(2, 256, 256);
  ASSERT_TRUE(gpa.ok());
  Paint(*guest, *gpa, 256, 256, Pattern);
  ASSERT_EQ(guest->Transfer(2, Rect{0, 0, 256, 256}, 0), kOk);
  ASSERT_EQ(guest->Flush(2, Rect{0, 0, 256, 256}), kOk);
  FramePtr before = guest->device().LastFrame(0);
  Paint(*guest, *gpa, 256, 256, OtherPattern);
  constexpr uint32_t t = kTileSize;  // update exactly tile (1, 1)
  ASSERT_EQ(guest->Transfer(2, Rect{t, t, t, t}, t * 256 * 4 + t * 4), kOk);
  ASSERT_EQ(guest->Flush(2, Rect{t, t, t, t}), kOk);
  FramePtr after = guest->device().LastFrame(0);
  EXPECT_EQ(before->GridTile(0, 0), after->GridTile(0, 0));
  EXPECT_EQ(before->GridTile(3, 3), after->GridTile(3, 3));
  EXPECT_NE(before->GridTile(1, 1), after->GridTile(1, 1));
  // A frame never changes after it is published.
  EXPECT_EQ(before->PixelAt(t + 6, t + 6), Pattern(t + 6, t + 6));
  EXPECT_EQ(after->PixelAt(t + 6, t + 6), OtherPattern(t + 6, t + 6));
}

TEST(GpuDeviceTest, RewritingTheSamePixelsIsNoChange) {
  auto guest = MakeGuest();
  auto gpa = guest->MakeScanoutResource(2, 256, 256);
  ASSERT_TRUE(gpa.ok());
  Paint(*guest, *gpa, 256, 256, Pattern);
  ASSERT_EQ(guest->Transfer(2, Rect{0, 0, 256, 256}, 0), kOk);
  ASSERT_EQ(guest->Flush(2, Rect{0, 0, 256, 256}), kOk);
  FramePtr before = guest->device().LastFrame(0);
  const uint64_t copied = guest->device().stats().transfer_bytes_copied;
  guest->sink().frames.clear();
  // The guest redraws everything with what is already there (fbcon does).
  ASSERT_EQ(guest->Transfer(2, Rect{0, 0, 256, 256}, 0), kOk);
  ASSERT_EQ(guest->Flush(2, Rect{0, 0, 256, 256}), kOk);
  EXPECT_EQ(guest->device().stats().transfer_bytes_copied, copied);
  ASSERT_EQ(guest->sink().frames.size(), 1u);  // still a frame per flush
  EXPECT_TRUE(guest->sink().frames[0].damage.empty());
  FramePtr after = guest->device().LastFrame(0);
  for (uint32_t row = 0; row < 4; ++row)
    for (uint32_t column = 0; column < 4; ++column)
      EXPECT_EQ(before->GridTile(column, row), after->GridTile(column, row));
  // One character cell of new pixels: the damage is that cell, not the
  // flushed rect, and only its bytes are copied.
  Paint(*guest, *gpa, 256, 256, [](uint32_t x, uint32_t y) {
    return x >= 72 && x < 80 && y >= 100 && y < 116 ? 0xFFFFFFFFu
                                                    : Pattern(x, y);
  });
  guest->sink().frames.clear();
  ASSERT_EQ(guest->Transfer(2, Rect{0, 96, 256, 32}, 96 * 256 * 4), kOk);
  ASSERT_EQ(guest->Flush(2, Rect{0, 96, 256, 32}), kOk);
  ASSERT_EQ(guest->sink().frames.size(), 1u);
  EXPECT_EQ(guest->sink().frames[0].damage,
            (std::vector<PixelRect>{{72, 100, 8, 16}}));
  EXPECT_EQ(guest->device().stats().transfer_bytes_copied - copied,
            8u * 16 * 4);
}

TEST(GpuDeviceTest, EachChangedPixelIsCopiedOnceForCopiedResources) {
  auto guest = MakeGuest();
  auto gpa = guest->MakeScanoutResource(2, 640, 480);
  ASSERT_TRUE(gpa.ok());
  Paint(*guest, *gpa, 640, 480, Pattern);
  ASSERT_EQ(guest->Transfer(2, Rect{128, 64, 64, 64}, 64 * 640 * 4 + 128 * 4),
            kOk);
  ASSERT_EQ(guest->Flush(2, Rect{128, 64, 64, 64}), kOk);
  const DeviceStats& stats = guest->device().stats();
  EXPECT_EQ(stats.transfer_bytes_copied, 64u * 64 * 4);
  EXPECT_EQ(stats.flush_bytes_copied, 0u);
  EXPECT_EQ(stats.grid.clone_bytes, 0u);  // tile-aligned: no copy-on-write copy
}

TEST(GpuDeviceTest, SharedPolicyCopiesAtFlushAndTransferCopiesNothing) {
  SimulatedGuestOptions options;
  options.device.policy = ResourcePolicy::kShared;
  auto guest = MakeGuest(options);
  auto gpa = guest->MakeScanoutResource(2, 640, 480);
  ASSERT_TRUE(gpa.ok());
  Paint(*guest, *gpa, 640, 480, Pattern);
  ASSERT_EQ(guest->Flush(2, Rect{0, 0, 640, 480}),
            kOk);  // first flush captures everything
  uint64_t after_first = guest->device().stats().flush_bytes_copied;
  EXPECT_EQ(after_first, 640u * 480 * 4);
  // Showing it in a new mode read it too (the mode's first frame), when
  // the guest's pixels were still all zero: nothing changed, nothing copied.
  EXPECT_EQ(guest->device().stats().mode_capture_bytes_copied, 0u);
  Paint(*guest, *gpa, 640, 480, OtherPattern);
  ASSERT_EQ(guest->Transfer(2, Rect{128, 64, 64, 64}, 64 * 640 * 4 + 128 * 4),
            kOk);
  EXPECT_EQ(guest->device().stats().transfer_bytes_copied, 0u);
  ASSERT_EQ(guest->Flush(2, Rect{128, 64, 64, 64}), kOk);
  EXPECT_EQ(guest->device().stats().flush_bytes_copied - after_first,
            64u * 64 * 4);
  EXPECT_EQ(guest->device().LastFrame(0)->PixelAt(191, 127),
            OtherPattern(191, 127));
  EXPECT_EQ(guest->device().LastFrame(0)->PixelAt(192, 127), Pattern(192, 127));
}

TEST(GpuDeviceTest, AutoPolicyCopiesSmallResourcesAndSharesLargeOnes) {
  SimulatedGuestOptions options;
  options.device.policy = ResourcePolicy::kAuto;
  options.device.auto_shared_min_bytes = 1 << 20;
  auto guest = MakeGuest(options);
  auto small = guest->MakeScanoutResource(2, 256, 256);  // 256 KiB: copied
  ASSERT_TRUE(small.ok());
  Paint(*guest, *small, 256, 64, Pattern);
  ASSERT_EQ(guest->Transfer(2, Rect{0, 0, 64, 64}, 0), kOk);
  EXPECT_EQ(guest->device().stats().transfer_bytes_copied, 64u * 64 * 4);
  auto large = guest->MakeScanoutResource(3, 1024, 1024);  // 4 MiB: shared
  ASSERT_TRUE(large.ok());
  Paint(*guest, *large, 1024, 64, Pattern);
  ASSERT_EQ(guest->Transfer(3, Rect{0, 0, 64, 64}, 0), kOk);
  EXPECT_EQ(guest->device().stats().transfer_bytes_copied, 64u * 64 * 4);
}

TEST(GpuDeviceTest, BlobScanoutReadsGuestPagesAtFlush) {
  auto guest = MakeGuest();
  constexpr uint32_t kW = 320, kH = 200, kStride = 1536;  // padded rows
  uint64_t size = uint64_t{kStride} * kH;
  auto gpa = guest->Alloc(size + 8192);
  ASSERT_TRUE(gpa.ok());
  // Two entries, so the framebuffer crosses a segment boundary mid-row.
  wire::MemEntry entries[] = {
      {*gpa, 5000, 0}, {*gpa + 8192, static_cast<uint32_t>(size - 5000), 0}};
  ASSERT_EQ(guest->CreateBlob(5, size, entries), kOk);
  ASSERT_EQ(guest->SetScanoutBlob(0, 5, kW, kH, kStride, 0, Rect{0, 0, kW, kH}),
            kOk);
  // Pixel (x, y) lives at y * stride + x * 4 of the blob's linear bytes.
  std::vector<uint8_t> linear(size);
  for (uint32_t y = 0; y < kH; ++y)
    for (uint32_t x = 0; x < kW; ++x) {
      uint32_t v = Pattern(x, y);
      std::memcpy(&linear[size_t{y} * kStride + x * 4], &v, 4);
    }
  ASSERT_TRUE(
      guest->WriteGuest(*gpa, absl::MakeConstSpan(linear).subspan(0, 5000))
          .ok());
  ASSERT_TRUE(
      guest->WriteGuest(*gpa + 8192, absl::MakeConstSpan(linear).subspan(5000))
          .ok());
  ASSERT_EQ(guest->Transfer(5, Rect{0, 0, kW, kH}, 0),
            kOk);  // a no-op hint for blobs
  EXPECT_EQ(guest->device().stats().transfer_bytes_copied, 0u);
  ASSERT_EQ(guest->Flush(5, Rect{0, 0, kW, kH}, /*fenced=*/true, 7), kOk);
  FramePtr frame = guest->device().LastFrame(0);
  ASSERT_NE(frame, nullptr);
  for (uint32_t y : {0u, 3u, 199u})
    for (uint32_t x : {0u, 226u, 319u})
      EXPECT_EQ(frame->PixelAt(x, y), Pattern(x, y)) << x << "," << y;
  EXPECT_EQ(guest->device().stats().flush_bytes_copied, uint64_t{kW} * kH * 4);
  // The mode's first frame was read at SET_SCANOUT_BLOB, before the guest
  // drew anything: all zero, nothing to copy.
  EXPECT_EQ(guest->device().stats().mode_capture_bytes_copied, 0u);
}

TEST(GpuDeviceTest, FencedFlushOfSharedResourceCapturesBeforeReplying) {
  auto guest = MakeGuest();
  uint64_t size = 64 * 64 * 4;
  auto gpa = guest->Alloc(size);
  wire::MemEntry entry{*gpa, static_cast<uint32_t>(size), 0};
  ASSERT_EQ(guest->CreateBlob(5, size, {&entry, 1}), kOk);
  ASSERT_EQ(guest->SetScanoutBlob(0, 5, 64, 64, 256, 0, Rect{0, 0, 64, 64}),
            kOk);
  Paint(*guest, *gpa, 64, 64, [](uint32_t, uint32_t) { return 0xFF00FF00u; });
  wire::ResourceFlush flush{Hdr(wire::kCmdResourceFlush, wire::kFlagFence, 42),
                            Rect{0, 0, 64, 64}, 5, 0};
  auto response = guest->Submit(Bytes(flush));
  ASSERT_TRUE(response.ok());
  wire::CtrlHdr hdr;
  std::memcpy(&hdr, response->data(), sizeof(hdr));
  EXPECT_EQ(hdr.type, kOk);
  EXPECT_EQ(hdr.flags & wire::kFlagFence, wire::kFlagFence);
  EXPECT_EQ(hdr.fence_id, 42u);
  // The guest reuses the buffer right after the fence: the frame must not see
  // it.
  Paint(*guest, *gpa, 64, 64, [](uint32_t, uint32_t) { return 0xFFFF0000u; });
  EXPECT_EQ(guest->device().LastFrame(0)->PixelAt(10, 10), 0xFF00FF00u);
}

TEST(GpuDeviceTest, FencedRepliesEchoFenceIdsInOrder) {
  auto guest = MakeGuest();
  for (uint64_t fence = 1; fence <= 5; ++fence) {
    auto response = guest->Submit(
        Bytes(Hdr(wire::kCmdGetDisplayInfo, wire::kFlagFence, fence)), {},
        sizeof(wire::RespDisplayInfo));
    ASSERT_TRUE(response.ok());
    wire::CtrlHdr hdr;
    std::memcpy(&hdr, response->data(), sizeof(hdr));
    EXPECT_EQ(hdr.fence_id, fence);
    EXPECT_TRUE(hdr.flags & wire::kFlagFence);
  }
  // Errors echo the fence too.
  auto response = guest->Submit(Bytes(Hdr(0x0207, wire::kFlagFence, 9)));
  wire::CtrlHdr hdr;
  std::memcpy(&hdr, response->data(), sizeof(hdr));
  EXPECT_EQ(hdr.type, wire::kRespErrUnspec);
  EXPECT_EQ(hdr.fence_id, 9u);
}

TEST(GpuDeviceTest, CursorUpdateCarriesImageHotspotAndMoveOnlyPosition) {
  auto guest = MakeGuest();
  ASSERT_EQ(guest->Create2d(7, 64, 64, wire::kFormatB8G8R8A8), kOk);
  uint64_t gpa;
  ASSERT_EQ(guest->AttachNewBacking(7, 64 * 64 * 4, &gpa), kOk);
  Paint(*guest, gpa, 64, 64,
        [](uint32_t x, uint32_t) { return x < 32 ? 0x80FF0000u : 0u; });
  ASSERT_EQ(guest->Transfer(7, Rect{0, 0, 64, 64}, 0), kOk);
  wire::UpdateCursor update{};
  update.hdr = Hdr(wire::kCmdUpdateCursor);
  update.pos = {0, 100, 200, 0};
  update.resource_id = 7;
  update.hot_x = 3;
  update.hot_y = 4;
  ASSERT_TRUE(guest->SubmitCursor(update).ok());
  ASSERT_EQ(guest->sink().cursors.size(), 1u);
  const CursorUpdate& shape = guest->sink().cursors[0];
  EXPECT_TRUE(shape.visible);
  ASSERT_NE(shape.image, nullptr);
  EXPECT_EQ(shape.image->hot_x, 3u);
  EXPECT_EQ(shape.image->hot_y, 4u);
  uint32_t pixel;
  std::memcpy(&pixel, shape.image->pixels.data(), 4);
  EXPECT_EQ(pixel, 0x80FF0000u);
  wire::UpdateCursor move = update;
  move.hdr = Hdr(wire::kCmdMoveCursor);
  move.pos = {0, 5, 6, 0};
  ASSERT_TRUE(guest->SubmitCursor(move).ok());
  ASSERT_EQ(guest->sink().cursors.size(), 2u);
  EXPECT_EQ(guest->sink().cursors[1].image, nullptr);
  EXPECT_EQ(guest->sink().cursors[1].x, 5u);
  EXPECT_TRUE(guest->sink().cursors[1].visible);
  wire::UpdateCursor hide = update;
  hide.resource_id = 0;
  ASSERT_TRUE(guest->SubmitCursor(hide).ok());
  EXPECT_FALSE(guest->sink().cursors.back().visible);
}

TEST(GpuDeviceTest, ConfigSpaceAndDisplayEvent) {
  SimulatedGuestOptions options;
  options.device.displays = {
      {1280, 800, true}, {1024, 768, true}, {640, 480, false}};
  auto guest = MakeGuest(options);
  int interrupts = 0;
  guest->device().SetConfigChangedCallback([&interrupts] { ++interrupts; });
  wire::Config config;
  guest->device().ReadConfig(
      0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), sizeof(config)));
  EXPECT_EQ(config.num_scanouts, 3u);
  EXPECT_EQ(config.num_capsets, 0u);
  EXPECT_EQ(config.events_read, 0u);
  ASSERT_TRUE(guest->device().SetDisplay(1, {1920, 1080, true}).ok());
  EXPECT_EQ(interrupts, 1);
  guest->device().ReadConfig(
      0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), 4));
  EXPECT_EQ(config.events_read, wire::kEventDisplay);
  auto response = guest->Submit(Bytes(Hdr(wire::kCmdGetDisplayInfo)), {},
                                sizeof(wire::RespDisplayInfo));
  wire::RespDisplayInfo info;
  std::memcpy(&info, response->data(), sizeof(info));
  EXPECT_EQ(info.pmodes[1].r.width, 1920u);
  uint32_t clear = wire::kEventDisplay;
  guest->device().WriteConfig(
      4, absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&clear), 4));
  guest->device().ReadConfig(
      0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), 4));
  EXPECT_EQ(config.events_read, 0u);
  EXPECT_FALSE(guest->device().SetDisplay(0, {8, 8, true}).ok());
  EXPECT_FALSE(guest->device().SetDisplay(3, {800, 600, true}).ok());
}

TEST(GpuDeviceTest, SixteenScanoutsAreSupported) {
  SimulatedGuestOptions options;
  options.device.displays.assign(16, DisplayConfig{640, 480, true});
  auto guest = MakeGuest(options);
  for (uint32_t s = 0; s < 16; ++s)
    ASSERT_TRUE(guest->MakeScanoutResource(100 + s, 64, 64, s).ok());
  EXPECT_EQ(guest->sink().modes.size(), 16u);
  GpuDeviceOptions seventeen;
  seventeen.displays.assign(17, DisplayConfig{});
  NullDisplaySink sink;
  EXPECT_FALSE(GpuDevice::Create(seventeen, &sink).ok());
}

TEST(GpuDeviceTest, AssignUuidIsStablePerResource) {
  auto guest = MakeGuest();
  ASSERT_EQ(guest->Create2d(2, 64, 64), kOk);
  wire::ResourceAssignUuid cmd{Hdr(wire::kCmdResourceAssignUuid), 2, 0};
  auto first = guest->Submit(Bytes(cmd), {}, sizeof(wire::RespResourceUuid));
  auto second = guest->Submit(Bytes(cmd), {}, sizeof(wire::RespResourceUuid));
  ASSERT_EQ(first->size(), sizeof(wire::RespResourceUuid));
  EXPECT_EQ(*first, *second);
  wire::RespResourceUuid uuid;
  std::memcpy(&uuid, first->data(), sizeof(uuid));
  EXPECT_EQ(uuid.hdr.type, wire::kRespOkResourceUuid);
  EXPECT_EQ(uuid.uuid[6] >> 4, 4);
  cmd.resource_id = 3;
  EXPECT_EQ(
      *guest->SubmitForType(Bytes(cmd), {}, sizeof(wire::RespResourceUuid)),
      wire::kRespErrInvalidResourceId);
}

TEST(GpuDeviceTest, TwoRegionGuestWorksAcrossTheHole) {
  SimulatedGuestOptions options;
  options.two_regions = true;
  auto guest = MakeGuest(options);
  ASSERT_EQ(guest->Create2d(2, 128, 128), kOk);
  auto low = guest->Alloc(128 * 64 * 4);
  auto high = guest->Alloc(128 * 64 * 4, 4096, /*high=*/true);
  ASSERT_TRUE(low.ok() && high.ok());
  wire::MemEntry entries[] = {{*low, 128 * 64 * 4, 0},
                              {*high, 128 * 64 * 4, 0}};
  ASSERT_EQ(guest->AttachEntries(2, entries), kOk);
  ASSERT_EQ(guest->SetScanout(0, 2, Rect{0, 0, 128, 128}), kOk);
  Paint(*guest, *high, 128, 64,
        [](uint32_t x, uint32_t y) { return Pattern(x, y + 64); });
  ASSERT_EQ(guest->Transfer(2, Rect{0, 64, 128, 64}, 64 * 128 * 4), kOk);
  ASSERT_EQ(guest->Flush(2, Rect{0, 0, 128, 128}), kOk);
  EXPECT_EQ(guest->device().LastFrame(0)->PixelAt(127, 127), Pattern(127, 127));
}

TEST(GpuDeviceTest, ResetDropsEverything) {
  auto guest = MakeGuest();
  ASSERT_TRUE(guest->MakeScanoutResource(2, 640, 480).ok());
  EXPECT_GT(guest->device().host_memory_used(), 0u);
  guest->device().Reset();
  EXPECT_EQ(guest->device().resource_count(), 0u);
  EXPECT_EQ(guest->device().host_memory_used(), 0u);
  EXPECT_EQ(guest->device().LastFrame(0), nullptr);
  EXPECT_FALSE(guest->sink().modes.back().enabled);
}

}  // namespace
}  // namespace vgpu::gpu

namespace vgpu::gpu {
namespace {

// A scanout switched to a smaller picture before any flush (a viewer or a CI
// screenshot can land in between; a guest that only modesets never
// flushes): the new mode reaches the sink together with a first frame of
// its own size showing the new picture, for every kind of source.
class ModeChangeTest : public ::testing::TestWithParam<int> {};

TEST_P(ModeChangeTest, ANewModeComesWithAFrameOfItsSize) {
  const bool blob = GetParam() == 2;
  SimulatedGuestOptions options;
  options.device.policy =
      GetParam() == 1 ? ResourcePolicy::kShared : ResourcePolicy::kCopy;
  auto guest = MakeGuest(options);
  auto show = [&](uint32_t id, uint32_t width, uint32_t height,
                  uint32_t color) {
    const uint64_t bytes = uint64_t{width} * height * 4;
    auto gpa = guest->Alloc(bytes);
    ASSERT_TRUE(gpa.ok());
    Paint(*guest, *gpa, width, height,
          [=](uint32_t, uint32_t) { return color; });
    wire::MemEntry entry{*gpa, static_cast<uint32_t>(bytes), 0};
    if (blob) {
      ASSERT_EQ(guest->CreateBlob(id, bytes, {&entry, 1}), kOk);
      ASSERT_EQ(guest->SetScanoutBlob(0, id, width, height, width * 4, 0,
                                      Rect{0, 0, width, height}),
                kOk);
    } else {
      ASSERT_EQ(guest->Create2d(id, width, height), kOk);
      ASSERT_EQ(guest->AttachEntries(id, {&entry, 1}), kOk);
      ASSERT_EQ(guest->Transfer(id, Rect{0, 0, width, height}, 0), kOk);
      ASSERT_EQ(guest->SetScanout(0, id, Rect{0, 0, width, height}), kOk);
    }
  };
  show(1, 640, 480, 0xFF0000FFu);
  ASSERT_EQ(guest->Flush(1, Rect{0, 0, 640, 480}), kOk);
  show(2, 320, 200, 0xFFFF0000u);  // no flush
  guest_sim::RecordingSink& sink = guest->sink();
  ASSERT_FALSE(sink.modes.empty());
  EXPECT_EQ(sink.modes.back().width, 320u);
  EXPECT_EQ(sink.modes.back().height, 200u);
  ASSERT_FALSE(sink.frames.empty());
  const FramePtr& first = sink.frames.back().frame;
  EXPECT_EQ(first->width(), 320u);
  EXPECT_EQ(first->height(), 200u);
  EXPECT_EQ(first->PixelAt(0, 0), 0xFFFF0000u);
  EXPECT_EQ(first->PixelAt(319, 199), 0xFFFF0000u);
  EXPECT_EQ(guest->device().LastFrame(0), first);
}

INSTANTIATE_TEST_SUITE_P(CopiedSharedAndBlob, ModeChangeTest,
                         ::testing::Values(0, 1, 2));

}  // namespace
}  // namespace vgpu::gpu
