// Reference §8: every CVE-derived bad input and the negative list under it.
// Each test drives real rings; the device must answer with the right error,
// keep serving, and leak nothing (this binary also runs under ASan/LSan).
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

#include "device/gpu/gpu_device.h"
#include "device/guest_sim/simulated_guest.h"

namespace vgpu::gpu {
namespace {

using guest_sim::Bytes;
using guest_sim::Hdr;
using guest_sim::SimulatedGuest;
using guest_sim::SimulatedGuestOptions;
using wire::MemEntry;
using wire::Rect;

constexpr uint32_t kOk = wire::kRespOkNodata;
constexpr uint32_t kBadResource = wire::kRespErrInvalidResourceId;
constexpr uint32_t kBadScanout = wire::kRespErrInvalidScanoutId;
constexpr uint32_t kBadParameter = wire::kRespErrInvalidParameter;
constexpr uint32_t kUnspec = wire::kRespErrUnspec;
constexpr uint32_t kOom = wire::kRespErrOutOfMemory;

class HostileGuestTest : public ::testing::Test {
 protected:
  void SetUp() override { Make({}); }
  void Make(SimulatedGuestOptions options) {
    auto guest = SimulatedGuest::Create(std::move(options));
    ASSERT_TRUE(guest.ok()) << guest.status();
    guest_ = std::move(*guest);
  }
  // The device still answers a plain command after whatever came before.
  void ExpectAlive() {
    EXPECT_FALSE(guest_->device().needs_reset());
    auto type = guest_->SubmitForType(Bytes(Hdr(wire::kCmdGetDisplayInfo)), {},
                                      sizeof(wire::RespDisplayInfo));
    ASSERT_TRUE(type.ok());
    EXPECT_EQ(*type, wire::kRespOkDisplayInfo);
  }
  std::unique_ptr<SimulatedGuest> guest_;
};

// CVE-2016-10029: scanout_id >= num_scanouts on every command that takes one.
TEST_F(HostileGuestTest, Cve2016_10029_ScanoutIdOutOfRange) {
  ASSERT_EQ(guest_->Create2d(2, 64, 64), kOk);
  uint64_t gpa;
  ASSERT_EQ(guest_->AttachNewBacking(2, 64 * 64 * 4, &gpa), kOk);
  for (uint32_t scanout : {1u, 16u, 0xFFFFFFFFu}) {
    EXPECT_EQ(guest_->SetScanout(scanout, 2, Rect{0, 0, 64, 64}), kBadScanout);
    EXPECT_EQ(
        guest_->SetScanoutBlob(scanout, 2, 64, 64, 256, 0, Rect{0, 0, 64, 64}),
        kBadScanout);
    wire::GetEdid edid{Hdr(wire::kCmdGetEdid), scanout, 0};
    EXPECT_EQ(*guest_->SubmitForType(Bytes(edid), {}, sizeof(wire::RespEdid)),
              kBadParameter);
    wire::UpdateCursor cursor{};
    cursor.hdr = Hdr(wire::kCmdUpdateCursor);
    cursor.pos.scanout_id = scanout;
    cursor.resource_id = 2;
    ASSERT_TRUE(guest_->SubmitCursor(cursor).ok());
  }
  EXPECT_TRUE(guest_->sink().cursors.empty());
  ExpectAlive();
}

// CVE-2016-9912 / CVE-2017-5552 / CVE-2017-5857 / CVE-2021-3544: backing
// must be freed on UNREF. Loop create/attach/unref; memory returns to zero.
TEST_F(HostileGuestTest, Cve2016_9912_CreateAttachUnrefLoopLeaksNothing) {
  uint64_t gpa = *guest_->Alloc(64 * 64 * 4);
  MemEntry entry{gpa, 64 * 64 * 4, 0};
  for (uint32_t i = 0; i < 20000; ++i) {
    ASSERT_EQ(guest_->Create2d(2, 64, 64), kOk);
    ASSERT_EQ(guest_->AttachEntries(2, {&entry, 1}), kOk);
    ASSERT_EQ(guest_->Unref(2), kOk);
  }
  EXPECT_EQ(guest_->device().resource_count(), 0u);
  EXPECT_EQ(guest_->device().host_memory_used(), 0u);
  EXPECT_EQ(guest_->device().backings_held(), 0u);
}

// CVE-2017-5578: repeated ATTACH on one id, and ATTACH whose last entry fails.
TEST_F(HostileGuestTest, Cve2017_5578_RepeatedAndFailingAttach) {
  ASSERT_EQ(guest_->Create2d(2, 64, 64), kOk);
  uint64_t gpa = *guest_->Alloc(64 * 64 * 4);
  MemEntry good{gpa, 64 * 64 * 4, 0};
  MemEntry entries[] = {good, {uint64_t{1} << 40, 4096, 0}};
  EXPECT_EQ(guest_->AttachEntries(2, entries), kUnspec);
  EXPECT_EQ(guest_->device().backings_held(), 0u);
  EXPECT_EQ(guest_->AttachEntries(2, {&good, 1}), kOk);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(guest_->AttachEntries(2, {&good, 1}), kUnspec);
  EXPECT_EQ(guest_->device().backings_held(), 1u);
}

// CVE-2017-9060: flip SET_SCANOUT between resources many times.
TEST_F(HostileGuestTest, Cve2017_9060_ScanoutFlipLoopKeepsNothingBehind) {
  ASSERT_TRUE(guest_->MakeScanoutResource(2, 128, 128).ok());
  ASSERT_TRUE(guest_->MakeScanoutResource(3, 128, 128).ok());
  guest_->sink().keep_frames = false;
  uint64_t memory = guest_->device().host_memory_used();
  for (int i = 0; i < 20000; ++i) {
    ASSERT_EQ(guest_->SetScanout(0, 2 + (i % 2), Rect{0, 0, 128, 128}), kOk);
  }
  EXPECT_EQ(guest_->device().host_memory_used(), memory);
  ASSERT_EQ(guest_->Unref(2), kOk);
  ASSERT_EQ(guest_->Unref(3), kOk);
  EXPECT_EQ(guest_->device().host_memory_used(), 0u);
}

// CVE-2016-9845 / 9908 / 10028 / 2021-3545 / 3546: capset commands on a 2D
// device answer ERR_UNSPEC with a bare header; nothing else is written.
TEST_F(HostileGuestTest, CapsetCommandsAreRejectedWithoutLeakingMemory) {
  wire::GetCapsetInfo info{Hdr(wire::kCmdGetCapsetInfo), 0, 0};
  auto response = guest_->Submit(Bytes(info), {}, 40);
  ASSERT_TRUE(response.ok());
  ASSERT_EQ(response->size(), sizeof(wire::CtrlHdr));
  wire::CtrlHdr hdr;
  std::memcpy(&hdr, response->data(), sizeof(hdr));
  EXPECT_EQ(hdr.type, kUnspec);
  wire::GetCapset capset{Hdr(wire::kCmdGetCapset), 1, 0};
  EXPECT_EQ(*guest_->SubmitForType(Bytes(capset), {}, 4096), kUnspec);
}

// CVE-2016-9846: repeated UPDATE_CURSOR with changing resources.
TEST_F(HostileGuestTest, Cve2016_9846_CursorUpdateLoop) {
  guest_->sink().keep_frames = false;
  for (uint32_t id = 2; id < 6; ++id) {
    ASSERT_EQ(guest_->Create2d(id, 64, 64, wire::kFormatB8G8R8A8), kOk);
    uint64_t gpa;
    ASSERT_EQ(guest_->AttachNewBacking(id, 64 * 64 * 4, &gpa), kOk);
  }
  for (int i = 0; i < 2000; ++i) {
    wire::UpdateCursor cursor{};
    cursor.hdr = Hdr(wire::kCmdUpdateCursor);
    cursor.resource_id = 2 + (i % 4);
    ASSERT_TRUE(guest_->SubmitCursor(cursor).ok());
    guest_->sink().cursors.clear();
  }
  ExpectAlive();
}

// CVE-2024-3446: descriptors pointing outside guest RAM (device MMIO) are
// never dereferenced; the chain still gets a reply.
TEST_F(HostileGuestTest, Cve2024_3446_BufferOutsideRamGetsErrorReply) {
  uint64_t cmd_gpa = *guest_->Alloc(64);
  uint64_t resp_gpa = *guest_->Alloc(64);
  wire::CtrlHdr hdr = Hdr(wire::kCmdGetDisplayInfo);
  ASSERT_TRUE(guest_->WriteGuest(cmd_gpa, Bytes(hdr)).ok());
  virtio::GuestBuffer out[] = {{cmd_gpa, 24}, {0xFEE00000ull, 64}};
  virtio::GuestBuffer in[] = {{resp_gpa, 24}};
  ASSERT_TRUE(guest_->control().Add(out, in).ok());
  ASSERT_TRUE(guest_->device()
                  .ProcessQueue(kControlQueue, guest_->control_device_queue())
                  .ok());
  auto used = guest_->control().PopUsed();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->written, 24u);
  wire::CtrlHdr reply;
  ASSERT_TRUE(
      guest_
          ->ReadGuest(resp_gpa,
                      absl::MakeSpan(reinterpret_cast<uint8_t*>(&reply), 24))
          .ok());
  EXPECT_EQ(reply.type, kUnspec);
  EXPECT_EQ(guest_->device().stats().bad_chains + 1, 1u);
  ExpectAlive();
}

// CVE-2019-18389 / 18391 / 2022-0135: transfer offsets near 2^32 and 2^64,
// edge boxes, backing shorter than the box, 32-bit wrapping strides.
TEST_F(HostileGuestTest, TransferOffsetsAndBoxesAreBoundsChecked) {
  ASSERT_EQ(guest_->Create2d(2, 256, 256), kOk);
  uint64_t gpa;
  ASSERT_EQ(guest_->AttachNewBacking(2, 256 * 256 * 4, &gpa, 3), kOk);
  EXPECT_EQ(guest_->Transfer(2, Rect{0, 0, 256, 256}, 0), kOk);
  EXPECT_EQ(guest_->Transfer(2, Rect{255, 255, 1, 1}, 256 * 256 * 4 - 4), kOk);
  EXPECT_EQ(guest_->Transfer(2, Rect{0, 0, 16, 16}, 0xFFFFFFF0ull),
            kBadParameter);
  EXPECT_EQ(guest_->Transfer(2, Rect{0, 0, 16, 16}, ~0ull - 8), kBadParameter);
  EXPECT_EQ(guest_->Transfer(2, Rect{0, 0, 16, 16}, (1ull << 32) + 16),
            kBadParameter);
  EXPECT_EQ(guest_->Transfer(2, Rect{0, 1, 256, 256}, 0), kBadParameter);
  EXPECT_EQ(guest_->Transfer(2, Rect{0, 0, 256, 2}, 256 * 255 * 4),
            kBadParameter);
  // Backing shorter than the box: safe error, nothing copied.
  ASSERT_EQ(guest_->Create2d(3, 256, 256), kOk);
  ASSERT_EQ(guest_->AttachNewBacking(3, 4096, &gpa), kOk);
  uint64_t before = guest_->device().stats().transfer_bytes_copied;
  EXPECT_EQ(guest_->Transfer(3, Rect{0, 0, 256, 256}, 0), kBadParameter);
  EXPECT_EQ(guest_->device().stats().transfer_bytes_copied, before);
  ExpectAlive();
}

// CVE-2022-0175: host copies start zeroed; no uninitialised memory reaches
// viewers.
TEST_F(HostileGuestTest, Cve2022_0175_NewResourcesReadAsZero) {
  ASSERT_TRUE(guest_->MakeScanoutResource(2, 200, 100).ok());
  FramePtr frame = guest_->device().LastFrame(0);
  std::vector<uint8_t> pixels(200 * 100 * 4, 0xAB);
  frame->ReadPixels(PixelRect{0, 0, 200, 100}, pixels.data(), 200 * 4);
  EXPECT_EQ(std::count(pixels.begin(), pixels.end(), 0),
            static_cast<long>(pixels.size()));
  // Partially written tiles are zero outside the write, too.
  uint64_t gpa = *guest_->Alloc(0);
  (void)gpa;
}

// 3D commands and MAP/UNMAP_BLOB: rejected cleanly (libkrun PR #790 offsets
// included).
TEST_F(HostileGuestTest, ThreeDimensionalAndMapCommandsAreUnspec) {
  for (uint32_t type : {0x0200u, 0x0201u, 0x0202u, 0x0203u, 0x0204u, 0x0205u,
                        0x0206u, 0x0207u}) {
    std::vector<uint8_t> cmd(96, 0);
    wire::CtrlHdr hdr = Hdr(type);
    std::memcpy(cmd.data(), &hdr, sizeof(hdr));
    EXPECT_EQ(*guest_->SubmitForType(cmd), kUnspec) << type;
  }
  struct MapBlob {
    wire::CtrlHdr hdr;
    uint32_t resource_id, padding;
    uint64_t offset;
  } map{Hdr(wire::kCmdResourceMapBlob), 2, 0, ~0ull - 4095};
  EXPECT_EQ(*guest_->SubmitForType(Bytes(map), {}, 32), kUnspec);
  wire::ResourceUnref unmap{Hdr(wire::kCmdResourceUnmapBlob), 2, 0};
  EXPECT_EQ(*guest_->SubmitForType(Bytes(unmap)), kUnspec);
  EXPECT_EQ(*guest_->SubmitForType(Bytes(Hdr(0))), kUnspec);
  EXPECT_EQ(*guest_->SubmitForType(Bytes(Hdr(0xDEAD))), kUnspec);
  ExpectAlive();
}

// [QEMU-2026] (a): CREATE_2D whose size overflows 32 bits, and budget limits.
TEST_F(HostileGuestTest, HugeResourcesGetOutOfMemory) {
  EXPECT_EQ(guest_->Create2d(2, 0x40000000, 4), kOom);
  EXPECT_EQ(guest_->Create2d(2, 0xFFFFFFFF, 0xFFFFFFFF), kOom);
  EXPECT_EQ(guest_->Create2d(2, 1, 0x10000000),
            kOom);  // tall and thin: tiles counted
  EXPECT_EQ(guest_->Create2d(2, 8192, 8192),
            kOom);  // exactly 256 MiB: strict <
  EXPECT_EQ(guest_->Create2d(2, 0, 16), kBadParameter);
  EXPECT_EQ(guest_->device().host_memory_used(), 0u);
  EXPECT_EQ(guest_->Create2d(2, 4096, 4096), kOk);  // 64 MiB fits
}

TEST_F(HostileGuestTest, ResourceCountBudget) {
  SimulatedGuestOptions options;
  options.device.max_resources = 4;
  Make(options);
  for (uint32_t id = 1; id <= 4; ++id)
    ASSERT_EQ(guest_->Create2d(id, 16, 16), kOk);
  EXPECT_EQ(guest_->Create2d(5, 16, 16), kOom);
  EXPECT_EQ(guest_->CreateBlob(5, 4096, {}), kOom);
  ASSERT_EQ(guest_->Unref(1), kOk);
  EXPECT_EQ(guest_->Create2d(5, 16, 16), kOk);
}

// [QEMU-2026] (b): SET_SCANOUT_BLOB stride below width, offsets overflowing.
TEST_F(HostileGuestTest, ScanoutBlobGeometryIsChecked) {
  uint64_t size = 1920 * 1080 * 4;
  uint64_t gpa = *guest_->Alloc(size);
  MemEntry entry{gpa, static_cast<uint32_t>(size), 0};
  ASSERT_EQ(guest_->CreateBlob(5, size, {&entry, 1}), kOk);
  Rect full{0, 0, 1920, 1080};
  EXPECT_EQ(guest_->SetScanoutBlob(0, 5, 1920, 1080, 4, 0, full),
            kBadParameter);
  EXPECT_EQ(
      guest_->SetScanoutBlob(0, 5, 1920, 1080, 1920 * 4, 0xFFFFFFFF, full),
      kBadParameter);
  EXPECT_EQ(guest_->SetScanoutBlob(0, 5, 1920, 1080, 0xFFFFFFFF, 0, full),
            kBadParameter);
  EXPECT_EQ(guest_->SetScanoutBlob(0, 5, 1920, 1080, 1920 * 4, 4, full),
            kBadParameter);
  EXPECT_EQ(guest_->SetScanoutBlob(0, 5, 1920, 1080, 1920 * 4, 0, full, 5),
            kBadParameter);
  EXPECT_EQ(guest_->SetScanoutBlob(0, 5, 1920, 1080, 1920 * 4, 0,
                                   Rect{0, 0, 15, 1080}),
            kBadParameter);
  EXPECT_EQ(guest_->SetScanoutBlob(0, 5, 1920, 1080, 1920 * 4, 0, full), kOk);
  EXPECT_EQ(guest_->SetScanoutBlob(0, 2, 1920, 1080, 1920 * 4, 0, full),
            kBadResource);
}

// [QEMU-2026] (c): headers of 0..23 bytes and bodies shorter than their struct.
TEST_F(HostileGuestTest, TruncatedCommandsGetInvalidParameterAndNeverStall) {
  wire::ResourceCreate2d create{Hdr(wire::kCmdResourceCreate2d), 2,
                                wire::kFormatB8G8R8X8, 64, 64};
  auto bytes = Bytes(create);
  for (size_t length = 1; length < sizeof(create); ++length) {
    auto type = guest_->SubmitForType(bytes.subspan(0, length));
    ASSERT_TRUE(type.ok());
    EXPECT_EQ(*type, kBadParameter) << length;
  }
  EXPECT_EQ(guest_->device().resource_count(), 0u);
  wire::SetScanoutBlob blob{};
  blob.hdr = Hdr(wire::kCmdSetScanoutBlob);
  EXPECT_EQ(*guest_->SubmitForType(Bytes(blob).subspan(0, 95)), kBadParameter);
  ExpectAlive();
}

TEST_F(HostileGuestTest, ZeroLengthCommandChainGetsAReply) {
  uint64_t resp = *guest_->Alloc(64);
  virtio::GuestBuffer in[] = {{resp, 24}};
  ASSERT_TRUE(guest_->control().Add({}, in).ok());
  ASSERT_TRUE(guest_->device()
                  .ProcessQueue(kControlQueue, guest_->control_device_queue())
                  .ok());
  auto used = guest_->control().PopUsed();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->written, 24u);
}

