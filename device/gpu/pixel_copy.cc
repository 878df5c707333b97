#include "device/gpu/pixel_copy.h"

#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cstring>

#include "absl/container/inlined_vector.h"

#include "common/checked_math.h"
#include "device/gpu/wire.h"

namespace vgpu::gpu {
namespace {

// Copies this many bytes or more per call with non-temporal stores: a
// frame that large would only evict the cache (as glibc's memcpy does for
// copies beyond its own threshold).
constexpr uint64_t kStreamingThreshold = 2ull << 20;
constexpr uint32_t kPrefetchRows = 8;

// One whole tile row (kTileStride bytes) to a 16-byte aligned destination.
void CopyTileRowStreaming(uint8_t* dst, const uint8_t* src) {
#if defined(__SSE2__)
  for (uint32_t i = 0; i < kTileStride; i += 64) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
  }
#else
  std::memcpy(dst, src, kTileStride);
#endif
}

enum class Swizzle { kNone, kByteSwap, kSwapRedBlue, kRotate };

Swizzle SwizzleFor(uint32_t format) {
  switch (format) {
    case wire::kFormatA8R8G8B8:
    case wire::kFormatX8R8G8B8:
      return Swizzle::kByteSwap;  // A,R,G,B -> B,G,R,A
    case wire::kFormatR8G8B8A8:
    case wire::kFormatR8G8B8X8:
      return Swizzle::kSwapRedBlue;  // R,G,B,A -> B,G,R,A
    case wire::kFormatX8B8G8R8:
    case wire::kFormatA8B8G8R8:
      return Swizzle::kRotate;  // X,B,G,R -> B,G,R,X
    default:
      return Swizzle::kNone;
  }
}

}  // namespace

bool IsSupportedFormat(uint32_t format) {
  switch (format) {
    case wire::kFormatB8G8R8A8:
    case wire::kFormatB8G8R8X8:
    case wire::kFormatA8R8G8B8:
    case wire::kFormatX8R8G8B8:
    case wire::kFormatR8G8B8A8:
    case wire::kFormatX8B8G8R8:
    case wire::kFormatA8B8G8R8:
    case wire::kFormatR8G8B8X8:
      return true;
    default:
      return false;
  }
}

void ConvertToCanonical(uint32_t format, const uint8_t* in, uint8_t* out,
                        uint32_t pixels) {
  Swizzle swizzle = SwizzleFor(format);
  if (swizzle == Swizzle::kNone) {
    std::memcpy(out, in, size_t{pixels} * kBytesPerPixel);
    return;
  }
  for (uint32_t i = 0; i < pixels; ++i) {
    uint32_t v;
    std::memcpy(&v, in + size_t{i} * 4, 4);
    switch (swizzle) {
      case Swizzle::kByteSwap:
        v = __builtin_bswap32(v);
        break;
      case Swizzle::kSwapRedBlue:
        v = (v & 0xFF00FF00u) | ((v >> 16) & 0xFFu) | ((v & 0xFFu) << 16);
        break;
      case Swizzle::kRotate:
        v = (v >> 8) | (v << 24);
        break;
      case Swizzle::kNone:
        break;
    }
    std::memcpy(out + size_t{i} * 4, &v, 4);
  }
}

std::optional<uint64_t> SourceEnd(const GuestPixels& source, uint32_t width,
                                  uint32_t height) {
  if (width == 0 || height == 0) return source.offset;
  auto rows_before_last = CheckedMul64(source.stride, height - 1);
  auto last_row_bytes = CheckedMul64(width, kBytesPerPixel);
  if (!rows_before_last || !last_row_bytes) return std::nullopt;
  auto last_row_start = CheckedAdd64(source.offset, *rows_before_last);
  if (!last_row_start) return std::nullopt;
  return CheckedAdd64(*last_row_start, *last_row_bytes);
}

