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
  VGPU_ASSIGN_OR_RETURN(demo->framebuffer_gpa_,
                        demo->guest_->MakeScanoutResource(
                            kFramebufferId, options.width, options.height));
  // The scene draws straight into the guest's framebuffer pages, as a guest
  // program drawing into its mmap()ed framebuffer does.
  VGPU_ASSIGN_OR_RETURN(absl::Span<uint8_t> framebuffer,
                        guest->memory_ptr()->Translate(
                            demo->framebuffer_gpa_,
                            uint64_t{options.width} * options.height * 4));
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
  VGPU_RETURN_IF_ERROR(
      guest_->Present(kFramebufferId, rects, options_.width * 4));
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
