#include "device/gpu/frame.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
    // Nobody else sees this tile: write in place. It still differs from its
    // base only where it was written.
    tile->version = next_tile_version.fetch_add(1, std::memory_order_relaxed);
    tile->changed = BoundingBox(tile->changed, covered);
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
  target->base_version = tile ? tile->version : 0;
  target->changed = covered;
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

const uint8_t* TileGrid::TilePixels(uint32_t column, uint32_t row) const {
  const TileRef& tile = rows_[row]->tiles[column];
  return tile ? tile->pixels : nullptr;
}

namespace {

alignas(64) constexpr uint8_t kZeroTileRow[kTileStride] = {};

// The first pixel in [0, n) where a and b differ, or n.
uint32_t FirstDifference(const uint8_t* a, const uint8_t* b, uint32_t n) {
  uint32_t i = 0;
#if defined(__SSE2__)
  for (; i + 4 <= n; i += 4) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
    const __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
    const unsigned equal =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, y)));
    if (equal != 0xFFFFu) {
      return i + static_cast<uint32_t>(__builtin_ctz(~equal)) / kBytesPerPixel;
    }
    a += 16;
    b += 16;
  }
#endif
  for (; i < n; ++i, a += kBytesPerPixel, b += kBytesPerPixel) {
    if (std::memcmp(a, b, kBytesPerPixel) != 0) return i;
  }
  return n;
}

// One past the last pixel in [0, n) where a and b differ, or 0.
uint32_t EndOfDifference(const uint8_t* a, const uint8_t* b, uint32_t n) {
  uint32_t end = n;
#if defined(__SSE2__)
  for (; end >= 4; end -= 4) {
    const size_t at = size_t{end - 4} * kBytesPerPixel;
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + at));
    const __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + at));
    const unsigned equal =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, y)));
    if (equal != 0xFFFFu) {
      return end - static_cast<uint32_t>(__builtin_clz(~equal << 16)) /
                       kBytesPerPixel;
    }
  }
#endif
  for (; end > 0; --end) {
    const size_t at = size_t{end - 1} * kBytesPerPixel;
    if (std::memcmp(a + at, b + at, kBytesPerPixel) != 0) return end;
  }
  return 0;
}

// One whole tile row (kTileStride bytes) to a 16-byte aligned destination,
// bypassing the cache.
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

constexpr uint32_t kPrefetchRows = 8;

}  // namespace

uint64_t TileGrid::UpdateTile(uint32_t column, uint32_t row,
                              const PixelRect& part,
                              const uint8_t* const* source, bool streaming,
                              GridStats* stats) {
  if (part.empty()) return 0;
  // Where the part differs from the current pixels: rows [y0, y1), pixels
  // [x0, x1) of the part. The first and last differing rows are found from
  // the top and from the bottom; rows between them only need checking
  // outside [x0, x1). A tile that changed everywhere costs two row
  // compares, not sixty-four (each a likely cache miss on the old tile).
  const uint8_t* current = TilePixels(column, row);
  if (column + 1 < columns_) {
    // The next tile's first and last rows will be compared next: start
    // their cache misses now, behind this tile's work.
    if (const uint8_t* next = TilePixels(column + 1, row)) {
      const uint8_t* top = next + size_t{part.y} * kTileStride;
      const uint8_t* bottom =
          next + size_t{part.y + part.height - 1} * kTileStride;
      __builtin_prefetch(top);
      __builtin_prefetch(top + kTileStride - 64);
      __builtin_prefetch(bottom);
      __builtin_prefetch(bottom + kTileStride - 64);
    }
  }
  const size_t part_x = size_t{part.x} * kBytesPerPixel;
  const size_t row_bytes = size_t{part.width} * kBytesPerPixel;
  auto old_row = [&](uint32_t y) {
    return current ? current + size_t{part.y + y} * kTileStride + part_x
                   : kZeroTileRow;
  };
  uint32_t y0 = 0;
  while (y0 < part.height &&
         std::memcmp(source[y0], old_row(y0), row_bytes) == 0) {
    ++y0;
  }
  if (y0 == part.height) {
    ++stats->tiles_unchanged;
    return 0;
  }
  uint32_t y1 = part.height;
  while (y1 - 1 > y0 &&
         std::memcmp(source[y1 - 1], old_row(y1 - 1), row_bytes) == 0) {
    --y1;
  }
  uint32_t x0 = FirstDifference(source[y0], old_row(y0), part.width);
  uint32_t x1 = EndOfDifference(source[y0], old_row(y0), part.width);
  // Rows below the first only matter outside [x0, x1).
  for (uint32_t y = y0 + 1; y < y1 && (x0 > 0 || x1 < part.width); ++y) {
    const uint8_t* old = old_row(y);
    if (x0 > 0) x0 = FirstDifference(source[y], old, x0);
    if (x1 < part.width) {
      const size_t skip = size_t{x1} * kBytesPerPixel;
      const uint32_t end =
          EndOfDifference(source[y] + skip, old + skip, part.width - x1);
      if (end > 0) x1 += end;
    }
  }
  const PixelRect changed{part.x + x0, part.y + y0, x1 - x0, y1 - y0};
  // Pixels past the grid's right or bottom edge are never read, so a change
  // reaching the edge covers the tile to its end (a clone skips them).
  const uint32_t tile_right = std::min(kTileSize, width_ - column * kTileSize);
  const uint32_t tile_bottom = std::min(kTileSize, height_ - row * kTileSize);
  PixelRect covered = changed;
  if (changed.x + changed.width == tile_right)
    covered.width = kTileSize - changed.x;
  if (changed.y + changed.height == tile_bottom)
    covered.height = kTileSize - changed.y;
  uint8_t* out = MutableTile(column, row, covered, stats) +
                 size_t{changed.y} * kTileStride +
                 size_t{changed.x} * kBytesPerPixel;
  const size_t bytes = size_t{changed.width} * kBytesPerPixel;
  const size_t src_x = size_t{x0} * kBytesPerPixel;
  if (streaming && bytes == kTileStride) {
    for (uint32_t y = y0; y < y1; ++y, out += kTileStride) {
      // Source rows are a stride apart: fetch a few rows ahead.
      if (y + kPrefetchRows < y1) {
        for (uint32_t line = 0; line < kTileStride; line += 64)
          __builtin_prefetch(source[y + kPrefetchRows] + line);
      }
      CopyTileRowStreaming(out, source[y]);
    }
  } else if (bytes == kTileStride) {
    // Whole tile rows: a fixed-size copy the compiler inlines.
    for (uint32_t y = y0; y < y1; ++y, out += kTileStride)
      std::memcpy(out, source[y], kTileStride);
  } else {
    for (uint32_t y = y0; y < y1; ++y, out += kTileStride)
      std::memcpy(out, source[y] + src_x, bytes);
  }
  return uint64_t{y1 - y0} * bytes;
}

