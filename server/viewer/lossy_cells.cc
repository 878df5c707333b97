#include "server/viewer/lossy_cells.h"

#include <algorithm>

namespace vgpu::server {

constexpr uint32_t kCell = gpu::kTileSize;

void LossyCells::Reset(uint32_t width, uint32_t height) {
  width_ = width;
  height_ = height;
  columns_ = (width + kCell - 1) / kCell;
  rows_ = (height + kCell - 1) / kCell;
  marked_.assign(size_t{columns_} * rows_, absl::InfiniteFuture());
  count_ = 0;
}

template <typename Visit>
void LossyCells::ForCells(const gpu::PixelRect& rect, Visit visit) const {
  gpu::PixelRect clipped =
      gpu::Intersect(rect, gpu::PixelRect{0, 0, width_, height_});
  if (clipped.empty()) return;
  for (uint32_t row = clipped.y / kCell;
       row <= (clipped.y + clipped.height - 1) / kCell; ++row) {
    for (uint32_t column = clipped.x / kCell;
         column <= (clipped.x + clipped.width - 1) / kCell; ++column) {
      visit(size_t{row} * columns_ + column);
    }
  }
}

void LossyCells::Mark(const gpu::PixelRect& rect, absl::Time when) {
  ForCells(rect, [&](size_t i) {
    if (marked_[i] == absl::InfiniteFuture()) ++count_;
    marked_[i] = when;
  });
}

void LossyCells::Clear(const gpu::PixelRect& rect) {
  ForCells(rect, [&](size_t i) {
    // Only cells the rect covers whole (as far as the screen goes) are
    // exact now; a cell it only touches may be lossy elsewhere.
    const uint32_t x = static_cast<uint32_t>(i % columns_) * kCell;
    const uint32_t y = static_cast<uint32_t>(i / columns_) * kCell;
    const gpu::PixelRect cell = gpu::Intersect(
        {x, y, kCell, kCell}, gpu::PixelRect{0, 0, width_, height_});
    if (gpu::Intersect(cell, rect) != cell) return;
    if (marked_[i] != absl::InfiniteFuture()) --count_;
    marked_[i] = absl::InfiniteFuture();
  });
}

std::vector<gpu::PixelRect> LossyCells::TakeSettled(absl::Time settled_by,
                                                    const DamageMap& pending) {
  std::vector<gpu::PixelRect> runs;
  for (uint32_t row = 0; row < rows_; ++row) {
    for (uint32_t column = 0; column < columns_;) {
      auto settled = [&](uint32_t c) {
        size_t i = size_t{row} * columns_ + c;
        return marked_[i] <= settled_by &&
               !pending.Touches({c * kCell, row * kCell, kCell, kCell});
      };
      if (!settled(column)) {
        ++column;
        continue;
      }
      uint32_t end = column;
      while (end < columns_ && settled(end)) {
        marked_[size_t{row} * columns_ + end] = absl::InfiniteFuture();
        --count_;
        ++end;
      }
      uint32_t x = column * kCell, y = row * kCell;
      runs.push_back({x, y, std::min(end * kCell, width_) - x,
                      std::min(y + kCell, height_) - y});
      column = end;
    }
  }
  return runs;
}

absl::Time LossyCells::Oldest() const {
  absl::Time oldest = absl::InfiniteFuture();
  if (count_ == 0) return oldest;
  for (absl::Time when : marked_) oldest = std::min(oldest, when);
  return oldest;
}

}  // namespace vgpu::server
