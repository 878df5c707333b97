#include "clients/synth_guest/scene_player.h"

#include "absl/strings/str_cat.h"

#include "common/status_macros.h"

namespace vgpu::synth {
namespace {

constexpr uint32_t kFramebufferId = 2;  // Linux's first resource id
constexpr uint32_t kCursorId = 3;

}  // namespace

absl::StatusOr<std::unique_ptr<ScenePlayer>> ScenePlayer::Create(
    ScenePlayerOptions options, guest_sim::SimulatedGuest* guest) {
  std::unique_ptr<ScenePlayer> demo(new ScenePlayer());
  VGPU_ASSIGN_OR_RETURN(
      demo->scene_, MakeScene(options.scene, options.width, options.height));
  demo->guest_ = guest;
  // Probe, as the driver does at load time.
  gpu::wire::GetEdid get_edid{guest_sim::Hdr(gpu::wire::kCmdGetEdid), 0, 0};
  VGPU_ASSIGN_OR_RETURN(uint32_t edid_type,
                        guest->SubmitForType(guest_sim::Bytes(get_edid), {},
                                             sizeof(gpu::wire::RespEdid)));
  VGPU_ASSIGN_OR_RETURN(
      uint32_t info_type,
      guest->SubmitForType(
          guest_sim::Bytes(guest_sim::Hdr(gpu::wire::kCmdGetDisplayInfo)), {},
          sizeof(gpu::wire::RespDisplayInfo)));
  if (info_type != gpu::wire::kRespOkDisplayInfo ||
      (edid_type != gpu::wire::kRespOkEdid &&
       edid_type != gpu::wire::kRespErrUnspec)) {
    return absl::FailedPreconditionError("display probe failed");
  }
  const uint64_t bytes = uint64_t{options.width} * options.height * 4;
  if (options.use_blob) {
    VGPU_ASSIGN_OR_RETURN(demo->framebuffer_gpa_, guest->Alloc(bytes));
    gpu::wire::MemEntry entry{demo->framebuffer_gpa_,
                              static_cast<uint32_t>(bytes), 0};
    if (guest->CreateBlob(kFramebufferId, bytes, {&entry, 1}) !=
            gpu::wire::kRespOkNodata ||
        guest->SetScanoutBlob(
            0, kFramebufferId, options.width, options.height, options.width * 4,
            0, gpu::wire::Rect{0, 0, options.width, options.height}) !=
            gpu::wire::kRespOkNodata) {
      return absl::FailedPreconditionError(
          "the device refused a blob framebuffer (RESOURCE_BLOB not offered?)");
    }
  } else {
    VGPU_ASSIGN_OR_RETURN(demo->framebuffer_gpa_,
                          demo->guest_->MakeScanoutResource(
                              kFramebufferId, options.width, options.height));
  }
  // The scene draws straight into the guest's framebuffer pages, as a guest
  // program drawing into its mmap()ed framebuffer does.
  VGPU_ASSIGN_OR_RETURN(
      absl::Span<uint8_t> framebuffer,
      guest->memory_ptr()->Translate(demo->framebuffer_gpa_, bytes));
  demo->pixels_ = reinterpret_cast<uint32_t*>(framebuffer.data());
  demo->options_ = std::move(options);
  return demo;
}

absl::Status ScenePlayer::Tick(uint64_t index) {
  std::vector<Damage> damage;
  scene_->Render(index, pixels_, &damage);
  std::vector<gpu::wire::Rect> rects;
  rects.reserve(damage.size());
  for (const Damage& d : damage) {
    rects.push_back({d.x, d.y, d.width, d.height});
    damage_pixels_ += uint64_t{d.width} * d.height;
  }
  // One kick per update, as the Linux driver batches it.
  VGPU_RETURN_IF_ERROR(guest_->Present(kFramebufferId, rects,
                                       options_.width * 4,
                                       /*fenced=*/options_.use_blob));
  std::optional<CursorPoint> cursor = scene_->CursorAt(index);
  if (cursor) {
    gpu::wire::UpdateCursor command{};
    command.pos = {0, cursor->x, cursor->y, 0};
    command.resource_id = kCursorId;
    if (!cursor_shown_) {
      if (guest_->Create2d(kCursorId, 64, 64, gpu::wire::kFormatB8G8R8A8) !=
          gpu::wire::kRespOkNodata) {
        return absl::InternalError("cursor resource could not be created");
      }
      uint64_t gpa = 0;
      guest_->AttachNewBacking(kCursorId, 64 * 64 * 4, &gpa);
      std::vector<uint32_t> arrow = CursorArrow();
      VGPU_RETURN_IF_ERROR(guest_->WriteGuest(
          gpa,
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(arrow.data()),
                              arrow.size() * 4)));
      guest_->Transfer(kCursorId, gpu::wire::Rect{0, 0, 64, 64}, 0);
      command.hdr = guest_sim::Hdr(gpu::wire::kCmdUpdateCursor);
      cursor_shown_ = true;
    } else {
      command.hdr = guest_sim::Hdr(gpu::wire::kCmdMoveCursor);
    }
    VGPU_RETURN_IF_ERROR(guest_->SubmitCursor(command));
  }
  return absl::OkStatus();
}

}  // namespace vgpu::synth
