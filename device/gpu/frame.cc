#include "device/gpu/frame.h"

#include <algorithm>
#include <atomic>
#include <cstring>

namespace vgpu::gpu {
namespace {

std::atomic<uint64_t> next_tile_version{1};

std::shared_ptr<Tile> NewTile() {
  auto tile = std::make_shared<Tile>();
  tile->version = next_tile_version.fetch_add(1, std::memory_order_relaxed);
  return tile;
}

// A pointer held only here may be written in place. Other threads only ever
// drop references (never add), so a count of 1 seen on the device thread is
// stable; the fence orders their last reads before our writes.
template <typename T>
bool Exclusive(const std::shared_ptr<T>& p) {
  if (p.use_count() != 1) return false;
  std::atomic_thread_fence(std::memory_order_acquire);
  return true;
}

}  // namespace

PixelRect Intersect(const PixelRect& a, const PixelRect& b) {
  uint64_t x0 = std::max<uint64_t>(a.x, b.x);
  uint64_t y0 = std::max<uint64_t>(a.y, b.y);
  uint64_t x1 = std::min<uint64_t>(uint64_t{a.x} + a.width, uint64_t{b.x} + b.width);
  uint64_t y1 = std::min<uint64_t>(uint64_t{a.y} + a.height, uint64_t{b.y} + b.height);
  if (x1 <= x0 || y1 <= y0) return {};
  return {static_cast<uint32_t>(x0), static_cast<uint32_t>(y0), static_cast<uint32_t>(x1 - x0),
          static_cast<uint32_t>(y1 - y0)};
}

TileGrid::TileGrid(uint32_t width, uint32_t height)
    : width_(width), height_(height), columns_((width + kTileSize - 1) / kTileSize) {
  uint32_t row_count = (height + kTileSize - 1) / kTileSize;
  rows_.reserve(row_count);
  for (uint32_t r = 0; r < row_count; ++r) {
    auto row = std::make_shared<TileRow>();
    row->tiles.resize(columns_);
    rows_.push_back(std::move(row));
  }
}

uint8_t* TileGrid::MutableTile(uint32_t column, uint32_t row, bool overwrite_all,
                               GridStats* stats) {
  std::shared_ptr<TileRow>& row_ptr = rows_[row];
  if (!Exclusive(row_ptr)) {
    row_ptr = std::make_shared<TileRow>(*row_ptr);
    ++stats->rows_cloned;
  }
  std::shared_ptr<Tile>& tile = row_ptr->tiles[column];
  if (tile && Exclusive(tile)) {
    tile->version = next_tile_version.fetch_add(1, std::memory_order_relaxed);
    return tile->pixels;
  }
  std::shared_ptr<Tile> fresh = NewTile();
  ++stats->tiles_allocated;
  if (overwrite_all) {
    // Contents are about to be replaced whole.
  } else if (tile) {
    std::memcpy(fresh->pixels, tile->pixels, kTileBytes);
    ++stats->tiles_cloned;
    stats->clone_bytes += kTileBytes;
  } else {
    std::memset(fresh->pixels, 0, kTileBytes);
  }
  tile = std::move(fresh);
  return tile->pixels;
}

std::vector<std::shared_ptr<const TileRow>> TileGrid::Snapshot() const {
  return {rows_.begin(), rows_.end()};
}

Frame::Frame(uint32_t width, uint32_t height, uint32_t origin_x, uint32_t origin_y,
             std::vector<std::shared_ptr<const TileRow>> rows, uint32_t grid_columns,
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

void Frame::ReadPixels(const PixelRect& rect, uint8_t* out, size_t out_stride) const {
  PixelRect r = Intersect(rect, PixelRect{0, 0, width_, height_});
  for (uint32_t y = 0; y < r.height; ++y) {
    uint64_t grid_y = uint64_t{origin_y_} + r.y + y;
    uint8_t* dst = out + (y + (r.y - rect.y)) * out_stride + (r.x - rect.x) * kBytesPerPixel;
    uint32_t x = 0;
    while (x < r.width) {
      uint64_t grid_x = uint64_t{origin_x_} + r.x + x;
      uint32_t in_tile_x = static_cast<uint32_t>(grid_x % kTileSize);
      uint32_t span = std::min(r.width - x, kTileSize - in_tile_x);
      const Tile* tile = GridTile(static_cast<uint32_t>(grid_x / kTileSize),
                                  static_cast<uint32_t>(grid_y / kTileSize));
      if (tile == nullptr) {
        std::memset(dst, 0, span * kBytesPerPixel);
      } else {
        std::memcpy(dst,
                    tile->pixels + (grid_y % kTileSize) * kTileStride + in_tile_x * kBytesPerPixel,
                    span * kBytesPerPixel);
      }
      dst += span * kBytesPerPixel;
      x += span;
    }
  }
}

uint32_t Frame::PixelAt(uint32_t x, uint32_t y) const {
  uint32_t pixel = 0;
  if (x < width_ && y < height_) {
    ReadPixels(PixelRect{x, y, 1, 1}, reinterpret_cast<uint8_t*>(&pixel), kBytesPerPixel);
  }
  return pixel;
}

}  // namespace vgpu::gpu
