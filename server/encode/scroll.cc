#include "server/encode/scroll.h"

#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace vgpu::server {
namespace {

// Rows of the old frame that look like a given row. A row seen more often
// than this (a blank line) says nothing about the shift.
constexpr size_t kMaxTwins = 4;

alignas(64) constexpr uint8_t kZeros[gpu::kTileStride] = {};

// A row's pieces: at most one per 64 pixels of the widest scanout.
using Pieces = absl::InlinedVector<std::pair<const uint8_t*, size_t>, 72>;

// The rows of `area` of a frame, read in place: each row is one piece per
// grid tile it crosses.
class Rows {
 public:
  Rows(const gpu::Frame& frame, const gpu::PixelRect& area)
      : frame_(frame), area_(area) {}

  // Calls visit(piece, bytes) for the pieces of row y (area coordinates)
  // until it returns false; returns whether every call returned true.
  template <typename Visit>
  bool ForEachPiece(uint32_t y, Visit visit) const {
    const uint64_t gy = uint64_t{frame_.origin_y()} + area_.y + y;
    const uint32_t tile_row = static_cast<uint32_t>(gy / gpu::kTileSize);
    const size_t in_tile = size_t{gy % gpu::kTileSize} * gpu::kTileStride;
    uint64_t gx = uint64_t{frame_.origin_x()} + area_.x;
    const uint64_t end = gx + area_.width;
    while (gx < end) {
      const uint64_t tile_end = (gx / gpu::kTileSize + 1) * gpu::kTileSize;
      const size_t bytes = (std::min(end, tile_end) - gx) * gpu::kBytesPerPixel;
      const gpu::Tile* tile =
          frame_.GridTile(static_cast<uint32_t>(gx / gpu::kTileSize), tile_row);
      const uint8_t* piece =
          tile ? tile->pixels + in_tile +
                     (gx % gpu::kTileSize) * gpu::kBytesPerPixel
               : kZeros;
      if (!visit(piece, bytes)) return false;
      gx = std::min(end, tile_end);
    }
    return true;
  }
  size_t Hash(uint32_t y) const {
    size_t hash = 0;
    ForEachPiece(y, [&hash](const uint8_t* piece, size_t bytes) {
      // absl's string_view: Debian's Abseil hashes std::string_view with
      // std::hash, several times slower.
      hash = absl::HashOf(
          hash, absl::string_view(reinterpret_cast<const char*>(piece), bytes));
      return true;
    });
    return hash;
  }
  // Whether row y of this equals row `other_y` of `other` (same area size).
  bool Equal(uint32_t y, const Rows& other, uint32_t other_y) const {
    Pieces mine, theirs;
    ForEachPiece(y, [&mine](const uint8_t* piece, size_t bytes) {
      mine.emplace_back(piece, bytes);
      return true;
    });
    other.ForEachPiece(other_y, [&theirs](const uint8_t* piece, size_t bytes) {
      theirs.emplace_back(piece, bytes);
      return true;
    });
    // Walk both lists of pieces (their boundaries differ when the frames'
    // origins do).
    size_t i = 0, j = 0, at_i = 0, at_j = 0;
    while (i < mine.size() && j < theirs.size()) {
      const size_t n = std::min(mine[i].second - at_i, theirs[j].second - at_j);
      if (std::memcmp(mine[i].first + at_i, theirs[j].first + at_j, n) != 0)
        return false;
      at_i += n;
      at_j += n;
      if (at_i == mine[i].second) ++i, at_i = 0;
      if (at_j == theirs[j].second) ++j, at_j = 0;
    }
    return true;
  }

 private:
  const gpu::Frame& frame_;
  const gpu::PixelRect area_;
};

}  // namespace

std::vector<size_t> HashRows(const gpu::Frame& frame,
                             const gpu::PixelRect& area) {
  const Rows rows(frame, area);
  std::vector<size_t> hashes(area.height);
  for (uint32_t y = 0; y < area.height; ++y) hashes[y] = rows.Hash(y);
  return hashes;
}