TEST_F(HostileGuestTest, ResourceIdZeroOnEveryCommand) {
  EXPECT_EQ(guest_->Create2d(0, 64, 64), kBadResource);
  EXPECT_EQ(guest_->CreateBlob(0, 4096, {}), kBadResource);
  EXPECT_EQ(guest_->Unref(0), kBadResource);
  EXPECT_EQ(guest_->Detach(0), kBadResource);
  EXPECT_EQ(guest_->Transfer(0, Rect{0, 0, 1, 1}, 0), kBadResource);
  EXPECT_EQ(guest_->Flush(0, Rect{0, 0, 1, 1}), kBadResource);
  MemEntry entry{*guest_->Alloc(4096), 4096, 0};
  EXPECT_EQ(guest_->AttachEntries(0, {&entry, 1}), kBadResource);
  EXPECT_EQ(guest_->SetScanout(0, 0, Rect{}), kOk);  // 0 = disable
  EXPECT_EQ(guest_->SetScanoutBlob(0, 0, 0, 0, 0, 0, Rect{}), kOk);
}

TEST_F(HostileGuestTest, DuplicateCreatesAreRejected) {
  ASSERT_EQ(guest_->Create2d(2, 64, 64), kOk);
  EXPECT_EQ(guest_->Create2d(2, 64, 64), kBadResource);
  EXPECT_EQ(guest_->CreateBlob(2, 4096, {}),
            kBadResource);  // 2D-then-blob clash
  ASSERT_EQ(guest_->CreateBlob(3, 4096, {}), kOk);
  EXPECT_EQ(guest_->CreateBlob(3, 4096, {}), kBadResource);
  EXPECT_EQ(guest_->Create2d(3, 64, 64), kBadResource);
}

