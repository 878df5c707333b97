// Host pixels on their way out of the device: a grid of 64x64 tiles in one
// canonical format (B,G,R,A/X bytes in memory = DRM XRGB8888 on a
// little-endian host), shared structurally between frames.
//
// The device thread writes into a TileGrid; every flush publishes an
// immutable Frame that shares all untouched rows and tiles with the previous
// one. A tile is cloned only when a frame still holds it (copy-on-write), so
// readers never see a tile change. Null tiles read as zero (black).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace vgpu::gpu {

inline constexpr uint32_t kTileSize = 64;  // pixels per side
inline constexpr uint32_t kBytesPerPixel = 4;
inline constexpr uint32_t kTileStride =
    kTileSize * kBytesPerPixel;  // bytes per tile row
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
// The smallest rect holding both (either may be empty).
PixelRect BoundingBox(const PixelRect& a, const PixelRect& b);

class TilePool;

struct Tile {
  // Unique across the process; a new version for every content change (a
  // write of identical pixels is no change), so encoders can cache per
  // (version, profile). Null tiles have version 0.
  uint64_t version = 0;
  // The version this tile was derived from and, in tile coordinates, the
  // only part where the two differ: what lets a frame tell the next one
  // which pixels changed (Frame::ChangedSince) without comparing them.
  uint64_t base_version = 0;
  PixelRect changed;
  // References held by TileRefs; the last one returns the tile to its pool.
  std::atomic<uint32_t> refs{0};
  TilePool* pool = nullptr;
  alignas(64) uint8_t pixels[kTileBytes];
};

// A counted reference to a pooled Tile (intrusive: no separate control
// block, one atomic per copy). Thread-safe like std::shared_ptr.
class TileRef {
 public:
  TileRef() = default;
  explicit TileRef(Tile* tile) : tile_(tile) {
    if (tile_) tile_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  TileRef(const TileRef& other) : TileRef(other.tile_) {}
  TileRef(TileRef&& other) noexcept : tile_(other.tile_) {
    other.tile_ = nullptr;
  }
  TileRef& operator=(TileRef other) noexcept {
    std::swap(tile_, other.tile_);
    return *this;
  }
  ~TileRef() { Reset(); }

  Tile* get() const { return tile_; }
  Tile* operator->() const { return tile_; }
  explicit operator bool() const { return tile_ != nullptr; }
  // True when this is the only reference. Other threads only ever drop
  // references to published tiles, so a true answer on the device thread
  // stays true, and the acquire orders their last reads before our writes.
  bool Exclusive() const {
    return tile_->refs.load(std::memory_order_acquire) == 1;
  }
  void Reset();

 private:
  Tile* tile_ = nullptr;
};

// Recycles tile memory: tiles freed by any thread (a viewer dropping the
// last frame that held them) go back to a bounded free list, so the device
// thread's next allocation reuses warm, already-faulted memory.
// Thread-safe.
class TilePool {
 public:
  static TilePool& Default();
  explicit TilePool(size_t max_free_tiles) : max_free_(max_free_tiles) {}
  ~TilePool();
  // A tile with a fresh version and unspecified pixels.
  TileRef Allocate();
  size_t free_tiles() const;