std::vector<VerticalCopy> FindVerticalCopies(const gpu::Frame& old_frame,
                                             const gpu::Frame& new_frame,
                                             const gpu::PixelRect& area) {
  if (area.width == 0 || area.height < 2 * kMinCopyRows) return {};
  return FindVerticalCopies(old_frame, HashRows(old_frame, area), new_frame,
                            HashRows(new_frame, area), area);
}

std::vector<VerticalCopy> FindVerticalCopies(
    const gpu::Frame& old_frame, const std::vector<size_t>& old_hash,
    const gpu::Frame& new_frame, const std::vector<size_t>& new_hash,
    const gpu::PixelRect& area) {
  if (area.width == 0 || area.height < 2 * kMinCopyRows ||
      old_hash.size() != area.height || new_hash.size() != area.height) {
    return {};
  }
  const Rows old_rows(old_frame, area), new_rows(new_frame, area);
  absl::flat_hash_map<size_t, absl::InlinedVector<uint32_t, kMaxTwins>> rows;
  for (uint32_t y = 0; y < area.height; ++y) {
    auto& twins = rows[old_hash[y]];
    if (twins.size() <= kMaxTwins) twins.push_back(y);
  }
  // Every changed row votes for the shifts that would bring it from the
  // old frame.
  absl::flat_hash_map<int64_t, uint32_t> votes;
  for (uint32_t y = 0; y < area.height; ++y) {
    if (new_hash[y] == old_hash[y]) continue;
    auto it = rows.find(new_hash[y]);
    if (it == rows.end() || it->second.size() > kMaxTwins) continue;
    for (uint32_t from : it->second) ++votes[int64_t{from} - y];
  }
  int64_t shift = 0;
  uint32_t best = 0;
  for (const auto& [dy, count] : votes) {
    if (dy != 0 && (count > best || (count == best && dy < shift))) {
      shift = dy;
      best = count;
    }
  }
  if (best < kMinCopyRows) return {};
  // Runs of rows the shift reproduces exactly, with enough changed rows in
  // them to be worth a copy.
  std::vector<VerticalCopy> copies;
  uint32_t start = 0, changed = 0;
  auto close_run = [&](uint32_t end) {
    if (end - start >= kMinCopyRows && changed >= kMinCopyRows) {
      copies.push_back(
          {{area.x, area.y + start, area.width, end - start},
           static_cast<uint32_t>(int64_t{area.y} + start + shift)});
    }
  };
  for (uint32_t y = 0; y <= area.height; ++y) {
    const int64_t from = int64_t{y} + shift;
    const bool match = y < area.height && from >= 0 && from < area.height &&
                       new_hash[y] == old_hash[from] &&
                       new_rows.Equal(y, old_rows, static_cast<uint32_t>(from));
    if (match) {
      changed += new_hash[y] != old_hash[y];
      continue;
    }
    close_run(y);
    start = y + 1;
    changed = 0;
  }
  // Content moved down: a lower run's source may be a higher run's
  // destination, so the lower one goes first.
  if (shift < 0) std::reverse(copies.begin(), copies.end());
  return copies;
}

std::vector<gpu::PixelRect> SubtractRects(
    std::vector<gpu::PixelRect> rects,
    const std::vector<gpu::PixelRect>& holes) {
  for (const gpu::PixelRect& hole : holes) {
    std::vector<gpu::PixelRect> left;
    for (const gpu::PixelRect& r : rects) {
      const gpu::PixelRect cut = gpu::Intersect(r, hole);
      if (cut.empty()) {
        left.push_back(r);
        continue;
      }
      const uint32_t r_bottom = r.y + r.height, cut_bottom = cut.y + cut.height;
      if (cut.y > r.y) left.push_back({r.x, r.y, r.width, cut.y - r.y});
      if (cut_bottom < r_bottom)
        left.push_back({r.x, cut_bottom, r.width, r_bottom - cut_bottom});
      if (cut.x > r.x) left.push_back({r.x, cut.y, cut.x - r.x, cut.height});
      const uint32_t r_right = r.x + r.width, cut_right = cut.x + cut.width;
      if (cut_right < r_right)
        left.push_back({cut_right, cut.y, r_right - cut_right, cut.height});
    }
    rects = std::move(left);
  }
  return rects;
}

}  // namespace vgpu::server
