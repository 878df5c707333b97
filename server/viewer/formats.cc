#include "server/viewer/formats.h"

#include "absl/strings/str_cat.h"

namespace vgpu::server {

namespace pb = vgpu::display::v1;

absl::StatusOr<EncodeOptions> ToEncodeOptions(pb::ImageFormat format,
                                              uint32_t quality,
                                              pb::JpegSubsampling subsampling) {
  EncodeOptions options;
  switch (format) {
    case pb::IMAGE_FORMAT_UNSPECIFIED:
    case pb::IMAGE_FORMAT_PNG:
      options.kind = ImageKind::kPng;
      break;
    case pb::IMAGE_FORMAT_JPEG:
      options.kind = ImageKind::kJpeg;
      break;
    case pb::IMAGE_FORMAT_RAW_BGRX:
      options.kind = ImageKind::kRawBgrx;
      break;
    case pb::IMAGE_FORMAT_RAW_RGBX:
      options.kind = ImageKind::kRawRgbx;
      break;
    case pb::IMAGE_FORMAT_ZSTD_BGRX:
      options.kind = ImageKind::kZstdBgrx;
      break;
    case pb::IMAGE_FORMAT_INDEXED:
      options.kind = ImageKind::kIndexed;
      break;
    case pb::IMAGE_FORMAT_ADAPTIVE:
      options.kind = ImageKind::kAdaptive;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown image format ", format));
  }
  if (quality > 100)
    return absl::InvalidArgumentError("jpeg_quality must be 0..100");
  options.jpeg_quality = quality == 0 ? 90 : static_cast<int>(quality);
  switch (subsampling) {
    case pb::JPEG_SUBSAMPLING_UNSPECIFIED:
    case pb::JPEG_SUBSAMPLING_420:
      options.subsampling = ChromaSubsampling::k420;
      break;
    case pb::JPEG_SUBSAMPLING_422:
      options.subsampling = ChromaSubsampling::k422;
      break;
    case pb::JPEG_SUBSAMPLING_444:
      options.subsampling = ChromaSubsampling::k444;
      break;
    case pb::JPEG_SUBSAMPLING_GRAY:
      options.subsampling = ChromaSubsampling::kGray;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown jpeg_subsampling ", subsampling));
  }
  return options;
}

const char* EncodingName(pb::ImageFormat format) {
  switch (format) {
    case pb::IMAGE_FORMAT_UNSPECIFIED:
    case pb::IMAGE_FORMAT_PNG:
      return "png";
    case pb::IMAGE_FORMAT_JPEG:
      return "jpeg";
    case pb::IMAGE_FORMAT_RAW_BGRX:
      return "raw";
    case pb::IMAGE_FORMAT_RAW_RGBX:
      return "raw_rgbx";
    case pb::IMAGE_FORMAT_ZSTD_BGRX:
      return "zstd";
    case pb::IMAGE_FORMAT_INDEXED:
      return "indexed";
    case pb::IMAGE_FORMAT_ADAPTIVE:
      return "adaptive";
    default:
      return "unknown";
  }
}

pb::ImageFormat FormatOf(ImageKind kind) {
  switch (kind) {
    case ImageKind::kPng:
      return pb::IMAGE_FORMAT_PNG;
    case ImageKind::kJpeg:
      return pb::IMAGE_FORMAT_JPEG;
    case ImageKind::kRawBgrx:
      return pb::IMAGE_FORMAT_RAW_BGRX;
    case ImageKind::kRawRgbx:
      return pb::IMAGE_FORMAT_RAW_RGBX;
    case ImageKind::kZstdBgrx:
      return pb::IMAGE_FORMAT_ZSTD_BGRX;
    case ImageKind::kIndexed:
      return pb::IMAGE_FORMAT_INDEXED;
    case ImageKind::kAdaptive:
      return pb::IMAGE_FORMAT_ADAPTIVE;
  }
  return pb::IMAGE_FORMAT_UNSPECIFIED;
}

pb::ImageFormat Normalized(pb::ImageFormat format) {
  return format == pb::IMAGE_FORMAT_UNSPECIFIED ? pb::IMAGE_FORMAT_PNG : format;
}

std::optional<pb::ImageFormat> FirstSupported(
    const google::protobuf::RepeatedField<int>& formats,
    const std::function<bool(const EncodeOptions&)>& accept) {
  for (int listed : formats) {
    auto format = static_cast<pb::ImageFormat>(listed);
    if (format == pb::IMAGE_FORMAT_UNSPECIFIED) continue;
    absl::StatusOr<EncodeOptions> options =
        ToEncodeOptions(format, 0, pb::JPEG_SUBSAMPLING_UNSPECIFIED);
    if (options.ok() && accept(*options)) return format;
  }
  return std::nullopt;
}

void FillScanout(uint32_t id, const ScanoutState& state, pb::Scanout* out) {
  out->set_id(id);
  bool enabled = state.mode && state.mode->enabled;
  out->set_enabled(enabled);
  if (enabled) {
    out->set_width(state.mode->width);
    out->set_height(state.mode->height);
  }
  out->set_frame_sequence(state.sequence);
}

bool SameMode(const std::optional<gpu::ScanoutMode>& a,
              const std::optional<gpu::ScanoutMode>& b) {
  if (!a || !b) return !a && !b;
  if (!a->enabled || !b->enabled) return a->enabled == b->enabled;
  return a->width == b->width && a->height == b->height;
}

absl::StatusOr<LosslessRefresh> ChooseRefresh(const EncodeOptions& encode,
                                              uint32_t after_ms, bool disabled,
                                              pb::ImageFormat format) {
  if (after_ms > 60000)
    return absl::InvalidArgumentError("lossless_refresh_ms must be <= 60000");
  LosslessRefresh refresh;
  if (IsLossless(encode.kind) || disabled) return refresh;
  format = Normalized(format);
  absl::StatusOr<EncodeOptions> lossless =
      ToEncodeOptions(format, 0, pb::JPEG_SUBSAMPLING_UNSPECIFIED);
  if (!lossless.ok()) return lossless.status();
  if (!IsLossless(lossless->kind))
    return absl::InvalidArgumentError("refresh_format must be lossless");
  refresh.after = absl::Milliseconds(after_ms == 0 ? 300 : after_ms);
  refresh.encode = *lossless;
  refresh.format = format;
  return refresh;
}

}  // namespace vgpu::server