TEST_F(HostileGuestTest, EveryRectTermIsCheckedIncludingWraps) {
  ASSERT_EQ(guest_->Create2d(2, 100, 100), kOk);
  uint64_t gpa;
  ASSERT_EQ(guest_->AttachNewBacking(2, 100 * 100 * 4, &gpa), kOk);
  const Rect bad[] = {{101, 0, 0, 0},           {0, 101, 0, 0},
                      {0, 0, 101, 1},           {0, 0, 1, 101},
                      {50, 0, 51, 1},           {0, 50, 1, 51},
                      {0xFFFFFFF0, 0, 0x20, 1}, {0, 0xFFFFFFF0, 1, 0x20}};
  for (const Rect& r : bad) {
    EXPECT_EQ(guest_->Transfer(2, r, 0), kBadParameter) << r.x << "," << r.y;
    EXPECT_EQ(guest_->Flush(2, r), kBadParameter);
    EXPECT_EQ(guest_->SetScanout(0, 2, r), kBadParameter);
  }
  EXPECT_EQ(guest_->SetScanout(0, 2, Rect{0, 0, 15, 100}), kBadParameter);
  EXPECT_EQ(guest_->SetScanout(0, 2, Rect{0, 0, 100, 15}), kBadParameter);
  EXPECT_EQ(guest_->SetScanout(0, 2, Rect{84, 84, 16, 16}), kOk);
}

