// Subscribe.compact_updates (vgpu/display/v1/display.proto): what the server
// leaves out of each FrameUpdate and the client works out again from the
// messages before it. One of each per stream, fed every FrameUpdate of the
// stream in order. Thread-compatible.
#pragma once

#include <cstdint>

#include "vgpu/display/v1/display.pb.h"

namespace vgpu {

// Server side.
class UpdateCompactor {
 public:
  // Rewrites a complete `update` in place: clears send_time_unix_ns, turns
  // flush_time_unix_ns into flush_time_delta_us after the first, clears
  // frame_sequence where it follows from the message before, and the
  // format of solid rects.
  void Compact(vgpu::display::v1::FrameUpdate* update);

 private:
  int64_t flush_us_ = 0;  // the last message's with one; 0 before any
  uint64_t sequence_ = 0;
  bool in_update_ = false;  // the last message was not an update's end
};

// Client side.
class UpdateExpander {
 public:
  // Restores frame_sequence and flush_time_unix_ns (to the microsecond) of
  // an update compacted by UpdateCompactor. Only for streams that asked for
  // compact updates.
  void Expand(vgpu::display::v1::FrameUpdate* update);

 private:
  int64_t flush_us_ = 0;
  uint64_t sequence_ = 0;
  bool in_update_ = false;
};

}  // namespace vgpu
