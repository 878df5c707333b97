#include "device/gpu/pixel_copy.h"

#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cstring>

#include "common/checked_math.h"
#include "device/gpu/wire.h"

namespace vgpu::gpu {
namespace {

// Copies this many bytes or more per call with non-temporal stores: a
// frame that large would only evict the cache (as glibc's memcpy does for
// copies beyond its own threshold).
constexpr uint64_t kStreamingThreshold = 2ull << 20;

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
  uint64_t written = 0;
  // Rows that are not one host range (or need converting) are gathered
  // here a tile at a time, then compared like any other source.
  // (Left uninitialised: only rows written here are read.)
  __attribute__((uninitialized, aligned(64))) uint8_t staging[kTileBytes];
  __attribute__((uninitialized)) const uint8_t* row_ptrs[kTileSize];
  __attribute__((uninitialized)) const uint8_t* tile_rows[kTileSize];
  const bool streaming = uint64_t{dest.width} * dest.height * kBytesPerPixel >=
                         kStreamingThreshold;

  for (uint32_t tile_row = first_row; tile_row <= last_row; ++tile_row) {
    const uint32_t row_top = tile_row * kTileSize;
    const uint32_t y0 = std::max(dest.y, row_top);
    const uint32_t y1 = std::min(dest.y + dest.height, row_top + kTileSize);
    // Fast path: every source row of this tile row is one host range, read
    // in place.
    bool rows_contiguous = identity;
    for (uint32_t y = y0; rows_contiguous && y < y1; ++y) {
      row_ptrs[y - y0] = source.backing->ContiguousAt(
          source.offset + uint64_t{y - dest.y} * source.stride,
          uint64_t{dest.width} * kBytesPerPixel);
      rows_contiguous = row_ptrs[y - y0] != nullptr;
    }
    for (uint32_t column = first_column; column <= last_column; ++column) {
      const uint32_t col_left = column * kTileSize;
      const uint32_t x0 = std::max(dest.x, col_left);
      const uint32_t x1 = std::min(dest.x + dest.width, col_left + kTileSize);
      const uint32_t bytes = (x1 - x0) * kBytesPerPixel;
      const size_t src_x = size_t{x0 - dest.x} * kBytesPerPixel;
      for (uint32_t y = y0; y < y1; ++y) {
        if (rows_contiguous) {
          tile_rows[y - y0] = row_ptrs[y - y0] + src_x;
          continue;
        }
        uint8_t* staged = staging + size_t{y - y0} * kTileStride;
        const uint64_t src =
            source.offset + uint64_t{y - dest.y} * source.stride + src_x;
        if (identity) {
          uint8_t* out = staged;
          source.backing->ForEachPiece(src, bytes,
                                       [&out](const uint8_t* p, uint64_t n) {
                                         std::memcpy(out, p, n);
                                         out += n;
                                       });
          // (The caller checked the range; never pass on stale stack bytes.)
          std::memset(out, 0, static_cast<size_t>(staged + bytes - out));
        } else {
          uint8_t converted[kTileStride];
          const uint64_t got =
              source.backing->CopyOut(src, absl::MakeSpan(converted, bytes));
          std::memset(converted + got, 0, bytes - got);
          ConvertToCanonical(source.format, converted, staged, x1 - x0);
        }
        tile_rows[y - y0] = staged;
      }
      written += grid.UpdateTile(
          column, tile_row,
          PixelRect{x0 - col_left, y0 - row_top, x1 - x0, y1 - y0}, tile_rows,
          streaming, stats);
    }
  }
#if defined(__SSE2__)
  if (streaming) _mm_sfence();  // order the streaming stores before publishing
#endif
  return written;
}

}  // namespace vgpu::gpu
