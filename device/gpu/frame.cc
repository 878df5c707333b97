#include "device/gpu/frame.h"

#include <algorithm>
#include <atomic>
#include <cstring>

namespace vgpu::gpu {
namespace {

std::atomic<uint64_t> next_tile_version{1};

// Up to 64 MiB of free tiles stay pooled.
constexpr size_t kMaxPooledTiles = (64u << 20) / kTileBytes;

}  // namespace

TilePool& TilePool::Default() {
  static TilePool* pool = new TilePool(kMaxPooledTiles);
  return *pool;
}

TilePool::~TilePool() {
  for (Tile* tile : free_) delete tile;
}

void TileRef::Reset() {
  if (tile_ == nullptr) return;
  if (tile_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
    tile_->pool->Release(tile_);
  tile_ = nullptr;
}

TileRef TilePool::Allocate() {
  Tile* tile = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      tile = free_.back();
      free_.pop_back();
    }
  }
  if (tile == nullptr) tile = new Tile;
  tile->pool = this;
  tile->version = next_tile_version.fetch_add(1, std::memory_order_relaxed);
  return TileRef(tile);
}

void TilePool::Release(Tile* tile) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < max_free_) {
      free_.push_back(tile);
      return;
    }
  }
  delete tile;
}

size_t TilePool::free_tiles() const {
  std::lock_guard<std::mutex> lock(mu_);
  return free_.size();
}

PixelRect Intersect(const PixelRect& a, const PixelRect& b) {
  uint64_t x0 = std::max<uint64_t>(a.x, b.x);
  uint64_t y0 = std::max<uint64_t>(a.y, b.y);
  uint64_t x1 =
      std::min<uint64_t>(uint64_t{a.x} + a.width, uint64_t{b.x} + b.width);
  uint64_t y1 =
      std::min<uint64_t>(uint64_t{a.y} + a.height, uint64_t{b.y} + b.height);
  if (x1 <= x0 || y1 <= y0) return {};
  return {static_cast<uint32_t>(x0), static_cast<uint32_t>(y0),
          static_cast<uint32_t>(x1 - x0), static_cast<uint32_t>(y1 - y0)};
}

PixelRect BoundingBox(const PixelRect& a, const PixelRect& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  uint32_t x0 = std::min(a.x, b.x), y0 = std::min(a.y, b.y);
  uint32_t x1 = std::max(a.x + a.width, b.x + b.width);
  uint32_t y1 = std::max(a.y + a.height, b.y + b.height);
  return {x0, y0, x1 - x0, y1 - y0};
}

TileGrid::TileGrid(uint32_t width, uint32_t height)
    : width_(width),
      height_(height),
      columns_((width + kTileSize - 1) / kTileSize) {
  uint32_t row_count = (height + kTileSize - 1) / kTileSize;
  rows_.reserve(row_count);
  for (uint32_t r = 0; r < row_count; ++r) {
    RowRef row(new TileRow);
    row->tiles.resize(columns_);
    rows_.push_back(std::move(row));
  }
  back_.resize(size_t{row_count} * columns_);
  max_back_tiles_ = std::max<size_t>(16, back_.size() / 4);
}

namespace {

// Copies `region` of `from` into `to` (or zeroes it when `from` is null),
// except the pixels inside `skip`, which the caller is about to overwrite.
uint64_t CopyRegionExcept(uint8_t* to, const uint8_t* from,
                          const PixelRect& region, const PixelRect& skip) {
  if (Intersect(region, skip) == region) return 0;  // all of it is overwritten
  uint64_t copied = 0;
  auto copy = [&](uint32_t y, uint32_t x0, uint32_t x1) {
    if (x1 <= x0) return;
    size_t offset = size_t{y} * kTileStride + size_t{x0} * kBytesPerPixel;
    size_t bytes = size_t{x1 - x0} * kBytesPerPixel;
    if (from != nullptr) {
      std::memcpy(to + offset, from + offset, bytes);
      copied += bytes;
    } else {
      std::memset(to + offset, 0, bytes);
    }
  };
  const uint32_t right = region.x + region.width;
  for (uint32_t y = region.y; y < region.y + region.height; ++y) {
    if (y < skip.y || y >= skip.y + skip.height || skip.empty()) {
      copy(y, region.x, right);
    } else {
      copy(y, region.x, std::min(right, skip.x));
      copy(y, std::max(region.x, skip.x + skip.width), right);
    }
  }
  return copied;
}

}  // namespace

uint8_t* TileGrid::MutableTile(uint32_t column, uint32_t row,
                               const PixelRect& covered, GridStats* stats) {
  // A row held only here may be written in place (RowRef::Exclusive).
  RowRef& row_ptr = rows_[row];
  if (!row_ptr.Exclusive()) {
    auto* copy = new TileRow;
    copy->tiles = row_ptr->tiles;
    row_ptr = RowRef(copy);
    ++stats->rows_cloned;
  }
  TileRef& tile = row_ptr->tiles[column];
  BackTile& back = back_[size_t{row} * columns_ + column];
  constexpr PixelRect kWhole{0, 0, kTileSize, kTileSize};
  if (tile && tile.Exclusive()) {
    // Nobody else sees this tile: write in place.
    tile->version = next_tile_version.fetch_add(1, std::memory_order_relaxed);
    back.changed = BoundingBox(back.changed, covered);
    return tile->pixels;
  }
  TileRef target;
  if (tile && back.previous && back.previous.Exclusive()) {
    // Reuse the version before the current one: it differs from the
    // current tile only inside back.changed.
    target = std::move(back.previous);
    --back_tiles_held_;
    target->version = next_tile_version.fetch_add(1, std::memory_order_relaxed);
    stats->clone_bytes +=
        CopyRegionExcept(target->pixels, tile->pixels, back.changed, covered);
    ++stats->back_tiles_reused;
  } else {
    target = TilePool::Default().Allocate();
    ++stats->tiles_allocated;
    uint64_t copied = CopyRegionExcept(
        target->pixels, tile ? tile->pixels : nullptr, kWhole, covered);
    if (tile && copied > 0) {
      stats->clone_bytes += copied;
      ++stats->tiles_cloned;
    }
  }
  // The current tile becomes the previous version (kept only while under the
  // bound; otherwise it goes back to the pool when frames drop it).
  if (back.previous) {
    back.previous.Reset();
    --back_tiles_held_;
  }
  if (tile && back_tiles_held_ < max_back_tiles_) {
    back.previous = std::move(tile);
    ++back_tiles_held_;
  }
  back.changed = covered;
  tile = std::move(target);
  return tile->pixels;
}