 private:
  friend class TileRef;
  void Release(Tile* tile);
  const size_t max_free_;
  mutable std::mutex mu_;
  std::vector<Tile*> free_;
};

// One row of tiles, shared between a grid and the frames published from it.
struct TileRow {
  std::vector<TileRef> tiles;
  // References held by RowRefs; the last one deletes the row.
  std::atomic<uint32_t> refs{0};
};

// A counted reference to a TileRow, as TileRef is to a Tile. Frames on
// other threads only ever drop theirs (a release); the device thread writes
// a row in place only when Exclusive() (an acquire), so every reader's last
// read happens before the write, in a way ThreadSanitizer can see too.
class RowRef {
 public:
  RowRef() = default;
  // Takes a row no RowRef holds yet.
  explicit RowRef(TileRow* row) : row_(row) {
    if (row_) row_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  RowRef(const RowRef& other) : RowRef(other.row_) {}
  RowRef(RowRef&& other) noexcept : row_(other.row_) { other.row_ = nullptr; }
  RowRef& operator=(RowRef other) noexcept {
    std::swap(row_, other.row_);
    return *this;
  }
  ~RowRef() { Reset(); }

  TileRow* operator->() const { return row_; }
  TileRow& operator*() const { return *row_; }
  bool Exclusive() const {
    return row_->refs.load(std::memory_order_acquire) == 1;
  }
  void Reset() {
    if (row_ != nullptr &&
        row_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      delete row_;
    }
    row_ = nullptr;
  }

 private:
  TileRow* row_ = nullptr;
};

struct GridStats {
  uint64_t tiles_allocated = 0;
  uint64_t tiles_cloned = 0;  // copy-on-write of a tile a frame still held
  uint64_t clone_bytes = 0;   // bytes copied by those clones
  uint64_t rows_cloned = 0;
  uint64_t back_tiles_reused = 0;  // copy-on-write served by a previous version
  uint64_t tiles_unchanged = 0;    // updates whose pixels were all the same
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
  // published frame shares it. The caller will overwrite `covered` (tile
  // coordinates), so a clone copies only the pixels outside it.
  uint8_t* MutableTile(uint32_t column, uint32_t row, const PixelRect& covered,
                       GridStats* stats);

  // The current pixels of tile (column, row), rows kTileStride apart, or
  // nullptr for a tile never written (all zero).
  const uint8_t* TilePixels(uint32_t column, uint32_t row) const;

  // Brings `part` of tile (column, row) (tile coordinates, inside the grid)
  // up to `source`: source[i] points at the first pixel of the part's row
  // i, canonical B,G,R,X. Pixels are compared first and only the smallest
  // rect holding every changed pixel is written (with copy-on-write as
  // above): a write of identical pixels changes nothing, not even the
  // version. `streaming` uses non-temporal stores (large copies; the caller
  // fences before publishing). Returns the bytes written.
  uint64_t UpdateTile(uint32_t column, uint32_t row, const PixelRect& part,
                      const uint8_t* const* source, bool streaming,
                      GridStats* stats);

  // Copies canonical B,G,R,X pixels (`stride` bytes per row) into `rect`
  // (grid coordinates, inside the grid), through UpdateTile. For host-drawn
  // content (tests, benchmarks, synthetic screens); guest pixels go through
  // CopyIntoGrid.
  void WritePixels(const PixelRect& rect, const uint8_t* pixels, size_t stride,
                   GridStats* stats);

  // Shares the current rows with a new immutable snapshot.
  std::vector<RowRef> Snapshot() const;

 private:
  uint32_t width_ = 0;
  uint32_t height_ = 0;
  uint32_t columns_ = 0;
  std::vector<RowRef> rows_;
  // Per tile slot, the version before the current one and the part of the
  // tile where they differ. When a published frame pins the current tile,
  // the previous one (once viewers have let go of it) is brought up to date
  // by copying only that part, instead of cloning the whole tile: small
  // repeated updates (typing, a blinking cursor) then cost almost nothing.
  struct BackTile {
    TileRef previous;
    PixelRect changed;
  };
  std::vector<BackTile> back_;
  size_t back_tiles_held_ = 0;
  size_t max_back_tiles_ = 0;  // bounds the extra memory to 1/4 of the grid
};

// An immutable picture of one scanout. Thread-safe.
class Frame {
 public:
  Frame(uint32_t width, uint32_t height, uint32_t origin_x, uint32_t origin_y,
        std::vector<RowRef> rows, uint32_t grid_columns, uint64_t sequence);

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

  // Where this frame differs from `previous` (an earlier frame of the same
  // scanout): frame coordinates, at most one rect per grid tile (the part
  // of it that changed), in row-major tile order. Tiles are compared by
  // identity and lineage, never pixel by pixel: rows and tiles the frames
  // share are skipped, a tile derived from the one `previous` holds
  // reports the part it changed, any other tile the whole tile. A frame of
  // another size or position reports everything. O(tile rows + tiles that
  // differ).
  std::vector<PixelRect> ChangedSince(const Frame& previous) const;

 private:
  uint32_t width_, height_, origin_x_, origin_y_;
  std::vector<RowRef> rows_;
  uint32_t grid_columns_;
  uint64_t sequence_;
};

using FramePtr = std::shared_ptr<const Frame>;

}  // namespace vgpu::gpu
