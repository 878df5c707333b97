#include "common/compact_update.h"

namespace vgpu {

namespace pb = vgpu::display::v1;

void UpdateCompactor::Compact(pb::FrameUpdate* update) {
  update->clear_send_time_unix_ns();
  if (const int64_t ns = update->flush_time_unix_ns(); ns != 0) {
    const int64_t us = ns / 1000;
    if (flush_us_ == 0) {
      update->set_flush_time_unix_ns(us * 1000);
    } else {
      update->clear_flush_time_unix_ns();
      update->set_flush_time_delta_us(us - flush_us_);
    }
    flush_us_ = us;
  }
  const uint64_t sequence = update->frame_sequence();
  const uint64_t expected =
      in_update_ ? sequence_ : sequence_ + update->flushes();
  if (sequence == expected) update->clear_frame_sequence();
  sequence_ = sequence;
  in_update_ = !update->end_of_update();
  for (pb::EncodedRect& rect : *update->mutable_rects()) {
    if (rect.solid()) rect.clear_format();  // a colour needs none
  }
}

void UpdateExpander::Expand(pb::FrameUpdate* update) {
  if (update->flush_time_unix_ns() != 0) {
    flush_us_ = update->flush_time_unix_ns() / 1000;
  } else if (!update->refresh() && flush_us_ != 0) {
    flush_us_ += update->flush_time_delta_us();
    update->set_flush_time_unix_ns(flush_us_ * 1000);
  }
  update->clear_flush_time_delta_us();
  if (update->frame_sequence() == 0) {
    update->set_frame_sequence(in_update_ ? sequence_
                                          : sequence_ + update->flushes());
  }
  sequence_ = update->frame_sequence();
  in_update_ = !update->end_of_update();
}

}  // namespace vgpu
