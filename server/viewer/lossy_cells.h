// Which parts of a viewer's screen it last received lossy (JPEG), and when:
// the bookkeeping behind lossless refresh. The screen is divided into
// 64x64 cells in scanout coordinates.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/time/time.h"

#include "device/gpu/frame.h"
#include "server/encode/damage_map.h"

namespace vgpu::server {

// Not thread-safe (the viewer's lock guards it).
class LossyCells {
 public:
  // A new mode: nothing is lossy.
  void Reset(uint32_t width, uint32_t height);
  // `rect` was just sent lossy (at `when`).
  void Mark(const gpu::PixelRect& rect, absl::Time when);
  // `rect` was just sent losslessly: the cells it covers whole are exact.
  void Clear(const gpu::PixelRect& rect);
  // Removes and returns, as runs of cells clipped to the screen, every cell
  // marked at or before `settled_by` that no damage in `pending` touches
  // (those are about to be sent again anyway).
  std::vector<gpu::PixelRect> TakeSettled(absl::Time settled_by,
                                          const DamageMap& pending);
  // The earliest mark held; InfiniteFuture when nothing is lossy.
  absl::Time Oldest() const;
  bool empty() const { return count_ == 0; }

 private:
  // Calls visit(index) for every cell `rect` touches.
  template <typename Visit>
  void ForCells(const gpu::PixelRect& rect, Visit visit) const;

  uint32_t width_ = 0, height_ = 0, columns_ = 0, rows_ = 0;
  std::vector<absl::Time> marked_;  // InfiniteFuture: not lossy
  size_t count_ = 0;                // cells marked
};

}  // namespace vgpu::server
