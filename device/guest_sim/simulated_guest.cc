#include "device/guest_sim/simulated_guest.h"

#include <cstring>

#include "absl/strings/str_cat.h"

#include "common/status_macros.h"

namespace vgpu::guest_sim {

using gpu::wire::CtrlHdr;
using gpu::wire::MemEntry;
using gpu::wire::Rect;

namespace {
constexpr uint64_t kHighBase = 4ull << 30;
}

CtrlHdr Hdr(uint32_t type, uint32_t flags, uint64_t fence_id) {
  CtrlHdr hdr{};
  hdr.type = type;
  hdr.flags = flags;
  hdr.fence_id = fence_id;
  return hdr;
}

SimulatedGuest::SimulatedGuest(SimulatedGuestOptions options)
    : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<SimulatedGuest>>
SimulatedGuest::CreateMemoryAndRings(SimulatedGuestOptions options) {
  std::unique_ptr<SimulatedGuest> guest(new SimulatedGuest(std::move(options)));
  const SimulatedGuestOptions& o = guest->options_;
  VGPU_ASSIGN_OR_RETURN(auto mapping, virtio::MemoryMapping::CreateMemfd(
                                          o.ram_bytes, "guest-ram"));
  std::vector<virtio::GuestRegion> regions;
  uint64_t low_size = o.two_regions ? o.ram_bytes / 2 : o.ram_bytes;
  regions.push_back({.guest_phys_addr = 0,
                     .size = low_size,
                     .mapping = mapping,
                     .mapping_offset = 0,
                     .user_addr = 0x7f0000000000});
  if (o.two_regions) {
    regions.push_back({.guest_phys_addr = kHighBase,
                       .size = o.ram_bytes - low_size,
                       .mapping = mapping,
                       .mapping_offset = low_size,
                       .user_addr = 0x7f0000000000 + low_size});
    guest->high_base_ = kHighBase;
    guest->high_allocator_ =
        virtio::GuestAllocator(kHighBase, o.ram_bytes - low_size);
  }
  VGPU_ASSIGN_OR_RETURN(guest->memory_,
                        virtio::GuestMemory::Create(std::move(regions)));
  // Leave page 0 unused so address 0 is never a valid allocation.
  guest->allocator_ = virtio::GuestAllocator(4096, low_size - 4096);
  // One indirect table per descriptor: a whole ring of chains can be in flight.
  uint32_t tables = o.indirect ? o.queue_size : 0;
  VGPU_ASSIGN_OR_RETURN(
      guest->control_driver_,
      virtio::DriverQueue::Create(guest->memory_, guest->allocator_,
                                  o.queue_size, o.event_idx, tables));
  VGPU_ASSIGN_OR_RETURN(
      guest->cursor_driver_,
      virtio::DriverQueue::Create(guest->memory_, guest->allocator_, 16,
                                  o.event_idx, 0));
  VGPU_ASSIGN_OR_RETURN(guest->scratch_gpa_,
                        guest->allocator_.Allocate(kScratchBytes, 4096));
  return guest;
}

absl::StatusOr<std::unique_ptr<SimulatedGuest>>
SimulatedGuest::CreateDriverOnly(SimulatedGuestOptions options) {
  return CreateMemoryAndRings(std::move(options));
}

absl::StatusOr<std::unique_ptr<SimulatedGuest>> SimulatedGuest::Create(
    SimulatedGuestOptions options) {
  VGPU_ASSIGN_OR_RETURN(std::unique_ptr<SimulatedGuest> guest,
                        CreateMemoryAndRings(std::move(options)));
  VGPU_ASSIGN_OR_RETURN(
      guest->device_,
      gpu::GpuDevice::Create(guest->options_.device, &guest->sink_));
  guest->device_->SetGuestMemory(guest->memory_);
  guest->device_->SetDriverFeatures(guest->options_.driver_features);
  auto make_device_queue = [&](virtio::DriverQueue& driver)
      -> absl::StatusOr<std::unique_ptr<virtio::SplitVirtqueue>> {
    const virtio::DriverQueueLayout& l = driver.layout();
    VGPU_ASSIGN_OR_RETURN(
        auto desc, guest->memory_->Translate(
                       l.desc_gpa, virtio::DescTableBytes(driver.size())));
    VGPU_ASSIGN_OR_RETURN(
        auto avail, guest->memory_->Translate(
                        l.avail_gpa, virtio::AvailRingBytes(driver.size())));
    VGPU_ASSIGN_OR_RETURN(
        auto used, guest->memory_->Translate(
                       l.used_gpa, virtio::UsedRingBytes(driver.size())));
    return virtio::SplitVirtqueue::Create(driver.size(), desc, avail, used,
                                          guest->options_.event_idx,
                                          guest->options_.indirect);
  };
  VGPU_ASSIGN_OR_RETURN(guest->control_queue_,
                        make_device_queue(*guest->control_driver_));
  VGPU_ASSIGN_OR_RETURN(guest->cursor_queue_,
                        make_device_queue(*guest->cursor_driver_));
  return guest;
}

absl::StatusOr<uint64_t> SimulatedGuest::Alloc(uint64_t size,
                                               uint64_t alignment, bool high) {
  if (high) {
    if (!options_.two_regions)
      return absl::FailedPreconditionError("no high region");
    return high_allocator_.Allocate(size, alignment);
  }
  return allocator_.Allocate(size, alignment);
}

absl::Status SimulatedGuest::WriteGuest(uint64_t gpa,
                                        absl::Span<const uint8_t> bytes) {
  return memory_->Write(gpa, bytes);
}

absl::Status SimulatedGuest::ReadGuest(uint64_t gpa, absl::Span<uint8_t> out) {
  return memory_->Read(gpa, out);
}

absl::Status SimulatedGuest::Process(uint32_t queue_index) {
  if (link_) {
    virtio::DriverQueue& driver =
        queue_index == gpu::kControlQueue ? *control_driver_ : *cursor_driver_;
    driver.RequestInterrupt();
    return link_(queue_index, driver);
  }
  virtio::SplitVirtqueue& queue =
      queue_index == gpu::kControlQueue ? *control_queue_ : *cursor_queue_;
  absl::StatusOr<bool> notify = device_->ProcessQueue(queue_index, queue);
  return notify.status();
}

absl::StatusOr<std::vector<uint8_t>> SimulatedGuest::Submit(
    absl::Span<const uint8_t> command, absl::Span<const uint8_t> payload,
    uint32_t response_size) {
  if (command.size() + payload.size() + response_size + 64 > kScratchBytes) {
    return absl::InvalidArgumentError("command too large for the scratch area");
  }
  uint64_t command_gpa = scratch_gpa_;
  uint64_t payload_gpa = command_gpa + ((command.size() + 15) & ~uint64_t{15});
  uint64_t response_gpa = payload_gpa + ((payload.size() + 15) & ~uint64_t{15});
  VGPU_RETURN_IF_ERROR(memory_->Write(command_gpa, command));
  if (!payload.empty())
    VGPU_RETURN_IF_ERROR(memory_->Write(payload_gpa, payload));
  std::vector<uint8_t> poison(response_size, 0xAB);
  VGPU_RETURN_IF_ERROR(memory_->Write(response_gpa, poison));
  std::vector<virtio::GuestBuffer> readable = {
      {command_gpa, static_cast<uint32_t>(command.size())}};
  if (!payload.empty())
    readable.push_back({payload_gpa, static_cast<uint32_t>(payload.size())});
  std::vector<virtio::GuestBuffer> writable;
  if (response_size > 0) writable.push_back({response_gpa, response_size});
  VGPU_ASSIGN_OR_RETURN(uint16_t head, control_driver_->Add(readable, writable,
                                                            options_.indirect));
  VGPU_RETURN_IF_ERROR(Process(gpu::kControlQueue));
  std::optional<virtio::UsedEntry> used = control_driver_->PopUsed();
  if (!used) return absl::InternalError("the device returned no used entry");
  if (used->head != head) {
    return absl::InternalError(
        absl::StrCat("used head ", used->head, " != posted ", head));
  }
  if (used->written > response_size) {
    return absl::InternalError(
        absl::StrCat("device claims ", used->written, " bytes written"));
  }
  std::vector<uint8_t> response(used->written);
  VGPU_RETURN_IF_ERROR(memory_->Read(response_gpa, absl::MakeSpan(response)));
  return response;
}

absl::Status SimulatedGuest::Present(uint32_t id,
                                     absl::Span<const gpu::wire::Rect> rects,
                                     uint32_t pitch, bool fenced) {
  // Each rect takes two chains; each chain a 128-byte command slot and a
  // 64-byte response slot in the scratch area.
  constexpr uint64_t kSlot = 256;
  const size_t chains_per_kick = std::min<size_t>(
      kScratchBytes / kSlot,
      options_.indirect ? options_.queue_size : options_.queue_size / 2);
  size_t next = 0;
  while (next < rects.size()) {
    size_t count = std::min(rects.size() - next, chains_per_kick / 2);
    for (size_t i = 0; i < count; ++i) {
      const Rect& r = rects[next + i];
      gpu::wire::TransferToHost2d transfer{
          Hdr(gpu::wire::kCmdTransferToHost2d), r,
          uint64_t{r.y} * pitch + uint64_t{r.x} * 4, id, 0};
      gpu::wire::ResourceFlush flush{
          Hdr(gpu::wire::kCmdResourceFlush, fenced ? gpu::wire::kFlagFence : 0u,
              ++fence_id_),
          r, id, 0};
      uint64_t slot = scratch_gpa_ + 2 * i * kSlot;
      VGPU_RETURN_IF_ERROR(memory_->Write(slot, Bytes(transfer)));
      VGPU_RETURN_IF_ERROR(memory_->Write(slot + kSlot, Bytes(flush)));
      for (uint64_t chain = slot; chain <= slot + kSlot; chain += kSlot) {
        virtio::GuestBuffer out{chain, chain == slot
                                           ? uint32_t{sizeof(transfer)}
                                           : uint32_t{sizeof(flush)}};
        virtio::GuestBuffer in{chain + 128, sizeof(CtrlHdr)};
        VGPU_RETURN_IF_ERROR(
            control_driver_->Add({&out, 1}, {&in, 1}, options_.indirect)
                .status());
      }
    }
    size_t reaped = 0;
    while (reaped < 2 * count) {
      VGPU_RETURN_IF_ERROR(Process(gpu::kControlQueue));
      while (control_driver_->PopUsed()) ++reaped;
    }
    for (size_t i = 0; i < 2 * count; ++i) {
      CtrlHdr reply;
      VGPU_RETURN_IF_ERROR(memory_->Read(
          scratch_gpa_ + i * kSlot + 128,
          absl::MakeSpan(reinterpret_cast<uint8_t*>(&reply), sizeof(reply))));
      if (reply.type != gpu::wire::kRespOkNodata) {
        return absl::InternalError(
            absl::StrCat(i % 2 ? "RESOURCE_FLUSH" : "TRANSFER_TO_HOST_2D",
                         " answered 0x", absl::Hex(reply.type)));
      }
    }
    next += count;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> SimulatedGuest::SubmitForType(
    absl::Span<const uint8_t> command, absl::Span<const uint8_t> payload,
    uint32_t response_size) {
  VGPU_ASSIGN_OR_RETURN(std::vector<uint8_t> response,
                        Submit(command, payload, response_size));
  if (response.size() < sizeof(CtrlHdr)) return 0u;
  CtrlHdr hdr;
  std::memcpy(&hdr, response.data(), sizeof(hdr));
  return hdr.type;
}

absl::Status SimulatedGuest::SubmitCursor(
    const gpu::wire::UpdateCursor& command) {
  uint64_t gpa = scratch_gpa_ + kScratchBytes - 4096;
  VGPU_RETURN_IF_ERROR(memory_->Write(gpa, Bytes(command)));
  virtio::GuestBuffer buffer{gpa, sizeof(command)};
  VGPU_ASSIGN_OR_RETURN(uint16_t head, cursor_driver_->Add({&buffer, 1}, {}));
  VGPU_RETURN_IF_ERROR(Process(gpu::kCursorQueue));
  std::optional<virtio::UsedEntry> used = cursor_driver_->PopUsed();
  if (!used || used->head != head || used->written != 0) {
    return absl::InternalError("cursor chain not returned with length 0");
  }
  return absl::OkStatus();
}

namespace {
uint32_t TypeOr(absl::StatusOr<uint32_t> type) { return type.ok() ? *type : 0; }
}  // namespace

uint32_t SimulatedGuest::Create2d(uint32_t id, uint32_t width, uint32_t height,
                                  uint32_t format) {
  gpu::wire::ResourceCreate2d cmd{Hdr(gpu::wire::kCmdResourceCreate2d), id,
                                  format, width, height};
  return TypeOr(SubmitForType(Bytes(cmd)));
}

uint32_t SimulatedGuest::AttachEntries(uint32_t id,
                                       absl::Span<const MemEntry> entries) {
  gpu::wire::ResourceAttachBacking cmd{
      Hdr(gpu::wire::kCmdResourceAttachBacking), id,
      static_cast<uint32_t>(entries.size())};
  return TypeOr(SubmitForType(
      Bytes(cmd),
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(entries.data()),
                          entries.size() * sizeof(MemEntry))));
}

uint32_t SimulatedGuest::AttachNewBacking(uint32_t id, uint64_t bytes,
                                          uint64_t* gpa, uint32_t chunks) {
  // Chunks are allocated with a page gap between them, so they are truly
  // scattered in guest-physical space.
  uint64_t chunk = (bytes + chunks - 1) / chunks;
  std::vector<MemEntry> entries;
  uint64_t left = bytes;
  for (uint32_t i = 0; i < chunks && left > 0; ++i) {
    uint64_t size = std::min(chunk, left);
    absl::StatusOr<uint64_t> addr = Alloc(size + 4096, 4096);
    if (!addr.ok()) return 0;
    if (i == 0 && gpa != nullptr) *gpa = *addr;
    entries.push_back(MemEntry{*addr, static_cast<uint32_t>(size), 0});
    left -= size;
  }
  return AttachEntries(id, entries);
}

uint32_t SimulatedGuest::CreateBlob(uint32_t id, uint64_t size,
                                    absl::Span<const MemEntry> entries) {
  gpu::wire::ResourceCreateBlob cmd{};
  cmd.hdr = Hdr(gpu::wire::kCmdResourceCreateBlob);
  cmd.resource_id = id;
  cmd.blob_mem = gpu::wire::kBlobMemGuest;
  cmd.blob_flags = gpu::wire::kBlobFlagUseShareable;
  cmd.nr_entries = static_cast<uint32_t>(entries.size());
  cmd.size = size;
  return TypeOr(SubmitForType(
      Bytes(cmd),
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(entries.data()),
                          entries.size() * sizeof(MemEntry))));
}

uint32_t SimulatedGuest::SetScanout(uint32_t scanout, uint32_t id, Rect rect) {
  gpu::wire::SetScanout cmd{Hdr(gpu::wire::kCmdSetScanout), rect, scanout, id};
  return TypeOr(SubmitForType(Bytes(cmd)));
}

uint32_t SimulatedGuest::SetScanoutBlob(uint32_t scanout, uint32_t id,
                                        uint32_t width, uint32_t height,
                                        uint32_t stride, uint32_t offset,
                                        Rect rect, uint32_t format) {
  gpu::wire::SetScanoutBlob cmd{};
  cmd.hdr = Hdr(gpu::wire::kCmdSetScanoutBlob);
  cmd.r = rect;
  cmd.scanout_id = scanout;
  cmd.resource_id = id;
  cmd.width = width;
  cmd.height = height;
  cmd.format = format;
  cmd.strides[0] = stride;
  cmd.offsets[0] = offset;
  return TypeOr(SubmitForType(Bytes(cmd)));
}

uint32_t SimulatedGuest::Transfer(uint32_t id, Rect rect, uint64_t offset) {
  gpu::wire::TransferToHost2d cmd{Hdr(gpu::wire::kCmdTransferToHost2d), rect,
                                  offset, id, 0};
  return TypeOr(SubmitForType(Bytes(cmd)));
}

uint32_t SimulatedGuest::Flush(uint32_t id, Rect rect, bool fenced,
                               uint64_t fence_id) {
  gpu::wire::ResourceFlush cmd{
      Hdr(gpu::wire::kCmdResourceFlush, fenced ? gpu::wire::kFlagFence : 0,
          fence_id),
      rect, id, 0};
  return TypeOr(SubmitForType(Bytes(cmd)));
}

uint32_t SimulatedGuest::Unref(uint32_t id) {
  gpu::wire::ResourceUnref cmd{Hdr(gpu::wire::kCmdResourceUnref), id, 0};
  return TypeOr(SubmitForType(Bytes(cmd)));
}

uint32_t SimulatedGuest::Detach(uint32_t id) {
  gpu::wire::ResourceDetachBacking cmd{
      Hdr(gpu::wire::kCmdResourceDetachBacking), id, 0};
  return TypeOr(SubmitForType(Bytes(cmd)));
}

absl::StatusOr<uint64_t> SimulatedGuest::MakeScanoutResource(uint32_t id,
                                                             uint32_t width,
                                                             uint32_t height,
                                                             uint32_t scanout) {
  uint64_t gpa = 0;
  if (uint32_t t = Create2d(id, width, height); t != gpu::wire::kRespOkNodata) {
    return absl::InternalError(absl::StrCat("create failed: 0x", absl::Hex(t)));
  }
  if (uint32_t t = AttachNewBacking(id, uint64_t{width} * height * 4, &gpa);
      t != gpu::wire::kRespOkNodata) {
    return absl::InternalError(absl::StrCat("attach failed: 0x", absl::Hex(t)));
  }
  if (uint32_t t = SetScanout(scanout, id, Rect{0, 0, width, height});
      t != gpu::wire::kRespOkNodata) {
    return absl::InternalError(
        absl::StrCat("set scanout failed: 0x", absl::Hex(t)));
  }
  return gpa;
}

}  // namespace vgpu::guest_sim