uint64_t CopyIntoGrid(const GuestPixels& source, const PixelRect& dest,
                      TileGrid& grid, GridStats* stats) {
  if (dest.empty()) return 0;
  const bool identity = SwizzleFor(source.format) == Swizzle::kNone;
  const uint32_t first_column = dest.x / kTileSize;
  const uint32_t last_column = (dest.x + dest.width - 1) / kTileSize;
  const uint32_t first_row = dest.y / kTileSize;
  const uint32_t last_row = (dest.y + dest.height - 1) / kTileSize;
  absl::InlinedVector<uint8_t*, 64> tiles(last_column - first_column + 1);
  uint64_t copied = 0;
  uint8_t staging[kTileStride];
  const uint8_t* row_ptrs[kTileSize];
  const bool streaming = uint64_t{dest.width} * dest.height * kBytesPerPixel >=
                         kStreamingThreshold;

  for (uint32_t tile_row = first_row; tile_row <= last_row; ++tile_row) {
    const uint32_t row_top = tile_row * kTileSize;
    const uint32_t y0 = std::max(dest.y, row_top);
    const uint32_t y1 = std::min(dest.y + dest.height, row_top + kTileSize);
    const uint32_t tile_bottom = std::min(row_top + kTileSize, grid.height());
    // Resolve each tile of this row once (copy-on-write happens here).
    for (uint32_t column = first_column; column <= last_column; ++column) {
      const uint32_t col_left = column * kTileSize;
      const uint32_t x0 = std::max(dest.x, col_left);
      const uint32_t x1 = std::min(dest.x + dest.width, col_left + kTileSize);
      // Pixels past the grid's right or bottom edge are never read, so a
      // write reaching the edge covers the tile to its end.
      const uint32_t tile_right = std::min(col_left + kTileSize, grid.width());
      const uint32_t covered_right =
          x1 == tile_right ? col_left + kTileSize : x1;
      const uint32_t covered_bottom =
          y1 == tile_bottom ? row_top + kTileSize : y1;
      PixelRect covered{x0 - col_left, y0 - row_top, covered_right - x0,
                        covered_bottom - y0};
      tiles[column - first_column] =
          grid.MutableTile(column, tile_row, covered, stats);
    }
    // Fast path: every source row of this tile row is one host range. Copy
    // tile by tile so each destination tile is written front to back.
    bool rows_contiguous = identity;
    for (uint32_t y = y0; rows_contiguous && y < y1; ++y) {
      row_ptrs[y - y0] = source.backing->ContiguousAt(
          source.offset + uint64_t{y - dest.y} * source.stride,
          uint64_t{dest.width} * kBytesPerPixel);
      rows_contiguous = row_ptrs[y - y0] != nullptr;
    }
    if (rows_contiguous) {
      for (uint32_t column = first_column; column <= last_column; ++column) {
        const uint32_t col_left = column * kTileSize;
        const uint32_t x0 = std::max(dest.x, col_left);
        const size_t bytes =
            size_t{std::min(dest.x + dest.width, col_left + kTileSize) - x0} *
            kBytesPerPixel;
        uint8_t* dst = tiles[column - first_column] +
                       size_t{y0 - row_top} * kTileStride +
                       size_t{x0 - col_left} * kBytesPerPixel;
        const size_t src_x = size_t{x0 - dest.x} * kBytesPerPixel;
        if (bytes == kTileStride && streaming) {
          for (uint32_t y = y0; y < y1; ++y, dst += kTileStride) {
            // Source rows are a stride apart: fetch a few rows ahead.
            if (y + kPrefetchRows < y1) {
              const uint8_t* ahead = row_ptrs[y + kPrefetchRows - y0] + src_x;
              for (uint32_t line = 0; line < kTileStride; line += 64) {
                __builtin_prefetch(ahead + line);
              }
            }
            CopyTileRowStreaming(dst, row_ptrs[y - y0] + src_x);
          }
        } else if (bytes == kTileStride) {
          // Whole tile rows: a fixed-size copy the compiler inlines.
          for (uint32_t y = y0; y < y1; ++y, dst += kTileStride) {
            std::memcpy(dst, row_ptrs[y - y0] + src_x, kTileStride);
          }
        } else {
          for (uint32_t y = y0; y < y1; ++y, dst += kTileStride) {
            std::memcpy(dst, row_ptrs[y - y0] + src_x, bytes);
          }
        }
      }
      copied += uint64_t{y1 - y0} * dest.width * kBytesPerPixel;
      continue;
    }
    for (uint32_t y = y0; y < y1; ++y) {
      const uint64_t row_offset =
          source.offset + uint64_t{y - dest.y} * source.stride;
      const size_t in_tile_row = size_t{y - row_top} * kTileStride;
      for (uint32_t column = first_column; column <= last_column; ++column) {
        const uint32_t col_left = column * kTileSize;
        const uint32_t x0 = std::max(dest.x, col_left);
        const uint32_t x1 = std::min(dest.x + dest.width, col_left + kTileSize);
        const uint64_t src =
            row_offset + uint64_t{x0 - dest.x} * kBytesPerPixel;
        const uint32_t bytes = (x1 - x0) * kBytesPerPixel;
        uint8_t* dst = tiles[column - first_column] + in_tile_row +
                       size_t{x0 - col_left} * kBytesPerPixel;
        if (identity) {
          copied += source.backing->ForEachPiece(
              src, bytes, [&dst](const uint8_t* p, uint64_t n) {
                std::memcpy(dst, p, n);
                dst += n;
              });
        } else {
          copied +=
              source.backing->CopyOut(src, absl::MakeSpan(staging, bytes));
          ConvertToCanonical(source.format, staging, dst, x1 - x0);
        }
      }
    }
  }
#if defined(__SSE2__)
  if (streaming) _mm_sfence();  // order the streaming stores before publishing
#endif
  return copied;
}

}  // namespace vgpu::gpu