TEST_F(HostileGuestTest, BackingEntryCountLimits) {
  ASSERT_EQ(guest_->Create2d(2, 64, 64), kOk);
  EXPECT_EQ(guest_->AttachEntries(2, {}),
            kOk);  // nr_entries 0: an empty backing
  EXPECT_EQ(guest_->Transfer(2, Rect{0, 0, 1, 1}, 0), kBadParameter);
  ASSERT_EQ(guest_->Detach(2), kOk);
  uint64_t page = *guest_->Alloc(4096);
  std::vector<MemEntry> entries(16384, MemEntry{page, 16, 0});
  EXPECT_EQ(guest_->AttachEntries(2, entries), kOk);
  ASSERT_EQ(guest_->Detach(2), kOk);
  entries.push_back(entries.back());
  EXPECT_EQ(guest_->AttachEntries(2, entries), kBadParameter);
  // nr_entries claims more than the command carries.
  wire::ResourceAttachBacking lying{Hdr(wire::kCmdResourceAttachBacking), 2,
                                    0xFFFFFFFF};
  EXPECT_EQ(*guest_->SubmitForType(Bytes(lying)), kBadParameter);
  lying.nr_entries = 4;
  EXPECT_EQ(*guest_->SubmitForType(Bytes(lying), Bytes(entries[0])), kUnspec);
  EXPECT_EQ(guest_->device().backings_held(), 0u);
}

