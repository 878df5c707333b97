// What a viewer's screen does with what the server sends it: copies (in
// order, overlapping like RFB CopyRect), rects of every edge case, and
// updates outside the screen refused without touching it.
#include "clients/watch/screen_model.h"

#include <cstring>

#include "gtest/gtest.h"

namespace vgpu::watch {
namespace {

namespace pb = vgpu::display::v1;

pb::EncodedRect* AddRaw(pb::FrameUpdate* update, uint32_t x, uint32_t y,
                        uint32_t w, uint32_t h, uint32_t pixel) {
  pb::EncodedRect* rect = update->add_rects();
  rect->mutable_rect()->set_x(x);
  rect->mutable_rect()->set_y(y);
  rect->mutable_rect()->set_width(w);
  rect->mutable_rect()->set_height(h);
  rect->set_format(pb::IMAGE_FORMAT_RAW_BGRX);
  std::string data(size_t{w} * h * 4, '\0');
  for (size_t i = 0; i < size_t{w} * h; ++i)
    std::memcpy(&data[i * 4], &pixel, 4);
  rect->set_data(data);
  return rect;
}

void AddCopy(pb::FrameUpdate* update, uint32_t x, uint32_t y, uint32_t w,
             uint32_t h, uint32_t src_x, uint32_t src_y) {
  pb::CopyRect* copy = update->add_copies();
  copy->mutable_rect()->set_x(x);
  copy->mutable_rect()->set_y(y);
  copy->mutable_rect()->set_width(w);
  copy->mutable_rect()->set_height(h);
  copy->set_src_x(src_x);
  copy->set_src_y(src_y);
}

TEST(ScreenModelTest, OverlappingCopiesActAsThroughABuffer) {
  ScreenModel screen;
  screen.Resize(4, 8);
  pb::FrameUpdate rows;
  for (uint32_t y = 0; y < 8; ++y) AddRaw(&rows, 0, y, 4, 1, y);
  ASSERT_TRUE(screen.ApplyUpdate(rows).ok());
  pb::FrameUpdate scroll;
  AddCopy(&scroll, 0, 0, 4, 6, 0, 2);  // up by two
  AddCopy(&scroll, 0, 3, 4, 5, 0, 2);  // then down by one
  ASSERT_TRUE(screen.ApplyUpdate(scroll).ok());
  const uint32_t want[8] = {2, 3, 4, 4, 5, 6, 7, 6};
  for (uint32_t y = 0; y < 8; ++y) EXPECT_EQ(screen.PixelAt(3, y), want[y]);
}

TEST(ScreenModelTest, EmptyRectsAndCopiesChangeNothing) {
  ScreenModel screen;
  screen.Resize(4, 4);
  pb::FrameUpdate update;
  AddRaw(&update, 0, 0, 4, 4, 9);
  AddRaw(&update, 4, 4, 0, 0, 1);  // at the far corner, no pixels
  AddRaw(&update, 4, 0, 0, 4, 1);
  AddCopy(&update, 4, 0, 0, 4, 4, 0);
  AddCopy(&update, 0, 4, 4, 0, 0, 4);
  ASSERT_TRUE(screen.ApplyUpdate(update).ok());
  for (uint32_t y = 0; y < 4; ++y)
    for (uint32_t x = 0; x < 4; ++x) EXPECT_EQ(screen.PixelAt(x, y), 9u);
  // Before any mode: only empty rects fit.
  ScreenModel none;
  pb::FrameUpdate empty;
  AddRaw(&empty, 0, 0, 0, 0, 1);
  AddCopy(&empty, 0, 0, 0, 0, 0, 0);
  EXPECT_TRUE(none.ApplyUpdate(empty).ok());
}

TEST(ScreenModelTest, RectsAndCopiesOutsideTheScreenAreRefused) {
  ScreenModel screen;
  screen.Resize(4, 4);
  pb::FrameUpdate rect;
  AddRaw(&rect, 2, 0, 3, 1, 1);
  EXPECT_EQ(screen.ApplyUpdate(rect).code(), absl::StatusCode::kOutOfRange);
  pb::FrameUpdate copy;
  AddCopy(&copy, 0, 0, 2, 2, 3, 0);
  EXPECT_EQ(screen.ApplyUpdate(copy).code(), absl::StatusCode::kOutOfRange);
  pb::FrameUpdate wrapped;  // 2^32 - 1 + 2 must not wrap into the screen
  AddCopy(&wrapped, 0xFFFFFFFFu, 0, 2, 1, 0, 0);
  EXPECT_EQ(screen.ApplyUpdate(wrapped).code(), absl::StatusCode::kOutOfRange);
  pb::FrameUpdate short_data;
  AddRaw(&short_data, 0, 0, 2, 2, 1)->mutable_data()->resize(3);
  EXPECT_FALSE(screen.ApplyUpdate(short_data).ok());
  EXPECT_EQ(screen.PixelAt(0, 0), 0u);
}

}  // namespace
}  // namespace vgpu::watch
