// Host pixels on their way out of the device: a grid of 64x64 tiles in one
// canonical format (B,G,R,A/X bytes in memory = DRM XRGB8888 on a
// little-endian host), shared structurally between frames.
//
// The device thread writes into a TileGrid; every flush publishes an
// immutable Frame that shares all untouched rows and tiles with the previous
// one. A tile is cloned only when a frame still holds it (copy-on-write), so
// readers never see a tile change. Null tiles read as zero (black).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/types/span.h"

namespace vgpu::gpu {

inline constexpr uint32_t kTileSize = 64;                       // pixels per side
inline constexpr uint32_t kBytesPerPixel = 4;
inline constexpr uint32_t kTileStride = kTileSize * kBytesPerPixel;  // bytes per tile row
inline constexpr uint32_t kTileBytes = kTileStride * kTileSize;

struct PixelRect {
  uint32_t x = 0;
  uint32_t y = 0;
  uint32_t width = 0;
  uint32_t height = 0;
  bool empty() const { return width == 0 || height == 0; }
  friend bool operator==(const PixelRect&, const PixelRect&) = default;
};

// Intersection of two rects (computed in 64 bits; empty if disjoint).
PixelRect Intersect(const PixelRect& a, const PixelRect& b);

struct Tile {
  // Unique across the process; a new version for every content change, so
  // encoders can cache per (version, profile).
  uint64_t version = 0;
  alignas(64) uint8_t pixels[kTileBytes];
};

struct TileRow {
  std::vector<std::shared_ptr<Tile>> tiles;
};

struct GridStats {
  uint64_t tiles_allocated = 0;
  uint64_t tiles_cloned = 0;       // copy-on-write of a tile a frame still held
  uint64_t clone_bytes = 0;        // bytes copied by those clones
  uint64_t rows_cloned = 0;
};

// A mutable tile grid. Thread-compatible; lives on the device thread.
class TileGrid {
 public:
  TileGrid() = default;
  TileGrid(uint32_t width, uint32_t height);

  uint32_t width() const { return width_; }
  uint32_t height() const { return height_; }
  uint32_t columns() const { return columns_; }
  uint32_t rows() const { return static_cast<uint32_t>(rows_.size()); }

  // A writable pointer to tile (column, row), cloning it (or its row) if a
  // published frame shares it. When `overwrite_all` is true the caller will
  // write every pixel, so old contents are not copied.
  uint8_t* MutableTile(uint32_t column, uint32_t row, bool overwrite_all, GridStats* stats);

  // Shares the current rows with a new immutable snapshot.
  std::vector<std::shared_ptr<const TileRow>> Snapshot() const;

 private:
  uint32_t width_ = 0;
  uint32_t height_ = 0;
  uint32_t columns_ = 0;
  std::vector<std::shared_ptr<TileRow>> rows_;
};

// An immutable picture of one scanout. Thread-safe.
class Frame {
 public:
  Frame(uint32_t width, uint32_t height, uint32_t origin_x, uint32_t origin_y,
        std::vector<std::shared_ptr<const TileRow>> rows, uint32_t grid_columns,
        uint64_t sequence);

  uint32_t width() const { return width_; }
  uint32_t height() const { return height_; }
  // Device flush counter for the scanout this frame belongs to.
  uint64_t sequence() const { return sequence_; }
  // Position of the frame's (0,0) inside the tile grid. Tile boundaries line
  // up with frame coordinates when both are multiples of kTileSize.
  uint32_t origin_x() const { return origin_x_; }
  uint32_t origin_y() const { return origin_y_; }

  // The grid tile at (column, row), or nullptr for an all-zero tile.
  const Tile* GridTile(uint32_t column, uint32_t row) const;

  // Copies `rect` (frame coordinates, clipped to the frame) into `out`,
  // `out_stride` bytes apart, 4 bytes per pixel B,G,R,X.
  void ReadPixels(const PixelRect& rect, uint8_t* out, size_t out_stride) const;
  // The pixel at (x, y) as 0xXXRRGGBB; 0 outside the frame.
  uint32_t PixelAt(uint32_t x, uint32_t y) const;

 private:
  uint32_t width_, height_, origin_x_, origin_y_;
  std::vector<std::shared_ptr<const TileRow>> rows_;
  uint32_t grid_columns_;
  uint64_t sequence_;
};

using FramePtr = std::shared_ptr<const Frame>;

}  // namespace vgpu::gpu