TEST_F(HostileGuestTest, MemEntriesOutsideRamOrWrappingOrEmpty) {
  ASSERT_EQ(guest_->Create2d(2, 64, 64), kOk);
  MemEntry outside{uint64_t{1} << 40, 4096, 0};
  EXPECT_EQ(guest_->AttachEntries(2, {&outside, 1}), kUnspec);
  MemEntry wrapping{~0ull - 100, 4096, 0};
  EXPECT_EQ(guest_->AttachEntries(2, {&wrapping, 1}), kUnspec);
  MemEntry empty{*guest_->Alloc(4096), 0, 0};
  EXPECT_EQ(guest_->AttachEntries(2, {&empty, 1}), kOk);
}

TEST_F(HostileGuestTest, EntriesSplitAcrossDescriptors) {
  ASSERT_EQ(guest_->Create2d(2, 64, 64), kOk);
  uint64_t gpa = *guest_->Alloc(64 * 64 * 4);
  MemEntry entries[] = {{gpa, 8192, 0}, {gpa + 8192, 8192, 0}};
  // Command, then the entry array cut mid-entry across two descriptors.
  wire::ResourceAttachBacking cmd{Hdr(wire::kCmdResourceAttachBacking), 2, 2};
  uint64_t cmd_gpa = *guest_->Alloc(64), a = *guest_->Alloc(64),
           b = *guest_->Alloc(64), resp = *guest_->Alloc(64);
  ASSERT_TRUE(guest_->WriteGuest(cmd_gpa, Bytes(cmd)).ok());
  auto entry_bytes =
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(entries), 32);
  ASSERT_TRUE(guest_->WriteGuest(a, entry_bytes.subspan(0, 20)).ok());
  ASSERT_TRUE(guest_->WriteGuest(b, entry_bytes.subspan(20)).ok());
  virtio::GuestBuffer out[] = {{cmd_gpa, sizeof(cmd)}, {a, 20}, {b, 12}};
  virtio::GuestBuffer in[] = {{resp, 24}};
  ASSERT_TRUE(guest_->control().Add(out, in, true).ok());
  ASSERT_TRUE(guest_->device()
                  .ProcessQueue(kControlQueue, guest_->control_device_queue())
                  .ok());
  ASSERT_TRUE(guest_->control().PopUsed().has_value());
  wire::CtrlHdr reply;
  ASSERT_TRUE(guest_
                  ->ReadGuest(resp, absl::MakeSpan(
                                        reinterpret_cast<uint8_t*>(&reply), 24))
                  .ok());
  EXPECT_EQ(reply.type, kOk);
  EXPECT_EQ(guest_->Transfer(2, Rect{0, 0, 64, 64}, 0), kOk);
}

