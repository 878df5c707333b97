#include "device/guest_sim/scene_player.h"

#include <algorithm>

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
  if (options.mode_every > 0 && options.modes.empty()) {
    options.modes = {
        {800, 600}, {640, 480}, {1024, 768}, {options.width, options.height}};
  }
  // One set of framebuffer pages, large enough for every mode (Linux would
  // allocate a new dumb buffer; reusing the pages keeps guest RAM bounded).
  uint64_t bytes = uint64_t{options.width} * options.height * 4;
  for (const auto& [w, h] : options.modes)
    bytes = std::max(bytes, uint64_t{w} * h * 4);
  VGPU_ASSIGN_OR_RETURN(demo->framebuffer_gpa_, guest->Alloc(bytes));
  // The scene draws straight into the guest's framebuffer pages, as a guest
  // program drawing into its mmap()ed framebuffer does.
  VGPU_ASSIGN_OR_RETURN(
      absl::Span<uint8_t> framebuffer,
      guest->memory_ptr()->Translate(demo->framebuffer_gpa_, bytes));
  demo->pixels_ = reinterpret_cast<uint32_t*>(framebuffer.data());
  demo->options_ = std::move(options);
  VGPU_RETURN_IF_ERROR(demo->ShowFramebuffer(
      kFramebufferId, demo->options_.width, demo->options_.height));
  return demo;
}

absl::Status ScenePlayer::ShowFramebuffer(uint32_t id, uint32_t width,
                                          uint32_t height) {
  const uint64_t bytes = uint64_t{width} * height * 4;
  gpu::wire::MemEntry entry{framebuffer_gpa_, static_cast<uint32_t>(bytes), 0};
  const gpu::wire::Rect all{0, 0, width, height};
  if (options_.use_blob) {
    if (guest_->CreateBlob(id, bytes, {&entry, 1}) !=
            gpu::wire::kRespOkNodata ||
        guest_->SetScanoutBlob(0, id, width, height, width * 4, 0, all) !=
            gpu::wire::kRespOkNodata) {
      return absl::FailedPreconditionError(
          "the device refused a blob framebuffer (RESOURCE_BLOB not offered?)");
    }
  } else if (guest_->Create2d(id, width, height) != gpu::wire::kRespOkNodata ||
             guest_->AttachEntries(id, {&entry, 1}) !=
                 gpu::wire::kRespOkNodata ||
             guest_->SetScanout(0, id, all) != gpu::wire::kRespOkNodata) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the device refused a ", width, "x", height, " framebuffer"));
  }
  framebuffer_id_ = id;
  width_ = width;
  height_ = height;
  return absl::OkStatus();
}

absl::Status ScenePlayer::ChangeMode(uint32_t width, uint32_t height) {
  VGPU_ASSIGN_OR_RETURN(scene_, MakeScene(options_.scene, width, height));
  const uint32_t old_id = framebuffer_id_;
  // Linux: a new buffer, a modeset to it, a flush of all of it, then the
  // old buffer goes.
  VGPU_RETURN_IF_ERROR(ShowFramebuffer(
      old_id == kFramebufferId ? kFramebufferId + 8 : kFramebufferId, width,
      height));
  std::vector<Damage> damage;
  scene_->Render(0, pixels_, &damage);
  const gpu::wire::Rect all{0, 0, width, height};
  VGPU_RETURN_IF_ERROR(guest_->Present(framebuffer_id_, {&all, 1}, width * 4,
                                       /*fenced=*/options_.use_blob));
  if (guest_->Unref(old_id) != gpu::wire::kRespOkNodata)
    return absl::InternalError("the old framebuffer could not be released");
  return absl::OkStatus();
}

absl::Status ScenePlayer::Tick(uint64_t index) {
  index_ = index;
  if (options_.mode_every > 0 && !options_.modes.empty() && index > 0 &&
      index % options_.mode_every == 0) {
    const auto& [w, h] = options_.modes[modes_shown_++ % options_.modes.size()];
    VGPU_RETURN_IF_ERROR(ChangeMode(w, h));
  }
  std::vector<Damage> damage;
  scene_->Render(index, pixels_, &damage);
  VGPU_RETURN_IF_ERROR(Present(damage));
  std::optional<CursorPoint> cursor = scene_->CursorAt(index);
  if (cursor) VGPU_RETURN_IF_ERROR(ShowCursor(*cursor));
  return absl::OkStatus();
}

absl::Status ScenePlayer::Input(absl::Span<const input::InputEvent> packet) {
  std::vector<Damage> damage;
  for (const input::InputEvent& event : packet)
    scene_->Input(event, pixels_, &damage);
  if (!damage.empty()) VGPU_RETURN_IF_ERROR(Present(damage));
  std::optional<CursorPoint> cursor = scene_->CursorAt(index_);
  if (cursor &&
      (!cursor_ || cursor->x != cursor_->x || cursor->y != cursor_->y)) {
    VGPU_RETURN_IF_ERROR(ShowCursor(*cursor));
  }
  return absl::OkStatus();
}

absl::Status ScenePlayer::Present(const std::vector<Damage>& damage) {
  std::vector<gpu::wire::Rect> rects;
  rects.reserve(damage.size());
  for (const Damage& d : damage) {
    rects.push_back({d.x, d.y, d.width, d.height});
    damage_pixels_ += uint64_t{d.width} * d.height;
  }
  // One kick per update, as the Linux driver batches it.
  return guest_->Present(framebuffer_id_, rects, width_ * 4,
                         /*fenced=*/options_.use_blob);
}

absl::Status ScenePlayer::ShowCursor(const CursorPoint& at) {
  gpu::wire::UpdateCursor command{};
  command.pos = {0, at.x, at.y, 0};
  command.resource_id = kCursorId;
  if (!cursor_shown_) {
    if (guest_->Create2d(kCursorId, 64, 64, gpu::wire::kFormatB8G8R8A8) !=
        gpu::wire::kRespOkNodata) {
      return absl::InternalError("cursor resource could not be created");
    }
    uint64_t gpa = 0;
    guest_->AttachNewBacking(kCursorId, uint64_t{64} * 64 * 4, &gpa);
    std::vector<uint32_t> arrow = CursorArrow();
    VGPU_RETURN_IF_ERROR(guest_->WriteGuest(
        gpa, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(arrow.data()),
                                 arrow.size() * 4)));
    guest_->Transfer(kCursorId, gpu::wire::Rect{0, 0, 64, 64}, 0);
    command.hdr = guest_sim::Hdr(gpu::wire::kCmdUpdateCursor);
    cursor_shown_ = true;
  } else {
    command.hdr = guest_sim::Hdr(gpu::wire::kCmdMoveCursor);
  }
  VGPU_RETURN_IF_ERROR(guest_->SubmitCursor(command));
  cursor_ = at;
  return absl::OkStatus();
}

}  // namespace vgpu::synth
