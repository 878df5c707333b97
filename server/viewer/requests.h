// The display API's requests checked and turned into plans, apart from
// gRPC: what the service's handlers do before they touch a stream, and what
// the request fuzzer drives. Every error is INVALID_ARGUMENT or NOT_FOUND
// with a message that names the field.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vgpu/display/v1/display.pb.h"

#include "server/viewer/formats.h"
#include "server/viewer/screenshot_waits.h"
#include "server/viewer/viewer_core.h"

namespace vgpu::server {

// A GetScreenshot: what to encode, and when.
struct ScreenshotPlan {
  uint32_t scanout_id = 0;
  EncodeOptions encode;
  vgpu::display::v1::ImageFormat format = vgpu::display::v1::IMAGE_FORMAT_PNG;
  bool wait = false;  // false: now
  // With `wait`: the condition. A next-flush wait is a sequence wait past
  // `current_sequence`.
  WaitCondition condition;
  absl::Duration timeout = absl::Seconds(10);
};

absl::StatusOr<ScreenshotPlan> PlanScreenshot(
    const vgpu::display::v1::GetScreenshotRequest& request,
    uint32_t num_scanouts, uint64_t current_sequence);

// The picture `plan` asks for, from `state` (FAILED_PRECONDITION when the
// scanout shows nothing, INVALID_ARGUMENT for a region outside it).
absl::StatusOr<vgpu::display::v1::Screenshot> TakeScreenshot(
    const vgpu::display::v1::GetScreenshotRequest& request,
    const ScreenshotPlan& plan, const ScanoutState& state, absl::Time now);

// A WatchFrames request as viewer settings.
absl::StatusOr<ViewerSettings> WatchSettings(
    const vgpu::display::v1::WatchFramesRequest& request, uint32_t num_scanouts,
    size_t band_bytes);

// A StreamFrames Subscribe as viewer settings (credits default to 2).
absl::StatusOr<ViewerSettings> SubscribeSettings(
    const vgpu::display::v1::Subscribe& subscribe, uint32_t num_scanouts,
    size_t band_bytes);

}  // namespace vgpu::server