TEST_F(HostileGuestTest, ResponseBufferSmallerThanTheResponse) {
  auto response = guest_->Submit(Bytes(Hdr(wire::kCmdGetDisplayInfo)), {}, 30);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->size(), 30u);
  auto none = guest_->Submit(Bytes(Hdr(wire::kCmdGetDisplayInfo)), {}, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->size(), 0u);
  ExpectAlive();
}

TEST_F(HostileGuestTest, FlushOfResourceOnNoScanoutIsOk) {
  ASSERT_EQ(guest_->Create2d(2, 64, 64), kOk);
  EXPECT_EQ(guest_->Flush(2, Rect{0, 0, 64, 64}), kOk);
  EXPECT_TRUE(guest_->sink().frames.empty());
}

TEST_F(HostileGuestTest, UnrefOfMirroredResourceDisablesBothScanouts) {
  SimulatedGuestOptions options;
  options.device.displays = {{640, 480, true}, {640, 480, true}};
  Make(options);
  ASSERT_TRUE(guest_->MakeScanoutResource(2, 640, 480, 0).ok());
  ASSERT_EQ(guest_->SetScanout(1, 2, Rect{0, 0, 640, 480}), kOk);
  ASSERT_EQ(guest_->Unref(2), kOk);
  EXPECT_EQ(guest_->device().LastFrame(0), nullptr);
  EXPECT_EQ(guest_->device().LastFrame(1), nullptr);
  EXPECT_EQ(guest_->Flush(2, Rect{0, 0, 1, 1}), kBadResource);
  EXPECT_EQ(guest_->device().host_memory_used(), 0u);
}

