// Compact updates undo exactly: random streams of updates (bands, refreshes,
// coalesced flushes, frames skipped) come back as they were, to the
// microsecond, and a typing update shrinks by what the client can derive.
#include "common/compact_update.h"

#include <random>

#include "gtest/gtest.h"

namespace vgpu {
namespace {

namespace pb = vgpu::display::v1;

TEST(CompactUpdateTest, RandomStreamsComeBackAsTheyWere) {
  std::mt19937_64 rng(11);
  for (int stream = 0; stream < 50; ++stream) {
    UpdateCompactor compactor;
    UpdateExpander expander;
    uint64_t sequence = rng() % 3;
    int64_t flush_ns = 1'700'000'000'000'000'000 + int64_t(rng() % 1'000'000);
    for (int update = 0; update < 200; ++update) {
      const bool refresh = rng() % 8 == 0;
      const uint32_t flushes = refresh ? 0 : uint32_t(rng() % 4);
      sequence += flushes + (rng() % 10 == 0 ? rng() % 5 : 0);
      // Now and then the clock steps back.
      if (!refresh) flush_ns += int64_t(rng() % 50'000'000) - 5'000'000;
      const int bands = 1 + int(rng() % 3);
      for (int band = 0; band < bands; ++band) {
        pb::FrameUpdate full;
        full.set_frame_sequence(sequence);
        full.set_flushes(flushes);
        full.set_refresh(refresh);
        if (!refresh) full.set_flush_time_unix_ns(flush_ns);
        full.set_send_time_unix_ns(flush_ns + 100'000);
        full.set_update_id(uint64_t(update) + 1);
        full.set_end_of_update(band == bands - 1);
        full.add_rects()->set_data("pixels");
        pb::FrameUpdate wire = full;
        compactor.Compact(&wire);
        EXPECT_EQ(wire.send_time_unix_ns(), 0);
        pb::FrameUpdate back = wire;
        expander.Expand(&back);
        full.clear_send_time_unix_ns();
        full.set_flush_time_unix_ns(full.flush_time_unix_ns() / 1000 * 1000);
        ASSERT_EQ(back.SerializeAsString(), full.SerializeAsString())
            << "stream " << stream << " update " << update << " band " << band
            << ": " << back.ShortDebugString() << " vs "
            << full.ShortDebugString();
      }
    }
  }
}

TEST(CompactUpdateTest, ATypedCharacterLosesItsDerivableFields) {
  UpdateCompactor compactor;
  pb::FrameUpdate update;
  int64_t flush_ns = 1'800'000'000'000'000'000;
  uint64_t sequence = 1000;
  size_t full_bytes = 0, compact_bytes = 0;
  for (int i = 0; i < 3; ++i) {
    update.set_frame_sequence(++sequence);
    update.set_flushes(1);
    update.set_flush_time_unix_ns(flush_ns += 33'000'000);  // 30 a second
    update.set_send_time_unix_ns(flush_ns + 400'000);
    update.set_update_id(uint64_t(i) + 7);
    update.set_end_of_update(true);
    full_bytes = update.ByteSizeLong();
    compactor.Compact(&update);
    compact_bytes = update.ByteSizeLong();
  }
  EXPECT_EQ(update.frame_sequence(), 0u);
  EXPECT_EQ(update.flush_time_unix_ns(), 0);
  EXPECT_EQ(update.flush_time_delta_us(), 33'000);
  EXPECT_LE(compact_bytes + 20, full_bytes);
}

}  // namespace
}  // namespace vgpu
