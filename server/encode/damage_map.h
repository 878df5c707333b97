// A viewer's pending damage: for each 64x64 cell of the screen (scanout
// coordinates, cells aligned to its top-left), the smallest rect holding
// every change inside that cell. Memory is bounded by the screen, not by
// the number of flushes, and a typed character stays an 8x16 rect however
// many other cells changed meanwhile (a list of rects would have to
// collapse into a bounding box).
#pragma once

#include <cstdint>
#include <vector>

#include "device/gpu/frame.h"

namespace vgpu::server {

// Not thread-safe (a viewer's lock guards it).
class DamageMap {
 public:
  // Adds `rect` (clipped to 65536 x 65536, beyond any scanout).
  void Add(const gpu::PixelRect& rect);
  // Everything, whatever the size (a full refresh, a new mode).
  void AddAll();
  bool empty() const { return !all_ && dirty_ == 0; }
  void Clear();
  // Whether any damage touches `rect`.
  bool Touches(const gpu::PixelRect& rect) const;

  // Removes everything and returns the part inside `width` x `height` as
  // rects: each cell's rect, merged with its neighbours (to the right, then
  // below) where one rect covers no more than kMergeSlack pixels beyond
  // what the separate ones cover. A whole changed screen is one rect, a
  // changed text line one rect per line. Row-major order.
  std::vector<gpu::PixelRect> Take(uint32_t width, uint32_t height);

  // Unchanged pixels one merge may add: about what a rect's own header
  // costs (in bytes) against what one more pixel costs encoded.
  static constexpr uint64_t kMergeSlack = 256;

 private:
  struct Cell {  // in cell coordinates, [x0, x1) x [y0, y1); x1 == 0: clean
    uint8_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  };
  // Makes room for cells up to (columns, rows), keeping what is marked.
  void Grow(uint32_t columns, uint32_t rows);

  uint32_t columns_ = 0, rows_ = 0;
  std::vector<Cell> cells_;  // row-major
  size_t dirty_ = 0;         // cells with damage
  bool all_ = false;
};

}  // namespace vgpu::server
