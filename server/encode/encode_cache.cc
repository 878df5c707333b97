#include "server/encode/encode_cache.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"

namespace vgpu::server {

namespace {

// The one colour of grid tiles [first, end) in `row`, if they are solid
// (B,G,R only: X is ignored, as viewers ignore it). Null tiles are black.
// Pixels past the grid's edge are never written and do not count.
std::optional<uint32_t> SolidColor(const gpu::Frame& frame, uint32_t first,
                                   uint32_t end, uint32_t row) {
  std::optional<uint32_t> color;
  const uint64_t grid_width = uint64_t{frame.width()} + frame.origin_x();
  const uint64_t grid_height = uint64_t{frame.height()} + frame.origin_y();
  for (uint32_t column = first; column < end; ++column) {
    const gpu::Tile* tile = frame.GridTile(column, row);
    uint32_t width = static_cast<uint32_t>(std::min<uint64_t>(
        gpu::kTileSize, grid_width - uint64_t{column} * gpu::kTileSize));
    uint32_t height = static_cast<uint32_t>(std::min<uint64_t>(
        gpu::kTileSize, grid_height - uint64_t{row} * gpu::kTileSize));
    if (tile == nullptr) {
      if (color && *color != 0) return std::nullopt;
      color = 0;
      continue;
    }
    for (uint32_t y = 0; y < height; ++y) {
      const uint8_t* line = tile->pixels + size_t{y} * gpu::kTileStride;
      for (uint32_t x = 0; x < width; ++x) {
        uint32_t pixel;
        std::memcpy(&pixel, line + size_t{x} * 4, 4);
        pixel &= 0x00FFFFFFu;
        if (!color) color = pixel;
        if (pixel != *color) return std::nullopt;
      }
    }
  }
  return color;
}

}  // namespace

absl::StatusOr<std::vector<EncodedPiece>> EncodeCache::Encode(
    const gpu::Frame& frame, const std::vector<gpu::PixelRect>& damage,
    const EncodeOptions& options, size_t max_piece_bytes) {
  constexpr uint32_t kTile = gpu::kTileSize;
  const gpu::PixelRect bounds{0, 0, frame.width(), frame.height()};
  // Damaged tiles per tile row, in grid coordinates.
  std::map<uint32_t, std::vector<bool>> rows;
  for (const gpu::PixelRect& rect : damage) {
    gpu::PixelRect clipped = gpu::Intersect(rect, bounds);
    if (clipped.empty()) continue;
    uint64_t gx0 = uint64_t{clipped.x} + frame.origin_x();
    uint64_t gy0 = uint64_t{clipped.y} + frame.origin_y();
    uint64_t gx1 = gx0 + clipped.width, gy1 = gy0 + clipped.height;
    for (uint64_t r = gy0 / kTile; r <= (gy1 - 1) / kTile; ++r) {
      std::vector<bool>& columns = rows[static_cast<uint32_t>(r)];
      uint64_t last = (gx1 - 1) / kTile;
      if (columns.size() <= last) columns.resize(last + 1, false);
      for (uint64_t c = gx0 / kTile; c <= last; ++c) columns[c] = true;
    }
  }
  const uint32_t max_run = std::max<uint32_t>(
      1, static_cast<uint32_t>(max_piece_bytes / (size_t{kTile} * kTile * 4)));
  std::vector<EncodedPiece> pieces;
  for (const auto& [row, columns] : rows) {
    for (uint32_t c = 0; c < columns.size();) {
      if (!columns[c]) {
        ++c;
        continue;
      }
      uint32_t end = c;
      while (end < columns.size() && columns[end] && end - c < max_run) ++end;
      // The run in frame coordinates, clipped to the frame.
      int64_t fx = int64_t{c} * kTile - frame.origin_x();
      int64_t fy = int64_t{row} * kTile - frame.origin_y();
      int64_t fx1 = int64_t{end} * kTile - frame.origin_x();
      int64_t fy1 = fy + kTile;
      fx = std::max<int64_t>(fx, 0);
      fy = std::max<int64_t>(fy, 0);
      fx1 = std::min<int64_t>(fx1, frame.width());
      fy1 = std::min<int64_t>(fy1, frame.height());
      if (fx1 > fx && fy1 > fy) {
        gpu::PixelRect rect{
            static_cast<uint32_t>(fx), static_cast<uint32_t>(fy),
            static_cast<uint32_t>(fx1 - fx), static_cast<uint32_t>(fy1 - fy)};
        if (std::optional<uint32_t> color = SolidColor(frame, c, end, row)) {
          pieces.push_back({rect, nullptr, true, *color});
          MutexLock lock(&mu_);
          ++stats_.solid;
          c = end;
          continue;
        }
        if (options.kind == ImageKind::kRawBgrx ||
            options.kind == ImageKind::kRawRgbx) {
          // Raw is a copy either way: the caller reads the frame directly.
          pieces.push_back({rect, nullptr});
          c = end;
          continue;
        }
        std::string key = absl::StrCat(
            static_cast<int>(options.kind), "/", options.jpeg_quality, "/",
            static_cast<int>(options.subsampling), "/", frame.origin_x(), ",",
            frame.origin_y(), "/", rect.x, ",", rect.y, ",", rect.width, ",",
            rect.height);
        for (uint32_t k = c; k < end; ++k) {
          const gpu::Tile* tile = frame.GridTile(k, row);
          absl::StrAppend(&key, ":", tile ? tile->version : 0);
        }
        absl::StatusOr<std::shared_ptr<const std::string>> data =
            GetOrEncode(key, [&] { return EncodeImage(frame, rect, options); });
        if (!data.ok()) return data.status();
        pieces.push_back({rect, *std::move(data)});
      }
      c = end;
    }
  }
  return pieces;
}

absl::StatusOr<std::shared_ptr<const std::string>> EncodeCache::GetOrEncode(
    const std::string& key,
    const std::function<absl::StatusOr<std::string>()>& encode) {
  mu_.Lock();
  while (true) {
    auto it = entries_.find(key);
    if (it == entries_.end()) break;
    if (it->second.data) {
      ++stats_.hits;
      lru_.splice(lru_.begin(), lru_, it->second.position);
      std::shared_ptr<const std::string> data = it->second.data;
      mu_.Unlock();
      return data;
    }
    // Another viewer is encoding these tiles: wait for its result.
    mu_.WaitOnce(std::chrono::steady_clock::now() +
                 std::chrono::milliseconds(100));
  }
  ++stats_.misses;
  entries_[key] = Entry{};  // pending
  mu_.Unlock();

  absl::StatusOr<std::string> encoded = encode();

  mu_.Lock();
  if (!encoded.ok()) {
    entries_.erase(key);  // a waiter will try itself
    mu_.Unlock();
    mu_.NotifyAll();
    return encoded.status();
  }
  auto data = std::make_shared<const std::string>(*std::move(encoded));
  stats_.bytes += data->capacity();
  lru_.push_front(key);
  entries_[key] = Entry{data, lru_.begin()};
  while (stats_.bytes > max_bytes_ && lru_.size() > 1) {
    auto victim = entries_.find(lru_.back());
    stats_.bytes -= victim->second.data->capacity();
    entries_.erase(victim);
    lru_.pop_back();
  }
  mu_.Unlock();
  mu_.NotifyAll();
  return data;
}

EncodeCacheStats EncodeCache::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

}  // namespace vgpu::server
