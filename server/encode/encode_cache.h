// Encoded pieces of frames, shared by every viewer: each tile version is
// encoded once per profile (format + quality), however many viewers show it.
// A piece is a run of whole tiles in one tile row; its key is the profile,
// the run's position in the tile grid and the versions of its tiles (a
// tile's version changes with every write, so the key fixes the content).
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

  // Splits `damage` (frame coordinates) into tile-row runs no larger than
  // `max_piece_bytes` raw, and returns each encoded, from the cache when
  // another viewer already encoded the same tiles with the same profile.
  absl::StatusOr<std::vector<EncodedPiece>> Encode(
      const gpu::Frame& frame, const std::vector<gpu::PixelRect>& damage,
      const EncodeOptions& options, size_t max_piece_bytes);
  EncodeCacheStats stats() const;

 private:
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
