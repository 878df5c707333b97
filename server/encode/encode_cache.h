// Encoded pieces of frames, shared by every viewer: a rect of given tile
// versions is encoded once per profile (format + quality), however many
// viewers ask for it. A piece's key is the profile, its rect and the
// versions of the grid tiles under it (a tile's version changes with every
// change of its pixels, so the key fixes the content). Viewers that keep up
// ask for the same rects (the device's damage), so they share pieces.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

#include "common/mutex.h"
#include "device/gpu/frame.h"
#include "server/encode/image_encoder.h"

namespace vgpu::server {

struct EncodedPiece {
  gpu::PixelRect rect;  // frame coordinates
  // What the piece is encoded as (for kAdaptive, kIndexed or kJpeg).
  ImageKind kind = ImageKind::kPng;
  // Null for raw BGRX (copying the frame's pixels straight into the message
  // is cheaper than caching them) and for solid pieces.
  std::shared_ptr<const std::string> data;
  // Every pixel is `solid_bgrx`: nothing to encode or send but the colour.
  bool solid = false;
  uint32_t solid_bgrx = 0;
};

struct EncodeCacheStats {
  uint64_t solid = 0;  // pieces sent as one colour
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t bytes = 0;  // currently held (allocated, not just used)
};

// Thread-safe.
class EncodeCache {
 public:
  explicit EncodeCache(size_t max_bytes = 64u << 20) : max_bytes_(max_bytes) {}

  // Returns `rects` (frame coordinates, clipped to the frame) encoded,
  // from the cache when another viewer already encoded the same pixels with
  // the same profile. Rects are cut into strips on tile rows when too large
  // for one piece: raw pieces hold at most `max_raw_piece_bytes`, encoded
  // ones kMaxEncodedPiecePixels (a whole 1080p screen is one JPEG); an
  // encoding over kMaxEncodedPieceBytes is made again in halves, so every
  // piece fits a 4 MiB message. One-colour pieces come back solid. With
  // kAdaptive, a piece of at most kAdaptivePaletteColours colours is
  // kIndexed, any other kJpeg (keys as for those kinds: shared with viewers
  // of them).
  absl::StatusOr<std::vector<EncodedPiece>> Encode(
      const gpu::Frame& frame, const std::vector<gpu::PixelRect>& rects,
      const EncodeOptions& options, size_t max_raw_piece_bytes);
  EncodeCacheStats stats() const;

  static constexpr uint64_t kMaxEncodedPiecePixels = uint64_t{1920} * 1088;
  static constexpr size_t kMaxEncodedPieceBytes = 3u << 20;
  static constexpr uint32_t kAdaptivePaletteColours = 32;

 private:
  absl::Status EncodePiece(const gpu::Frame& frame, const gpu::PixelRect& rect,
                           EncodeOptions options,
                           std::vector<EncodedPiece>* pieces);
  // An adaptive rect of mixed content: judged per 64x64 cell.
  absl::Status EncodeAdaptiveParts(const gpu::Frame& frame,
                                   const gpu::PixelRect& rect,
                                   const EncodeOptions& options,
                                   std::vector<EncodedPiece>* pieces);
  // The encoding of `key`, made by `encode` unless it is cached or another
  // thread is making it right now (then this one waits for that result).
  absl::StatusOr<std::shared_ptr<const std::string>> GetOrEncode(
      const std::string& key,
      const std::function<absl::StatusOr<std::string>()>& encode);

  const size_t max_bytes_;
  mutable Mutex mu_;
  std::list<std::string> lru_ VGPU_GUARDED_BY(mu_);  // most recent first
  struct Entry {
    std::shared_ptr<const std::string> data;    // null while being encoded
    std::list<std::string>::iterator position;  // valid once data is set
  };
  absl::flat_hash_map<std::string, Entry> entries_ VGPU_GUARDED_BY(mu_);
  EncodeCacheStats stats_ VGPU_GUARDED_BY(mu_);
};

}  // namespace vgpu::server
