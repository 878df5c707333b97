#include "device/gpu/pixel_copy.h"

#include <algorithm>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "common/checked_math.h"
#include "device/gpu/wire.h"

namespace vgpu::gpu {
namespace {

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

void ConvertToCanonical(uint32_t format, const uint8_t* in, uint8_t* out, uint32_t pixels) {
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

std::optional<uint64_t> SourceEnd(const GuestPixels& source, uint32_t width, uint32_t height) {
  if (width == 0 || height == 0) return source.offset;
  auto rows_before_last = CheckedMul64(source.stride, height - 1);
  auto last_row_bytes = CheckedMul64(width, kBytesPerPixel);
  if (!rows_before_last || !last_row_bytes) return std::nullopt;
  auto last_row_start = CheckedAdd64(source.offset, *rows_before_last);
  if (!last_row_start) return std::nullopt;
  return CheckedAdd64(*last_row_start, *last_row_bytes);
}

uint64_t CopyIntoGrid(const GuestPixels& source, const PixelRect& dest, TileGrid& grid,
                      GridStats* stats) {
  if (dest.empty()) return 0;
  const bool identity = SwizzleFor(source.format) == Swizzle::kNone;
  const uint32_t first_column = dest.x / kTileSize;
  const uint32_t last_column = (dest.x + dest.width - 1) / kTileSize;
  const uint32_t first_row = dest.y / kTileSize;
  const uint32_t last_row = (dest.y + dest.height - 1) / kTileSize;
  absl::InlinedVector<uint8_t*, 64> tiles(last_column - first_column + 1);
  uint64_t copied = 0;
  uint8_t staging[kTileStride];

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
      const uint32_t tile_right = std::min(col_left + kTileSize, grid.width());
      bool overwrite_all = x0 == col_left && x1 == tile_right && y0 == row_top && y1 == tile_bottom;
      tiles[column - first_column] = grid.MutableTile(column, tile_row, overwrite_all, stats);
    }
    for (uint32_t y = y0; y < y1; ++y) {
      const uint64_t row_offset = source.offset + uint64_t{y - dest.y} * source.stride;
      const size_t in_tile_row = size_t{y - row_top} * kTileStride;
      for (uint32_t column = first_column; column <= last_column; ++column) {
        const uint32_t col_left = column * kTileSize;
        const uint32_t x0 = std::max(dest.x, col_left);
        const uint32_t x1 = std::min(dest.x + dest.width, col_left + kTileSize);
        const uint64_t src = row_offset + uint64_t{x0 - dest.x} * kBytesPerPixel;
        const uint32_t bytes = (x1 - x0) * kBytesPerPixel;
        uint8_t* dst = tiles[column - first_column] + in_tile_row + (x0 - col_left) * kBytesPerPixel;
        if (identity) {
          copied += source.backing->ForEachPiece(src, bytes, [&dst](const uint8_t* p, uint64_t n) {
            std::memcpy(dst, p, n);
            dst += n;
          });
        } else {
          copied += source.backing->CopyOut(src, absl::MakeSpan(staging, bytes));
          ConvertToCanonical(source.format, staging, dst, x1 - x0);
        }
      }
    }
  }
  return copied;
}

}  // namespace vgpu::gpu
