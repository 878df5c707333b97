// Encodes part of a frame as PNG (lossless), JPEG (TurboJPEG), raw BGRX or
// RGBX, or zstd-compressed BGRX (lossless, fast).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include "device/gpu/frame.h"

namespace vgpu::server {

// kIndexed: lossless, a palette where a rect has at most 256 colours and
// that is smaller, zstd BGRX otherwise (IMAGE_FORMAT_INDEXED).
// kAdaptive: per rect, kIndexed for few colours, kJpeg for the rest
// (EncodeCache decides; EncodeImage does not take it).
enum class ImageKind {
  kPng,
  kJpeg,
  kRawBgrx,
  kRawRgbx,
  kZstdBgrx,
  kIndexed,
  kAdaptive
};
enum class ChromaSubsampling { k420, k422, k444, kGray };

// Whether every rect of this kind is exact (kAdaptive's JPEG ones are not).
inline bool IsLossless(ImageKind kind) {
  return kind != ImageKind::kJpeg && kind != ImageKind::kAdaptive;
}

struct EncodeOptions {
  ImageKind kind = ImageKind::kPng;
  int jpeg_quality = 90;  // 1..100
  ChromaSubsampling subsampling = ChromaSubsampling::k420;
};

// Encodes `rect` of `frame` (clipped to the frame; must not end up empty).
// Thread-safe: frames are immutable.
absl::StatusOr<std::string> EncodeImage(const gpu::Frame& frame,
                                        const gpu::PixelRect& rect,
                                        const EncodeOptions& options);

// Encodes a tightly packed BGRX buffer (rows width*4 apart).
absl::StatusOr<std::string> EncodeBgrx(const uint8_t* pixels, uint32_t width,
                                       uint32_t height,
                                       const EncodeOptions& options);

}  // namespace vgpu::server
