#include "server/encode/encode_cache.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"

#include "common/status_macros.h"

namespace vgpu::server {

namespace {

constexpr uint32_t kTile = gpu::kTileSize;

// The one colour of `rect` (frame coordinates, inside the frame), if it is
// solid (B,G,R only: X is ignored, as viewers ignore it). Null tiles are
// black.
std::optional<uint32_t> SolidColor(const gpu::Frame& frame,
                                   const gpu::PixelRect& rect) {
  std::optional<uint32_t> color;
  const uint64_t gx0 = uint64_t{rect.x} + frame.origin_x();
  const uint64_t gy0 = uint64_t{rect.y} + frame.origin_y();
  const uint64_t gx1 = gx0 + rect.width, gy1 = gy0 + rect.height;
  for (uint64_t row = gy0 / kTile; row * kTile < gy1; ++row) {
    const uint32_t y0 =
        static_cast<uint32_t>(std::max(gy0, row * kTile) - row * kTile);
    const uint32_t y1 =
        static_cast<uint32_t>(std::min(gy1, (row + 1) * kTile) - row * kTile);
    for (uint64_t column = gx0 / kTile; column * kTile < gx1; ++column) {
      const gpu::Tile* tile = frame.GridTile(static_cast<uint32_t>(column),
                                             static_cast<uint32_t>(row));
      if (tile == nullptr) {
        if (color && *color != 0) return std::nullopt;
        color = 0;
        continue;
      }
      const uint32_t x0 =
          static_cast<uint32_t>(std::max(gx0, column * kTile) - column * kTile);
      const uint32_t x1 = static_cast<uint32_t>(
          std::min(gx1, (column + 1) * kTile) - column * kTile);
      for (uint32_t y = y0; y < y1; ++y) {
        const uint8_t* line = tile->pixels + size_t{y} * gpu::kTileStride;
        for (uint32_t x = x0; x < x1; ++x) {
          uint32_t pixel;
          std::memcpy(&pixel, line + size_t{x} * 4, 4);
          pixel &= 0x00FFFFFFu;
          if (!color) color = pixel;
          if (pixel != *color) return std::nullopt;
        }
      }
    }
  }
  return color;
}

// Whether `rect` (frame coordinates, inside the frame) has at most `most`
// colours (B,G,R). Stops at the first one too many.
bool FewColours(const gpu::Frame& frame, const gpu::PixelRect& rect,
                uint32_t most) {
  std::vector<uint32_t> seen;
  std::vector<uint32_t> row(rect.width);
  uint32_t last = ~0u;
  for (uint32_t y = 0; y < rect.height; ++y) {
    frame.ReadPixels({rect.x, rect.y + y, rect.width, 1},
                     reinterpret_cast<uint8_t*>(row.data()),
                     size_t{rect.width} * 4);
    for (uint32_t pixel : row) {
      pixel &= 0x00FFFFFFu;
      if (pixel == last) continue;
      last = pixel;
      if (std::find(seen.begin(), seen.end(), pixel) != seen.end()) continue;
      if (seen.size() == most) return false;
      seen.push_back(pixel);
    }
  }
  return true;
}

// Splits `rect` into strips of at most `max_pixels` pixels, cut on tile
// rows of the grid where a strip holds 64 rows or more (so strips of the
// same screen line up from one update to the next).
std::vector<gpu::PixelRect> Strips(const gpu::Frame& frame,
                                   const gpu::PixelRect& rect,
                                   uint64_t max_pixels) {
  if (uint64_t{rect.width} * rect.height <= max_pixels) return {rect};
  uint32_t rows = static_cast<uint32_t>(
      std::max<uint64_t>(1, max_pixels / std::max<uint32_t>(rect.width, 1)));
  const bool aligned = rows >= kTile;
  if (aligned) rows -= rows % kTile;
  std::vector<gpu::PixelRect> strips;
  for (uint32_t y = rect.y; y < rect.y + rect.height;) {
    uint32_t end = y + rows;
    if (aligned) {  // the next grid tile-row boundary at or before y + rows
      const uint32_t grid_end = end + frame.origin_y();
      end = std::max(y + 1, grid_end - grid_end % kTile - frame.origin_y());
    }
    end = std::min(end, rect.y + rect.height);
    strips.push_back({rect.x, y, rect.width, end - y});
    y = end;
  }
  return strips;
}

}  // namespace

absl::StatusOr<std::vector<EncodedPiece>> EncodeCache::Encode(
    const gpu::Frame& frame, const std::vector<gpu::PixelRect>& rects,
    const EncodeOptions& options, size_t max_raw_piece_bytes) {
  const gpu::PixelRect bounds{0, 0, frame.width(), frame.height()};
  const bool raw = options.kind == ImageKind::kRawBgrx ||
                   options.kind == ImageKind::kRawRgbx;
  const uint64_t max_pixels =
      raw ? std::max<uint64_t>(kTile, max_raw_piece_bytes / 4)
          : kMaxEncodedPiecePixels;
  std::vector<EncodedPiece> pieces;
  for (const gpu::PixelRect& rect : rects) {
    const gpu::PixelRect clipped = gpu::Intersect(rect, bounds);
    if (clipped.empty()) continue;
    for (const gpu::PixelRect& strip : Strips(frame, clipped, max_pixels)) {
      VGPU_RETURN_IF_ERROR(EncodePiece(frame, strip, options, &pieces));
    }
  }
  return pieces;
}

absl::Status EncodeCache::EncodePiece(const gpu::Frame& frame,
                                      const gpu::PixelRect& rect,
                                      EncodeOptions options,
                                      std::vector<EncodedPiece>* pieces) {
  if (std::optional<uint32_t> color = SolidColor(frame, rect)) {
    pieces->push_back({rect, options.kind, nullptr, true, *color});
    MutexLock lock(&mu_);
    ++stats_.solid;
    return absl::OkStatus();
  }
  if (options.kind == ImageKind::kRawBgrx ||
      options.kind == ImageKind::kRawRgbx) {
    // Raw is a copy either way: the caller reads the frame directly.
    pieces->push_back({rect, options.kind, nullptr});
    return absl::OkStatus();
  }
  if (options.kind == ImageKind::kAdaptive) {
    if (FewColours(frame, rect, kAdaptivePaletteColours)) {
      options.kind = ImageKind::kIndexed;
    } else if (rect.width > kTile || rect.height > kTile) {
      return EncodeAdaptiveParts(frame, rect, options, pieces);
    } else {
      options.kind = ImageKind::kJpeg;
    }
  }
  // The key fixes the content: the profile, the rect and the version of
  // every grid tile under it. Quality and subsampling are JPEG's alone:
  // lossless viewers share whatever they set them to.
  const bool jpeg = options.kind == ImageKind::kJpeg;
  std::string key = absl::StrCat(
      static_cast<int>(options.kind), "/", jpeg ? options.jpeg_quality : 0, "/",
      jpeg ? static_cast<int>(options.subsampling) : 0, "/", frame.origin_x(),
      ",", frame.origin_y(), "/", rect.x, ",", rect.y, ",", rect.width, ",",
      rect.height);
  const uint64_t gx0 = uint64_t{rect.x} + frame.origin_x();
  const uint64_t gy0 = uint64_t{rect.y} + frame.origin_y();
  for (uint64_t row = gy0 / kTile; row * kTile < gy0 + rect.height; ++row) {
    for (uint64_t column = gx0 / kTile; column * kTile < gx0 + rect.width;
         ++column) {
      const gpu::Tile* tile = frame.GridTile(static_cast<uint32_t>(column),
                                             static_cast<uint32_t>(row));
      absl::StrAppend(&key, ":", tile ? tile->version : 0);
    }
  }
  absl::StatusOr<std::shared_ptr<const std::string>> data =
      GetOrEncode(key, [&] { return EncodeImage(frame, rect, options); });
  if (!data.ok()) return data.status();
  if ((*data)->size() > kMaxEncodedPieceBytes && rect.height > 1) {
    // Noise at high quality: halves, each under the message limit.
    const uint32_t half = rect.height / 2;
    VGPU_RETURN_IF_ERROR(EncodePiece(frame, {rect.x, rect.y, rect.width, half},
                                     options, pieces));
    return EncodePiece(frame,
                       {rect.x, rect.y + half, rect.width, rect.height - half},
                       options, pieces);
  }
  pieces->push_back({rect, options.kind, *std::move(data)});
  return absl::OkStatus();
}

absl::Status EncodeCache::EncodeAdaptiveParts(
    const gpu::Frame& frame, const gpu::PixelRect& rect,
    const EncodeOptions& options, std::vector<EncodedPiece>* pieces) {
  // Judge each 64x64 cell of the rect (frame-aligned); then, per row of
  // cells, runs of one kind become one piece. All pictures: one JPEG.
  struct Part {
    gpu::PixelRect rect;
    bool few;
  };
  std::vector<Part> parts;
  bool any_few = false;
  for (uint32_t y = rect.y; y < rect.y + rect.height;
       y = (y / kTile + 1) * kTile) {
    const uint32_t h =
        std::min((y / kTile + 1) * kTile, rect.y + rect.height) - y;
    for (uint32_t x = rect.x; x < rect.x + rect.width;
         x = (x / kTile + 1) * kTile) {
      const uint32_t w =
          std::min((x / kTile + 1) * kTile, rect.x + rect.width) - x;
      const gpu::PixelRect cell{x, y, w, h};
      const bool few = FewColours(frame, cell, kAdaptivePaletteColours);
      any_few |= few;
      if (!parts.empty() && parts.back().few == few &&
          parts.back().rect.y == y &&
          parts.back().rect.x + parts.back().rect.width == x) {
        parts.back().rect.width += w;
      } else {
        parts.push_back({cell, few});
      }
    }
  }
  EncodeOptions jpeg = options;
  jpeg.kind = ImageKind::kJpeg;
  if (!any_few) return EncodePiece(frame, rect, jpeg, pieces);
  EncodeOptions indexed = options;
  indexed.kind = ImageKind::kIndexed;
  for (const Part& part : parts) {
    VGPU_RETURN_IF_ERROR(
        EncodePiece(frame, part.rect, part.few ? indexed : jpeg, pieces));
  }
  return absl::OkStatus();
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
