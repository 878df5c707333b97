#include "server/encode/image_encoder.h"

#include <png.h>
#include <zstd.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include <turbojpeg.h>

namespace vgpu::server {
namespace {

absl::StatusOr<std::string> EncodePng(const uint8_t* bgrx, uint32_t width,
                                      uint32_t height) {
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (png == nullptr)
    return absl::ResourceExhaustedError("png_create_write_struct failed");
  png_infop info = png_create_info_struct(png);
  std::string out;
  // libpng reports errors by longjmp; nothing below allocates C++ objects
  // that a longjmp could skip past, except `out` and `row`, which outlive it.
  std::vector<uint8_t> row(size_t{width} * 3);
  if (info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return absl::InternalError("PNG encoding failed");
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t length) {
        static_cast<std::string*>(png_get_io_ptr(p))
            ->append(reinterpret_cast<char*>(data), length);
      },
      nullptr);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, 3);  // fast; screens compress well anyway
  png_write_info(png, info);
  for (uint32_t y = 0; y < height; ++y) {
    const uint8_t* src = bgrx + size_t{y} * width * 4;
    for (uint32_t x = 0; x < width; ++x) {
      row[x * 3] = src[x * 4 + 2];
      row[x * 3 + 1] = src[x * 4 + 1];
      row[x * 3 + 2] = src[x * 4];
    }
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

absl::StatusOr<std::string> EncodeJpeg(const uint8_t* bgrx, uint32_t width,
                                       uint32_t height, int quality) {
  std::unique_ptr<void, int (*)(tjhandle)> handle(tjInitCompress(), tjDestroy);
  if (handle == nullptr)
    return absl::ResourceExhaustedError("tjInitCompress failed");
  unsigned long size =
      tjBufSize(static_cast<int>(width), static_cast<int>(height), TJSAMP_420);
  std::string out(size, '\0');
  auto* buffer = reinterpret_cast<unsigned char*>(out.data());
  if (tjCompress2(handle.get(), bgrx, static_cast<int>(width), 0,
                  static_cast<int>(height), TJPF_BGRX, &buffer, &size,
                  TJSAMP_420, quality,
                  TJFLAG_NOREALLOC | TJFLAG_FASTDCT) != 0) {
    return absl::InternalError(
        absl::StrCat("JPEG encoding failed: ", tjGetErrorStr2(handle.get())));
  }
  out.resize(size);
  return out;
}

}  // namespace

absl::StatusOr<std::string> EncodeBgrx(const uint8_t* pixels, uint32_t width,
                                       uint32_t height,
                                       const EncodeOptions& options) {
  if (width == 0 || height == 0)
    return absl::InvalidArgumentError("empty image");
  switch (options.kind) {
    case ImageKind::kPng:
      return EncodePng(pixels, width, height);
    case ImageKind::kJpeg:
      if (options.jpeg_quality < 1 || options.jpeg_quality > 100) {
        return absl::InvalidArgumentError("JPEG quality must be 1..100");
      }
      return EncodeJpeg(pixels, width, height, options.jpeg_quality);
    case ImageKind::kRawBgrx:
      return std::string(reinterpret_cast<const char*>(pixels),
                         size_t{width} * height * 4);
    case ImageKind::kZstdBgrx: {
      size_t raw = size_t{width} * height * 4;
      std::string out(ZSTD_compressBound(raw), '\0');
      size_t size = ZSTD_compress(out.data(), out.size(), pixels, raw, 1);
      if (ZSTD_isError(size)) {
        return absl::InternalError(
            absl::StrCat("zstd: ", ZSTD_getErrorName(size)));
      }
      out.resize(size);
      return out;
    }
  }
  return absl::InvalidArgumentError("unknown image kind");
}

absl::StatusOr<std::string> EncodeImage(const gpu::Frame& frame,
                                        const gpu::PixelRect& rect,
                                        const EncodeOptions& options) {
  gpu::PixelRect clipped =
      gpu::Intersect(rect, gpu::PixelRect{0, 0, frame.width(), frame.height()});
  if (clipped.empty())
    return absl::InvalidArgumentError("region is outside the scanout");
  // One staging buffer per thread, grown as needed: no allocation (and no
  // page faults) per encode.
  thread_local std::vector<uint8_t> pixels;
  size_t bytes = size_t{clipped.width} * clipped.height * 4;
  if (pixels.size() < bytes) pixels.resize(bytes);
  frame.ReadPixels(clipped, pixels.data(), size_t{clipped.width} * 4);
  return EncodeBgrx(pixels.data(), clipped.width, clipped.height, options);
}

}  // namespace vgpu::server
