#include "server/encode/damage_map.h"

#include <algorithm>

namespace vgpu::server {
namespace {

constexpr uint32_t kCell = gpu::kTileSize;
constexpr uint32_t kMaxSide = 65536;  // pixels

uint64_t Area(const gpu::PixelRect& r) { return uint64_t{r.width} * r.height; }

// Whether one rect holding both costs at most kMergeSlack more pixels.
bool CheapToMerge(const gpu::PixelRect& a, const gpu::PixelRect& b) {
  return Area(gpu::BoundingBox(a, b)) <=
         Area(a) + Area(b) + DamageMap::kMergeSlack;
}

}  // namespace

void DamageMap::Grow(uint32_t columns, uint32_t rows) {
  if (columns <= columns_ && rows <= rows_) return;
  const uint32_t new_columns = std::max(columns, columns_);
  const uint32_t new_rows = std::max(rows, rows_);
  std::vector<Cell> cells(size_t{new_columns} * new_rows);
  for (uint32_t r = 0; r < rows_; ++r) {
    for (uint32_t c = 0; c < columns_; ++c)
      cells[size_t{r} * new_columns + c] = cells_[size_t{r} * columns_ + c];
  }
  cells_ = std::move(cells);
  columns_ = new_columns;
  rows_ = new_rows;
}

void DamageMap::Add(const gpu::PixelRect& rect) {
  const gpu::PixelRect r =
      gpu::Intersect(rect, gpu::PixelRect{0, 0, kMaxSide, kMaxSide});
  if (r.empty() || all_) return;
  const uint32_t x_end = r.x + r.width, y_end = r.y + r.height;
  Grow((x_end + kCell - 1) / kCell, (y_end + kCell - 1) / kCell);
  for (uint32_t row = r.y / kCell; row * kCell < y_end; ++row) {
    const uint32_t top = row * kCell;
    const uint8_t y0 = static_cast<uint8_t>(std::max(r.y, top) - top);
    const uint8_t y1 = static_cast<uint8_t>(std::min(y_end, top + kCell) - top);
    for (uint32_t column = r.x / kCell; column * kCell < x_end; ++column) {
      const uint32_t left = column * kCell;
      const uint8_t x0 = static_cast<uint8_t>(std::max(r.x, left) - left);
      const uint8_t x1 =
          static_cast<uint8_t>(std::min(x_end, left + kCell) - left);
      Cell& cell = cells_[size_t{row} * columns_ + column];
      if (cell.x1 == 0) {
        cell = Cell{x0, y0, x1, y1};
        ++dirty_;
      } else {
        cell.x0 = std::min(cell.x0, x0);
        cell.y0 = std::min(cell.y0, y0);
        cell.x1 = std::max(cell.x1, x1);
        cell.y1 = std::max(cell.y1, y1);
      }
    }
  }
}

void DamageMap::AddAll() { all_ = true; }

void DamageMap::Clear() {
  if (dirty_ > 0) std::fill(cells_.begin(), cells_.end(), Cell{});
  dirty_ = 0;
  all_ = false;
}

bool DamageMap::Touches(const gpu::PixelRect& rect) const {
  if (rect.empty()) return false;
  if (all_) return true;
  if (dirty_ == 0) return false;
  const gpu::PixelRect r = gpu::Intersect(
      rect, gpu::PixelRect{0, 0, columns_ * kCell, rows_ * kCell});
  if (r.empty()) return false;
  for (uint32_t row = r.y / kCell; row * kCell < r.y + r.height; ++row) {
    for (uint32_t column = r.x / kCell; column * kCell < r.x + r.width;
         ++column) {
      const Cell& cell = cells_[size_t{row} * columns_ + column];
      if (cell.x1 == 0) continue;
      const gpu::PixelRect changed{
          column * kCell + cell.x0, row * kCell + cell.y0,
          uint32_t{cell.x1} - cell.x0, uint32_t{cell.y1} - cell.y0};
      if (!gpu::Intersect(changed, r).empty()) return true;
    }
  }
  return false;
}

std::vector<gpu::PixelRect> DamageMap::Take(uint32_t width, uint32_t height) {
  std::vector<gpu::PixelRect> taken;
  const gpu::PixelRect screen{0, 0, width, height};
  if (all_) {
    if (!screen.empty()) taken.push_back(screen);
    Clear();
    return taken;
  }
  if (dirty_ == 0) return taken;
  // Rects of the previous cell row that may still grow downwards.
  std::vector<gpu::PixelRect> open, next_open, line;
  std::vector<bool> extended;
  for (uint32_t row = 0; row < rows_ && row * kCell < height; ++row) {
    line.clear();
    for (uint32_t column = 0; column < columns_ && column * kCell < width;
         ++column) {
      const Cell& cell = cells_[size_t{row} * columns_ + column];
      if (cell.x1 == 0) continue;
      const gpu::PixelRect rect = gpu::Intersect(
          gpu::PixelRect{column * kCell + cell.x0, row * kCell + cell.y0,
                         uint32_t{cell.x1} - cell.x0,
                         uint32_t{cell.y1} - cell.y0},
          screen);
      if (rect.empty()) continue;
      if (!line.empty() && CheapToMerge(line.back(), rect)) {
        line.back() = gpu::BoundingBox(line.back(), rect);
      } else {
        line.push_back(rect);
      }
    }
    next_open.clear();
    extended.assign(open.size(), false);
    for (const gpu::PixelRect& rect : line) {
      gpu::PixelRect merged = rect;
      for (size_t i = 0; i < open.size(); ++i) {
        if (!extended[i] && CheapToMerge(open[i], rect)) {
          merged = gpu::BoundingBox(open[i], rect);
          extended[i] = true;
          break;
        }
      }
      next_open.push_back(merged);
    }
    for (size_t i = 0; i < open.size(); ++i) {
      if (!extended[i]) taken.push_back(open[i]);
    }
    open.swap(next_open);
  }
  taken.insert(taken.end(), open.begin(), open.end());
  std::sort(taken.begin(), taken.end(),
            [](const gpu::PixelRect& a, const gpu::PixelRect& b) {
              return a.y != b.y ? a.y < b.y : a.x < b.x;
            });
  Clear();
  return taken;
}

}  // namespace vgpu::server