void TileGrid::WritePixels(const PixelRect& rect, const uint8_t* pixels,
                           size_t stride, GridStats* stats) {
  if (rect.empty()) return;
  for (uint32_t row = rect.y / kTileSize;
       row <= (rect.y + rect.height - 1) / kTileSize; ++row) {
    for (uint32_t col = rect.x / kTileSize;
         col <= (rect.x + rect.width - 1) / kTileSize; ++col) {
      PixelRect tile{col * kTileSize, row * kTileSize, kTileSize, kTileSize};
      PixelRect part = Intersect(rect, tile);
      uint8_t* out = MutableTile(
          col, row, {part.x - tile.x, part.y - tile.y, part.width, part.height},
          stats);
      for (uint32_t y = part.y; y < part.y + part.height; ++y) {
        std::memcpy(out + size_t{y - tile.y} * kTileStride +
                        size_t{part.x - tile.x} * kBytesPerPixel,
                    pixels + size_t{y - rect.y} * stride +
                        size_t{part.x - rect.x} * kBytesPerPixel,
                    size_t{part.width} * kBytesPerPixel);
      }
    }
  }
}

std::vector<RowRef> TileGrid::Snapshot() const { return rows_; }

Frame::Frame(uint32_t width, uint32_t height, uint32_t origin_x,
             uint32_t origin_y, std::vector<RowRef> rows, uint32_t grid_columns,
             uint64_t sequence)
    : width_(width),
      height_(height),
      origin_x_(origin_x),
      origin_y_(origin_y),
      rows_(std::move(rows)),
      grid_columns_(grid_columns),
      sequence_(sequence) {}

const Tile* Frame::GridTile(uint32_t column, uint32_t row) const {
  if (row >= rows_.size() || column >= grid_columns_) return nullptr;
  return rows_[row]->tiles[column].get();
}

void Frame::ReadPixels(const PixelRect& rect, uint8_t* out,
                       size_t out_stride) const {
  PixelRect r = Intersect(rect, PixelRect{0, 0, width_, height_});
  if (r.empty()) return;
  // Tile by tile rather than row by row: each tile's rows are read in
  // address order (one stream the prefetcher follows) and each tile is
  // looked up once, not once per row.
  const uint64_t gx0 = uint64_t{origin_x_} + r.x,
                 gy0 = uint64_t{origin_y_} + r.y;
  const uint64_t gx1 = gx0 + r.width, gy1 = gy0 + r.height;
  uint8_t* const base = out + size_t{r.y - rect.y} * out_stride +
                        size_t{r.x - rect.x} * kBytesPerPixel;
  for (uint64_t ty = gy0; ty < gy1; ty = (ty / kTileSize + 1) * kTileSize) {
    const uint32_t in_tile_y = static_cast<uint32_t>(ty % kTileSize);
    const uint32_t rows = static_cast<uint32_t>(
        std::min<uint64_t>(gy1 - ty, kTileSize - in_tile_y));
    for (uint64_t tx = gx0; tx < gx1; tx = (tx / kTileSize + 1) * kTileSize) {
      const uint32_t in_tile_x = static_cast<uint32_t>(tx % kTileSize);
      const size_t span = static_cast<size_t>(std::min<uint64_t>(
                              gx1 - tx, kTileSize - in_tile_x)) *
                          kBytesPerPixel;
      uint8_t* dst = base + size_t{ty - gy0} * out_stride +
                     size_t{tx - gx0} * kBytesPerPixel;
      const Tile* tile = GridTile(static_cast<uint32_t>(tx / kTileSize),
                                  static_cast<uint32_t>(ty / kTileSize));
      if (tile == nullptr) {
        for (uint32_t y = 0; y < rows; ++y, dst += out_stride)
          std::memset(dst, 0, span);
        continue;
      }
      const uint8_t* src = tile->pixels + size_t{in_tile_y} * kTileStride +
                           size_t{in_tile_x} * kBytesPerPixel;
      if (span == kTileStride) {  // whole tile rows: a fixed-size copy
        for (uint32_t y = 0; y < rows;
             ++y, dst += out_stride, src += kTileStride)
          std::memcpy(dst, src, kTileStride);
      } else {
        for (uint32_t y = 0; y < rows;
             ++y, dst += out_stride, src += kTileStride)
          std::memcpy(dst, src, span);
      }
    }
  }
}

uint32_t Frame::PixelAt(uint32_t x, uint32_t y) const {
  uint32_t pixel = 0;
  if (x < width_ && y < height_) {
    ReadPixels(PixelRect{x, y, 1, 1}, reinterpret_cast<uint8_t*>(&pixel),
               kBytesPerPixel);
  }
  return pixel;
}

}  // namespace vgpu::gpu