TEST_F(HostileGuestTest, DetachThenUseTheResource) {
  ASSERT_TRUE(guest_->MakeScanoutResource(2, 64, 64).ok());
  ASSERT_EQ(guest_->Detach(2), kOk);
  EXPECT_EQ(guest_->device().backings_held(), 0u);
  EXPECT_EQ(guest_->Transfer(2, Rect{0, 0, 64, 64}, 0), kUnspec);
  EXPECT_EQ(guest_->SetScanout(0, 2, Rect{0, 0, 32, 32}), kUnspec);
  EXPECT_EQ(guest_->Flush(2, Rect{0, 0, 64, 64}),
            kOk);  // host copy still shown
  EXPECT_NE(guest_->device().LastFrame(0), nullptr);
  EXPECT_EQ(guest_->Detach(2), kUnspec);
}

// The F_SHARED rule: DETACH of a shared resource on an active scanout drops
// every page reference; the scanout keeps its last frame; nothing dangles.
TEST_F(HostileGuestTest, DetachOfScannedOutBlobKeepsLastFrame) {
  uint64_t size = 64 * 64 * 4;
  uint64_t gpa = *guest_->Alloc(size);
  ASSERT_TRUE(guest_->WriteGuest(gpa, std::vector<uint8_t>(size, 0x5A)).ok());
  MemEntry entry{gpa, static_cast<uint32_t>(size), 0};
  ASSERT_EQ(guest_->CreateBlob(5, size, {&entry, 1}), kOk);
  ASSERT_EQ(guest_->SetScanoutBlob(0, 5, 64, 64, 256, 0, Rect{0, 0, 64, 64}),
            kOk);
  ASSERT_EQ(guest_->Flush(5, Rect{0, 0, 64, 64}), kOk);
  ASSERT_EQ(guest_->Detach(5), kOk);
  EXPECT_EQ(guest_->device().backings_held(), 0u);
  ASSERT_TRUE(guest_->WriteGuest(gpa, std::vector<uint8_t>(size, 0x11)).ok());
  EXPECT_EQ(guest_->Flush(5, Rect{0, 0, 64, 64}), kOk);
  EXPECT_EQ(guest_->device().LastFrame(0)->PixelAt(3, 3), 0x5A5A5A5Au);
  // Re-attach brings the pages back.
  ASSERT_EQ(guest_->AttachEntries(5, {&entry, 1}), kOk);
  ASSERT_EQ(guest_->Flush(5, Rect{0, 0, 64, 64}), kOk);
  EXPECT_EQ(guest_->device().LastFrame(0)->PixelAt(3, 3), 0x11111111u);
}

