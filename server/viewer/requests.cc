#include "server/viewer/requests.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace vgpu::server {

namespace pb = vgpu::display::v1;

namespace {

absl::Status CheckScanout(uint32_t scanout_id, uint32_t num_scanouts) {
  if (scanout_id >= num_scanouts)
    return absl::NotFoundError(absl::StrCat("no scanout ", scanout_id));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ScreenshotPlan> PlanScreenshot(
    const pb::GetScreenshotRequest& request, uint32_t num_scanouts,
    uint64_t current_sequence) {
  if (absl::Status s = CheckScanout(request.scanout_id(), num_scanouts);
      !s.ok()) {
    return s;
  }
  ScreenshotPlan plan;
  plan.scanout_id = request.scanout_id();
  absl::StatusOr<EncodeOptions> encode = ToEncodeOptions(
      request.format(), request.jpeg_quality(), request.jpeg_subsampling());
  if (!encode.ok()) return encode.status();
  if (encode->kind == ImageKind::kAdaptive) {
    return absl::InvalidArgumentError(
        "IMAGE_FORMAT_ADAPTIVE is for streams; a screenshot is one image");
  }
  plan.encode = *encode;
  plan.format = Normalized(request.format());
  plan.timeout = absl::Milliseconds(
      request.timeout_ms() == 0 ? 10000 : request.timeout_ms());
  switch (request.wait_case()) {
    case pb::GetScreenshotRequest::WAIT_NOT_SET:
      break;
    case pb::GetScreenshotRequest::kNextFlush:
      plan.wait = true;
      plan.condition.sequence = current_sequence;
      break;
    case pb::GetScreenshotRequest::kAfterSequence:
      plan.wait = true;
      plan.condition.sequence = request.after_sequence();
      break;
    case pb::GetScreenshotRequest::kStableForMs:
      plan.wait = true;
      plan.condition.kind = WaitKind::kStable;
      plan.condition.quiet = absl::Milliseconds(request.stable_for_ms());
      break;
  }
  return plan;
}

absl::StatusOr<pb::Screenshot> TakeScreenshot(
    const pb::GetScreenshotRequest& request, const ScreenshotPlan& plan,
    const ScanoutState& state, absl::Time now) {
  if (!state.frame) {
    const bool enabled = state.mode && state.mode->enabled;
    return absl::FailedPreconditionError(
        enabled ? absl::StrCat("scanout ", plan.scanout_id,
                               ": no frame of its ", state.mode->width, "x",
                               state.mode->height, " mode yet")
                : absl::StrCat("scanout ", plan.scanout_id, " shows nothing"));
  }
  gpu::PixelRect region{0, 0, state.frame->width(), state.frame->height()};
  if (request.has_region() && request.region().width() > 0 &&
      request.region().height() > 0) {
    region = gpu::Intersect(
        region, {request.region().x(), request.region().y(),
                 request.region().width(), request.region().height()});
    if (region.empty())
      return absl::InvalidArgumentError("region is outside the scanout");
  }
  absl::StatusOr<std::string> data =
      EncodeImage(*state.frame, region, plan.encode);
  if (!data.ok()) return data.status();
  pb::Screenshot shot;
  shot.set_scanout_id(plan.scanout_id);
  shot.set_width(region.width);
  shot.set_height(region.height);
  shot.set_format(plan.format);
  shot.set_data(*std::move(data));
  shot.set_frame_sequence(state.frame->sequence());
  shot.set_capture_time_unix_ns(UnixNanos(now));
  return shot;
}

absl::StatusOr<ViewerSettings> WatchSettings(
    const pb::WatchFramesRequest& request, uint32_t num_scanouts,
    size_t band_bytes) {
  if (absl::Status s = CheckScanout(request.scanout_id(), num_scanouts);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<EncodeOptions> encode = ToEncodeOptions(
      request.format(), request.jpeg_quality(), request.jpeg_subsampling());
  if (!encode.ok()) return encode.status();
  absl::StatusOr<LosslessRefresh> refresh = ChooseRefresh(
      *encode, request.lossless_refresh_ms(),
      request.disable_lossless_refresh(), request.refresh_format());
  if (!refresh.ok()) return refresh.status();
  ViewerSettings settings;
  settings.scanout_id = request.scanout_id();
  settings.encode = *encode;
  settings.format = Normalized(request.format());
  settings.max_fps = request.max_fps();
  settings.refresh = *refresh;
  settings.band_bytes = band_bytes;
  return settings;
}

absl::StatusOr<ViewerSettings> SubscribeSettings(const pb::Subscribe& subscribe,
                                                 uint32_t num_scanouts,
                                                 size_t band_bytes) {
  if (absl::Status s = CheckScanout(subscribe.scanout_id(), num_scanouts);
      !s.ok()) {
    return s;
  }
  pb::ImageFormat format = pb::IMAGE_FORMAT_PNG;
  if (!subscribe.formats().empty()) {
    std::optional<pb::ImageFormat> first = FirstSupported(
        subscribe.formats(), [](const EncodeOptions&) { return true; });
    if (!first) {
      return absl::InvalidArgumentError(
          "none of the requested formats is supported");
    }
    format = *first;
  }
  absl::StatusOr<EncodeOptions> encode = ToEncodeOptions(
      format, subscribe.jpeg_quality(), subscribe.jpeg_subsampling());
  if (!encode.ok()) return encode.status();
  // Refreshes use the first lossless format the client listed, else PNG.
  std::optional<pb::ImageFormat> refresh_format = FirstSupported(
      subscribe.formats(),
      [](const EncodeOptions& options) { return IsLossless(options.kind); });
  absl::StatusOr<LosslessRefresh> refresh =
      ChooseRefresh(*encode, subscribe.lossless_refresh_ms(),
                    subscribe.disable_lossless_refresh(),
                    refresh_format.value_or(pb::IMAGE_FORMAT_PNG));
  if (!refresh.ok()) return refresh.status();
  ViewerSettings settings;
  settings.scanout_id = subscribe.scanout_id();
  settings.encode = *encode;
  settings.format = format;
  settings.max_fps = subscribe.max_fps();
  settings.refresh = *refresh;
  settings.include_cursor = subscribe.include_cursor();
  settings.max_in_flight =
      subscribe.max_in_flight() == 0 ? 2 : subscribe.max_in_flight();
  settings.band_bytes = band_bytes;
  settings.copies = subscribe.accept_copies();
  return settings;
}

}  // namespace vgpu::server
