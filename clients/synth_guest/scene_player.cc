#include "clients/synth_guest/scene_player.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace vgpu::synth {
namespace {

constexpr uint32_t kFramebufferId = 2;  // Linux's first resource id
constexpr uint32_t kCursorId = 3;

}  // namespace

absl::StatusOr<std::unique_ptr<ScenePlayer>> ScenePlayer::Create(ScenePlayerOptions options,
                                                             guest_sim::SimulatedGuest* guest) {
  std::unique_ptr<ScenePlayer> demo(new ScenePlayer());
  VGPU_ASSIGN_OR_RETURN(demo->scene_, MakeScene(options.scene, options.width, options.height));
  demo->guest_ = guest;
  VGPU_ASSIGN_OR_RETURN(demo->framebuffer_gpa_,
                        demo->guest_->MakeScanoutResource(kFramebufferId, options.width,
                                                          options.height));
  demo->pixels_.assign(size_t{options.width} * options.height, 0);
  demo->options_ = std::move(options);
  return demo;
}

absl::Status ScenePlayer::Tick(uint64_t index) {
  std::vector<Damage> damage;
  scene_->Render(index, pixels_.data(), &damage);
  const uint32_t width = options_.width;
  for (const Damage& d : damage) {
    // The guest's writes land in its own RAM, row by row...
    for (uint32_t y = d.y; y < d.y + d.height; ++y) {
      size_t first = size_t{y} * width + d.x;
      VGPU_RETURN_IF_ERROR(guest_->WriteGuest(
          framebuffer_gpa_ + first * 4,
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&pixels_[first]), d.width * 4)));
    }
    // ...then the driver tells the device, as Linux does for a dirty rect.
    gpu::wire::Rect rect{d.x, d.y, d.width, d.height};
    uint64_t offset = (uint64_t{d.y} * width + d.x) * 4;
    if (uint32_t t = guest_->Transfer(kFramebufferId, rect, offset); t != gpu::wire::kRespOkNodata) {
      return absl::InternalError(absl::StrCat("TRANSFER_TO_HOST_2D answered 0x", absl::Hex(t)));
    }
    if (uint32_t t = guest_->Flush(kFramebufferId, rect); t != gpu::wire::kRespOkNodata) {
      return absl::InternalError(absl::StrCat("RESOURCE_FLUSH answered 0x", absl::Hex(t)));
    }
    damage_pixels_ += uint64_t{d.width} * d.height;
  }
  std::optional<CursorPoint> cursor = scene_->CursorAt(index);
  if (cursor) {
    gpu::wire::UpdateCursor command{};
    command.pos = {0, cursor->x, cursor->y, 0};
    command.resource_id = kCursorId;
    if (!cursor_shown_) {
      if (guest_->Create2d(kCursorId, 64, 64, gpu::wire::kFormatB8G8R8A8) != gpu::wire::kRespOkNodata) {
        return absl::InternalError("cursor resource could not be created");
      }
      uint64_t gpa = 0;
      guest_->AttachNewBacking(kCursorId, 64 * 64 * 4, &gpa);
      std::vector<uint32_t> arrow = CursorArrow();
      VGPU_RETURN_IF_ERROR(guest_->WriteGuest(
          gpa, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(arrow.data()), arrow.size() * 4)));
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