void TileGrid::WritePixels(const PixelRect& rect, const uint8_t* pixels,
                           size_t stride, GridStats* stats) {
  if (rect.empty()) return;
  const uint8_t* rows[kTileSize];
  for (uint32_t row = rect.y / kTileSize;
       row <= (rect.y + rect.height - 1) / kTileSize; ++row) {
    for (uint32_t col = rect.x / kTileSize;
         col <= (rect.x + rect.width - 1) / kTileSize; ++col) {
      PixelRect tile{col * kTileSize, row * kTileSize, kTileSize, kTileSize};
      PixelRect part = Intersect(rect, tile);
      for (uint32_t y = 0; y < part.height; ++y) {
        rows[y] = pixels + size_t{part.y + y - rect.y} * stride +
                  size_t{part.x - rect.x} * kBytesPerPixel;
      }
      UpdateTile(col, row,
                 {part.x - tile.x, part.y - tile.y, part.width, part.height},
                 rows, /*streaming=*/false, stats);
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

std::vector<PixelRect> Frame::ChangedSince(const Frame& previous) const {
  const PixelRect bounds{0, 0, width_, height_};
  if (previous.width_ != width_ || previous.height_ != height_ ||
      previous.origin_x_ != origin_x_ || previous.origin_y_ != origin_y_ ||
      previous.grid_columns_ != grid_columns_ ||
      previous.rows_.size() != rows_.size()) {
    return {bounds};
  }
  std::vector<PixelRect> changed;
  // Only the tiles under the frame; their rects move to frame coordinates.
  const uint32_t first_row = origin_y_ / kTileSize;
  const uint32_t end_row = static_cast<uint32_t>(
      (uint64_t{origin_y_} + height_ + kTileSize - 1) / kTileSize);
  const uint32_t first_column = origin_x_ / kTileSize;
  const uint32_t end_column = static_cast<uint32_t>(
      (uint64_t{origin_x_} + width_ + kTileSize - 1) / kTileSize);
  for (uint32_t row = first_row; row < end_row && row < rows_.size(); ++row) {
    const TileRow& now = *rows_[row];
    const TileRow& before = *previous.rows_[row];
    if (&now == &before) continue;  // a shared row: nothing in it changed
    // Tiles of the previous frame are usually out of the cache by now:
    // fetch the headers of those that differ all at once.
    for (uint32_t column = first_column;
         column < end_column && column < grid_columns_; ++column) {
      const Tile* old = before.tiles[column].get();
      if (old != nullptr && old != now.tiles[column].get())
        __builtin_prefetch(old);
    }
    for (uint32_t column = first_column;
         column < end_column && column < grid_columns_; ++column) {
      const Tile* tile = now.tiles[column].get();
      const Tile* old = before.tiles[column].get();
      if (tile == old) continue;
      const uint64_t old_version = old ? old->version : 0;
      if ((tile ? tile->version : 0) == old_version) continue;
      PixelRect part{0, 0, kTileSize, kTileSize};
      if (tile != nullptr && tile->base_version == old_version)
        part = tile->changed;
      // Grid to frame coordinates (64-bit: the tile may start left of or
      // above the frame).
      const int64_t gx = int64_t{column} * kTileSize + part.x;
      const int64_t gy = int64_t{row} * kTileSize + part.y;
      const int64_t fx0 = std::max<int64_t>(gx - origin_x_, 0);
      const int64_t fy0 = std::max<int64_t>(gy - origin_y_, 0);
      const int64_t fx1 =
          std::min<int64_t>(gx + part.width - origin_x_, width_);
      const int64_t fy1 =
          std::min<int64_t>(gy + part.height - origin_y_, height_);
      if (fx1 <= fx0 || fy1 <= fy0) continue;
      changed.push_back({static_cast<uint32_t>(fx0), static_cast<uint32_t>(fy0),
                         static_cast<uint32_t>(fx1 - fx0),
                         static_cast<uint32_t>(fy1 - fy0)});
    }
  }
  return changed;
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
