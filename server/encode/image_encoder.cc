#include "server/encode/image_encoder.h"

#include <jpeglib.h>
#include <png.h>
#include <zstd.h>

#include <algorithm>
#include <csetjmp>
#include <cstdlib>
#include <cstring>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include <turbojpeg.h>

#include "common/indexed_codec.h"
#include "common/pixel_order.h"
#include "common/status_macros.h"

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
    for (size_t x = 0; x < width; ++x) {
      row[x * 3] = src[x * 4 + 2];
      row[x * 3 + 1] = src[x * 4 + 1];
      row[x * 3 + 2] = src[x * 4];
    }
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  // Appends over-allocate, and the cache may keep this for long: an exact
  // copy (cheap beside the encoding).
  return std::string(out.data(), out.size());
}

int TurboJpegSubsampling(ChromaSubsampling subsampling) {
  switch (subsampling) {
    case ChromaSubsampling::k420:
      return TJSAMP_420;
    case ChromaSubsampling::k422:
      return TJSAMP_422;
    case ChromaSubsampling::k444:
      return TJSAMP_444;
    case ChromaSubsampling::kGray:
      return TJSAMP_GRAY;
  }
  return TJSAMP_420;
}

struct JpegError {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
};

// Points rows[0..count) at the image rows [y, y + count), count <= 64.
using JpegRowSource =
    absl::FunctionRef<void(uint32_t y, uint32_t count, JSAMPROW* rows)>;

// The one JPEG encoder (libjpeg-turbo, the settings of tjCompress2 with
// TJFLAG_FASTDCT), fed 64 rows at a time: the first strip has
// `first_strip_rows` rows (so a caller can end strips on tile boundaries).
absl::StatusOr<std::string> EncodeJpeg(uint32_t width, uint32_t height,
                                       int quality,
                                       ChromaSubsampling subsampling,
                                       uint32_t first_strip_rows,
                                       JpegRowSource source) {
  if (quality < 1 || quality > 100)
    return absl::InvalidArgumentError("JPEG quality must be 1..100");
  constexpr uint32_t kStripRows = gpu::kTileSize;
  jpeg_compress_struct cinfo{};
  JpegError error{};
  cinfo.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = [](j_common_ptr info) {
    std::longjmp(reinterpret_cast<JpegError*>(info->err)->jump, 1);
  };
  // A worst-case sized output buffer per thread: libjpeg never has to grow
  // (and copy) it. If it did, it would hand back a buffer of its own.
  thread_local std::vector<unsigned char> output;
  output.resize(tjBufSize(static_cast<int>(width), static_cast<int>(height),
                          TurboJpegSubsampling(subsampling)));
  unsigned char* buffer = output.data();
  unsigned long size = output.size();
  auto release = [&buffer] {
    if (buffer != output.data()) std::free(buffer);
  };
  if (setjmp(error.jump)) {
    jpeg_destroy_compress(&cinfo);
    release();
    return absl::InternalError("JPEG encoding failed");
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = 4;
  cinfo.in_color_space = JCS_EXT_BGRX;
  jpeg_set_defaults(&cinfo);  // YCbCr 4:2:0
  if (subsampling == ChromaSubsampling::kGray) {
    jpeg_set_colorspace(&cinfo, JCS_GRAYSCALE);
  } else {
    // Luma's factors against chroma's 1x1: 2x2 is 4:2:0, 2x1 4:2:2.
    cinfo.comp_info[0].h_samp_factor =
        subsampling == ChromaSubsampling::k444 ? 1 : 2;
    cinfo.comp_info[0].v_samp_factor =
        subsampling == ChromaSubsampling::k420 ? 2 : 1;
  }
  jpeg_set_quality(&cinfo, quality, TRUE);
  cinfo.dct_method = JDCT_IFAST;
  jpeg_start_compress(&cinfo, TRUE);
  JSAMPROW rows[kStripRows];
  uint32_t count = std::clamp<uint32_t>(first_strip_rows, 1, kStripRows);
  for (uint32_t y = 0; y < height; y += count, count = kStripRows) {
    count = std::min(count, height - y);
    source(y, count, rows);
    jpeg_write_scanlines(&cinfo, rows, count);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buffer), size);
  release();
  return out;
}

// JPEG straight from a frame's tiles: rows are staged one tile row (64) at
// a time in a buffer that stays in cache, instead of copying the whole rect
// out first. Strips end on tile boundaries, so each reads every tile once.
absl::StatusOr<std::string> EncodeJpegFromFrame(const gpu::Frame& frame,
                                                const gpu::PixelRect& rect,
                                                const EncodeOptions& options) {
  thread_local std::vector<uint8_t> strip;
  strip.resize(size_t{rect.width} * 4 * gpu::kTileSize);
  return EncodeJpeg(
      rect.width, rect.height, options.jpeg_quality, options.subsampling,
      gpu::kTileSize - (frame.origin_y() + rect.y) % gpu::kTileSize,
      [&](uint32_t y, uint32_t count, JSAMPROW* rows) {
        frame.ReadPixels({rect.x, rect.y + y, rect.width, count}, strip.data(),
                         size_t{rect.width} * 4);
        for (uint32_t i = 0; i < count; ++i)
          rows[i] = strip.data() + size_t{i} * rect.width * 4;
      });
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
      return EncodeJpeg(width, height, options.jpeg_quality,
                        options.subsampling, gpu::kTileSize,
                        [&](uint32_t y, uint32_t count, JSAMPROW* rows) {
                          for (uint32_t i = 0; i < count; ++i) {
                            // libjpeg only reads input rows.
                            rows[i] = const_cast<uint8_t*>(pixels) +
                                      size_t{y + i} * width * 4;
                          }
                        });
    case ImageKind::kRawBgrx:
      return std::string(reinterpret_cast<const char*>(pixels),
                         size_t{width} * height * 4);
    case ImageKind::kRawRgbx: {
      std::string out(reinterpret_cast<const char*>(pixels),
                      size_t{width} * height * 4);
      SwapRedAndBlue(reinterpret_cast<uint8_t*>(out.data()),
                     size_t{width} * height);
      return out;
    }
    case ImageKind::kZstdBgrx: {
      std::string out;
      VGPU_RETURN_IF_ERROR(
          AppendZstd(pixels, size_t{width} * height * 4, &out));
      return out;
    }
    case ImageKind::kIndexed:
      return EncodeIndexed(pixels, width, height);
    case ImageKind::kAdaptive:
      return absl::InvalidArgumentError(
          "adaptive encoding is chosen per rect, for streams");
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
  if (options.kind == ImageKind::kJpeg)
    return EncodeJpegFromFrame(frame, clipped, options);
  // One staging buffer per thread, grown as needed: no allocation (and no
  // page faults) per encode.
  thread_local std::vector<uint8_t> pixels;
  size_t bytes = size_t{clipped.width} * clipped.height * 4;
  if (pixels.size() < bytes) pixels.resize(bytes);
  frame.ReadPixels(clipped, pixels.data(), size_t{clipped.width} * 4);
  return EncodeBgrx(pixels.data(), clipped.width, clipped.height, options);
}

}  // namespace vgpu::server