TEST_F(HostileGuestTest, BlobSizeAgainstItsBacking) {
  uint64_t gpa = *guest_->Alloc(8192);
  MemEntry entry{gpa, 4096, 0};
  EXPECT_EQ(guest_->CreateBlob(5, 8192, {&entry, 1}),
            kBadParameter);  // size > Σ lengths
  EXPECT_EQ(guest_->CreateBlob(5, 0, {&entry, 1}), kBadParameter);
  ASSERT_EQ(guest_->CreateBlob(5, 8192, {}),
            kOk);  // nr_entries 0, attach later
  EXPECT_EQ(guest_->AttachEntries(5, {&entry, 1}), kBadParameter);
  MemEntry whole{gpa, 8192, 0};
  EXPECT_EQ(guest_->AttachEntries(5, {&whole, 1}), kOk);
  EXPECT_EQ(guest_->device().backings_held(), 1u);
  wire::ResourceCreateBlob host3d{};
  host3d.hdr = Hdr(wire::kCmdResourceCreateBlob);
  host3d.resource_id = 6;
  host3d.blob_mem = 2;
  host3d.size = 4096;
  EXPECT_EQ(*guest_->SubmitForType(Bytes(host3d)), kBadParameter);
}

TEST_F(HostileGuestTest, BlobCommandsNeedTheFeature) {
  SimulatedGuestOptions options;
  options.driver_features = 1ull << wire::kFeatureEdid;
  Make(options);
  EXPECT_EQ(guest_->CreateBlob(5, 4096, {}), kBadParameter);
  EXPECT_EQ(guest_->SetScanoutBlob(0, 5, 64, 64, 256, 0, Rect{0, 0, 64, 64}),
            kBadParameter);
}

TEST_F(HostileGuestTest, CursorResourceNot64x64KeepsPreviousImage) {
  ASSERT_EQ(guest_->Create2d(7, 32, 32), kOk);
  wire::UpdateCursor cursor{};
  cursor.hdr = Hdr(wire::kCmdUpdateCursor);
  cursor.resource_id = 7;
  ASSERT_TRUE(guest_->SubmitCursor(cursor).ok());
  ASSERT_EQ(guest_->sink().cursors.size(), 1u);
  EXPECT_EQ(guest_->sink().cursors[0].image, nullptr);
  cursor.resource_id = 99;  // unknown resource
  ASSERT_TRUE(guest_->SubmitCursor(cursor).ok());
  EXPECT_EQ(guest_->device().stats().cursor_ignored, 2u);
}

TEST_F(HostileGuestTest, CorruptQueueNeedsResetAndProcessLives) {
  uint64_t gpa = *guest_->Alloc(64);
  virtio::GuestBuffer out[] = {{gpa, 24}};
  ASSERT_TRUE(guest_->control().Add(out, {}).ok());
  guest_->control().PublishAvailIndex(
      static_cast<uint16_t>(guest_->control().avail_index() + 1000));
  EXPECT_FALSE(guest_->device()
                   .ProcessQueue(kControlQueue, guest_->control_device_queue())
                   .ok());
  EXPECT_TRUE(guest_->device().needs_reset());
  EXPECT_FALSE(guest_->device()
                   .ProcessQueue(kControlQueue, guest_->control_device_queue())
                   .ok());
  guest_->device().Reset();
  EXPECT_FALSE(guest_->device().needs_reset());
}

}  // namespace
}  // namespace vgpu::gpu
