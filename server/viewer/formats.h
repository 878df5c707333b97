// The display API's formats and scanout messages, mapped onto the encoder
// and the frame store: what every part of the service (screenshots, viewer
// streams) needs to agree on. No gRPC here, only the protobuf messages.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vgpu/display/v1/display.pb.h"

#include "server/encode/image_encoder.h"
#include "server/frame_store.h"

namespace vgpu::server {

// An image format with quality 1..100 (0 means 90) and a JPEG subsampling,
// as encoder options. INVALID_ARGUMENT for values the API does not know.
absl::StatusOr<EncodeOptions> ToEncodeOptions(
    vgpu::display::v1::ImageFormat format, uint32_t quality,
    vgpu::display::v1::JpegSubsampling subsampling);

// The `encoding` label of metrics: png, jpeg, raw, raw_rgbx, zstd,
// indexed, adaptive.
const char* EncodingName(vgpu::display::v1::ImageFormat format);

// The API format of rects encoded as `kind`.
vgpu::display::v1::ImageFormat FormatOf(ImageKind kind);

// UNSPECIFIED means PNG.
vgpu::display::v1::ImageFormat Normalized(
    vgpu::display::v1::ImageFormat format);

// The first of `formats` the server supports for which `accept` holds;
// UNSPECIFIED entries are skipped.
std::optional<vgpu::display::v1::ImageFormat> FirstSupported(
    const google::protobuf::RepeatedField<int>& formats,
    const std::function<bool(const EncodeOptions&)>& accept);

// A scanout's id, mode and frame sequence as the API reports them.
void FillScanout(uint32_t id, const ScanoutState& state,
                 vgpu::display::v1::Scanout* out);

// Whether two modes show the same thing to a viewer (disabled modes are all
// alike).
bool SameMode(const std::optional<gpu::ScanoutMode>& a,
              const std::optional<gpu::ScanoutMode>& b);

// How a viewer of a lossy stream re-sends regions once they settle.
struct LosslessRefresh {
  absl::Duration after = absl::ZeroDuration();  // zero: off
  EncodeOptions encode;
  vgpu::display::v1::ImageFormat format =
      vgpu::display::v1::IMAGE_FORMAT_UNSPECIFIED;
};

// Refresh settings for a stream encoded with `encode`: on for lossy
// streams unless `disabled`, `after_ms` (0 means 300, at most 60000) after
// the last lossy send, in `format` (which must be lossless).
absl::StatusOr<LosslessRefresh> ChooseRefresh(
    const EncodeOptions& encode, uint32_t after_ms, bool disabled,
    vgpu::display::v1::ImageFormat format);

inline int64_t UnixNanos(absl::Time time) { return absl::ToUnixNanos(time); }

}  // namespace vgpu::server
