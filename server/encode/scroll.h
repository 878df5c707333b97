// Scroll detection: where the new frame is the old one moved up or down
// (a console scrolling, a page scrolled), a viewer can be sent a copy of
// what it already shows plus the newly exposed rows, instead of pixels.
#pragma once

#include <cstdint>
#include <vector>

#include "device/gpu/frame.h"

namespace vgpu::server {

// Rows of `rect` (frame coordinates) in the new frame equal the rows of the
// old frame starting at `src_y`, in the same columns.
struct VerticalCopy {
  gpu::PixelRect rect;
  uint32_t src_y = 0;
  friend bool operator==(const VerticalCopy&, const VerticalCopy&) = default;
};

// Looks inside `area` (frame coordinates, inside both frames, which have the
// same size) for the one vertical shift that explains most of the rows that
// changed, by hashing each row of the area in both frames; returns the runs
// of at least kMinCopyRows rows that the shift reproduces exactly (compared
// pixel for pixel, not by hash), in the order to apply them one after the
// other on the old picture (top first when content moved up, bottom first
// when it moved down), or nothing.
// Reads the area of both frames once: O(area).
std::vector<VerticalCopy> FindVerticalCopies(const gpu::Frame& old_frame,
                                             const gpu::Frame& new_frame,
                                             const gpu::PixelRect& area);
inline constexpr uint32_t kMinCopyRows = 8;

// One hash per row of `area` (frame coordinates, inside the frame).
std::vector<size_t> HashRows(const gpu::Frame& frame,
                             const gpu::PixelRect& area);
// The same search with both frames' row hashes given (HashRows of `area`):
// a caller that searches again from the new frame keeps its hashes, so each
// frame is hashed once. Hashes of another size find nothing.
std::vector<VerticalCopy> FindVerticalCopies(
    const gpu::Frame& old_frame, const std::vector<size_t>& old_hashes,
    const gpu::Frame& new_frame, const std::vector<size_t>& new_hashes,
    const gpu::PixelRect& area);

// `rects` minus `holes`: the parts of each rect outside every hole (up to
// four pieces per rect and hole).
std::vector<gpu::PixelRect> SubtractRects(
    std::vector<gpu::PixelRect> rects,
    const std::vector<gpu::PixelRect>& holes);

}  // namespace vgpu::server
