#include "server/encode/encode_cache.h"

#include <zstd.h>

#include <cstring>

#include "gtest/gtest.h"

namespace vgpu::server {
namespace {

// Writes `color` into grid pixels `r`.
void Fill(gpu::TileGrid& grid, gpu::PixelRect r, uint32_t color) {
  std::vector<uint32_t> pixels(size_t{r.width} * r.height, color);
  gpu::GridStats stats;
  grid.WritePixels(r, reinterpret_cast<const uint8_t*>(pixels.data()),
                   size_t{r.width} * 4, &stats);
}

// Writes a gradient into grid pixels `r`, so tiles are not one solid colour.
void Gradient(gpu::TileGrid& grid, gpu::PixelRect r, uint32_t seed) {
  std::vector<uint32_t> pixels(size_t{r.width} * r.height);
  for (size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = 0xFF000000u | static_cast<uint32_t>(i * 3 + seed);
  gpu::GridStats stats;
  grid.WritePixels(r, reinterpret_cast<const uint8_t*>(pixels.data()),
                   size_t{r.width} * 4, &stats);
}

// The BGRX pixels of a zstd piece.
std::string Pixels(const EncodedPiece& piece) {
  std::string out(size_t{piece.rect.width} * piece.rect.height * 4, '\0');
  size_t size = ZSTD_decompress(out.data(), out.size(), piece.data->data(),
                                piece.data->size());
  EXPECT_EQ(size, out.size());
  return out;
}

TEST(EncodeCacheTest, RawPiecesCarryRectsOnly) {
  gpu::TileGrid grid(300, 200);
  Gradient(grid, {0, 0, 300, 200}, 1);
  gpu::Frame frame(300, 200, 0, 0, grid.Snapshot(), grid.columns(), 1);
  EncodeCache cache;
  auto pieces =
      cache.Encode(frame, {{10, 10, 100, 20}}, {ImageKind::kRawBgrx}, 1 << 20);
  ASSERT_TRUE(pieces.ok());
  ASSERT_EQ(pieces->size(), 1u);
  EXPECT_EQ((*pieces)[0].rect, (gpu::PixelRect{10, 10, 100, 20}));
  EXPECT_EQ((*pieces)[0].data, nullptr);
  EXPECT_FALSE((*pieces)[0].solid);
  EXPECT_EQ(cache.stats().misses, 0u);
}

TEST(EncodeCacheTest, OneColourRectsAreSentAsTheColour) {
  gpu::TileGrid grid(300, 200);
  Fill(grid, {0, 0, 300, 200}, 0xFF112233);
  Fill(grid, {0, 64, 1, 1}, 0xFF000000);
  gpu::Frame frame(300, 200, 0, 0, grid.Snapshot(), grid.columns(), 1);
  EncodeCache cache;
  auto pieces = cache.Encode(
      frame,
      {{0, 0, 300, 64}, {0, 64, 300, 64}, {1, 64, 50, 10}, {0, 128, 300, 72}},
      {ImageKind::kPng}, 1 << 20);
  ASSERT_TRUE(pieces.ok());
  ASSERT_EQ(pieces->size(), 4u);
  EXPECT_TRUE((*pieces)[0].solid);
  EXPECT_EQ((*pieces)[0].solid_bgrx, 0x112233u);
  EXPECT_EQ((*pieces)[0].data, nullptr);
  EXPECT_FALSE((*pieces)[1].solid);
  EXPECT_NE((*pieces)[1].data, nullptr);
  EXPECT_TRUE((*pieces)[2].solid);  // beside the odd pixel, inside its tile
  EXPECT_TRUE((*pieces)[3].solid);  // partly past the grid's edge
  EXPECT_EQ(cache.stats().solid, 3u);
}

TEST(EncodeCacheTest, SameRectOfTheSameTilesIsEncodedOncePerProfile) {
  gpu::TileGrid grid(300, 200);
  Gradient(grid, {0, 0, 300, 200}, 2);
  gpu::Frame frame(300, 200, 0, 0, grid.Snapshot(), grid.columns(), 1);
  EncodeCache cache;
  EncodeOptions zstd{ImageKind::kZstdBgrx};
  auto first = cache.Encode(frame, {{10, 10, 100, 20}}, zstd, 1 << 20);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].rect, (gpu::PixelRect{10, 10, 100, 20}));
  EXPECT_EQ(Pixels((*first)[0]).size(), 100u * 20 * 4);
  auto second = cache.Encode(frame, {{10, 10, 100, 20}}, zstd, 1 << 20);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)[0].data, (*first)[0].data);  // the same bytes, shared
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().misses, 1u);
  // JPEG settings do not split lossless viewers.
  EncodeOptions zstd_q30 = zstd;
  zstd_q30.jpeg_quality = 30;
  ASSERT_TRUE(cache.Encode(frame, {{10, 10, 100, 20}}, zstd_q30, 1 << 20).ok());
  EXPECT_EQ(cache.stats().hits, 2u);
  // Another profile is another encoding.
  ASSERT_TRUE(
      cache.Encode(frame, {{10, 10, 100, 20}}, {ImageKind::kPng}, 1 << 20)
          .ok());
  EXPECT_EQ(cache.stats().misses, 2u);
}

TEST(EncodeCacheTest, APieceIsEncodedAgainOnlyWhenATileUnderItChanged) {
  gpu::TileGrid grid(256, 64);
  Gradient(grid, {0, 0, 256, 64}, 3);
  EncodeCache cache;
  EncodeOptions zstd{ImageKind::kZstdBgrx};
  const std::vector<gpu::PixelRect> tiles = {
      {0, 0, 64, 64}, {64, 0, 64, 64}, {128, 0, 64, 64}, {192, 0, 64, 64}};
  gpu::Frame before(256, 64, 0, 0, grid.Snapshot(), grid.columns(), 1);
  ASSERT_TRUE(cache.Encode(before, tiles, zstd, 1 << 20).ok());
  EXPECT_EQ(cache.stats().misses, 4u);
  Fill(grid, {70, 5, 3, 3}, 0xFFFFFFFF);  // touches tile 1 only
  gpu::Frame after(256, 64, 0, 0, grid.Snapshot(), grid.columns(), 2);
  auto pieces = cache.Encode(after, tiles, zstd, 1 << 20);
  ASSERT_TRUE(pieces.ok());
  ASSERT_EQ(pieces->size(), 4u);
  EXPECT_EQ(cache.stats().misses, 5u);
  EXPECT_EQ(cache.stats().hits, 3u);
  uint32_t pixel;
  std::memcpy(&pixel, Pixels((*pieces)[1]).data() + (5 * 64 + 6) * 4, 4);
  EXPECT_EQ(pixel, 0xFFFFFFFFu);
}

TEST(EncodeCacheTest, FramesWithAnOffsetOriginMapToTheRightPixels) {
  gpu::TileGrid grid(400, 200);
  Fill(grid, {0, 0, 400, 200}, 0xFF000000);
  Fill(grid, {100, 70, 1, 1}, 0xFFABCDEF);
  Fill(grid, {101, 70, 1, 1}, 0xFF010203);
  gpu::Frame frame(200, 100, 90, 60, grid.Snapshot(), grid.columns(),
                   1);  // shows (90,60)+
  EncodeCache cache;
  auto pieces =
      cache.Encode(frame, {{10, 10, 2, 1}}, {ImageKind::kZstdBgrx}, 1 << 20);
  ASSERT_TRUE(pieces.ok());
  ASSERT_EQ(pieces->size(), 1u);
  const EncodedPiece& piece = (*pieces)[0];
  EXPECT_EQ(piece.rect, (gpu::PixelRect{10, 10, 2, 1}));
  uint32_t pixel;
  std::memcpy(&pixel, Pixels(piece).data(), 4);
  EXPECT_EQ(pixel, 0xFFABCDEFu);
}

TEST(EncodeCacheTest, LargeRectsAreStripsOnTileRowsUnderTheLimits) {
  gpu::TileGrid grid(1920, 1080);
  Gradient(grid, {0, 0, 1920, 1080}, 4);
  gpu::Frame frame(1920, 1080, 0, 0, grid.Snapshot(), grid.columns(), 1);
  EncodeCache cache;
  // Raw: strips of whole tile rows under the band budget.
  auto raw = cache.Encode(frame, {{0, 10, 1920, 1070}}, {ImageKind::kRawBgrx},
                          512u << 10);
  ASSERT_TRUE(raw.ok());
  ASSERT_GT(raw->size(), 1u);
  uint32_t covered = 0;
  for (const EncodedPiece& piece : *raw) {
    EXPECT_LE(size_t{piece.rect.width} * piece.rect.height * 4, 512u << 10);
    EXPECT_EQ(piece.rect.y, 10 + covered);
    if (&piece != &raw->front()) {
      EXPECT_EQ(piece.rect.y % gpu::kTileSize, 0u);
    }
    covered += piece.rect.height;
  }
  EXPECT_EQ(covered, 1070u);
  // JPEG: a whole 1080p screen is one piece.
  auto jpeg = cache.Encode(frame, {{0, 0, 1920, 1080}}, {ImageKind::kJpeg, 80},
                           512u << 10);
  ASSERT_TRUE(jpeg.ok());
  ASSERT_EQ(jpeg->size(), 1u);
  EXPECT_EQ((*jpeg)[0].rect, (gpu::PixelRect{0, 0, 1920, 1080}));
}

TEST(EncodeCacheTest, AdaptivePiecesAreIndexedTextAndJpegPictures) {
  gpu::TileGrid grid(256, 64);
  Gradient(grid, {128, 0, 128, 64}, 5);  // a picture on the right
  Fill(grid, {0, 0, 128, 64}, 0xFF101820);
  Fill(grid, {8, 8, 8, 16}, 0xFFE0E0E0);  // a character on the left
  gpu::Frame frame(256, 64, 0, 0, grid.Snapshot(), grid.columns(), 1);
  EncodeCache cache;
  auto pieces = cache.Encode(frame, {{0, 0, 128, 64}, {128, 0, 128, 64}},
                             {ImageKind::kAdaptive, 60}, 1 << 20);
  ASSERT_TRUE(pieces.ok());
  ASSERT_EQ(pieces->size(), 2u);
  EXPECT_EQ((*pieces)[0].kind, ImageKind::kIndexed);
  EXPECT_EQ((*pieces)[1].kind, ImageKind::kJpeg);
  // The same keys as for viewers of those formats: shared encodings.
  auto indexed = cache.Encode(frame, {{0, 0, 128, 64}},
                              {ImageKind::kIndexed, 60}, 1 << 20);
  ASSERT_TRUE(indexed.ok());
  EXPECT_EQ((*indexed)[0].data, (*pieces)[0].data);
  auto jpeg =
      cache.Encode(frame, {{128, 0, 128, 64}}, {ImageKind::kJpeg, 60}, 1 << 20);
  ASSERT_TRUE(jpeg.ok());
  EXPECT_EQ((*jpeg)[0].data, (*pieces)[1].data);
}

TEST(EncodeCacheTest, AnEncodingTooLargeForAMessageIsMadeInParts) {
  gpu::TileGrid grid(1920, 1080);
  std::vector<uint32_t> noise(size_t{1920} * 1080);
  uint32_t state = 12345;
  for (uint32_t& pixel : noise) {
    state = state * 1664525u + 1013904223u;
    pixel = state >> 8;
  }
  gpu::GridStats stats;
  grid.WritePixels({0, 0, 1920, 1080},
                   reinterpret_cast<const uint8_t*>(noise.data()), 1920 * 4,
                   &stats);
  gpu::Frame frame(1920, 1080, 0, 0, grid.Snapshot(), grid.columns(), 1);
  EncodeCache cache;
  auto pieces = cache.Encode(frame, {{0, 0, 1920, 1080}},
                             {ImageKind::kJpeg, 100, ChromaSubsampling::k444},
                             512u << 10);
  ASSERT_TRUE(pieces.ok());
  ASSERT_GT(pieces->size(), 1u);
  uint64_t area = 0;
  for (const EncodedPiece& piece : *pieces) {
    EXPECT_LE(piece.data->size(), EncodeCache::kMaxEncodedPieceBytes);
    area += uint64_t{piece.rect.width} * piece.rect.height;
  }
  EXPECT_EQ(area, uint64_t{1920} * 1080);
}

TEST(EncodeCacheTest, OldEntriesAreEvictedBeyondTheByteBudget) {
  gpu::TileGrid grid(64, 64);
  EncodeCache cache(25000);  // about two compressed gradient tiles
  for (uint32_t i = 0; i < 5; ++i) {
    Gradient(grid, {0, 0, 64, 64}, i);
    gpu::Frame frame(64, 64, 0, 0, grid.Snapshot(), grid.columns(), i);
    ASSERT_TRUE(
        cache.Encode(frame, {{0, 0, 64, 64}}, {ImageKind::kZstdBgrx}, 1 << 20)
            .ok());
  }
  EXPECT_LE(cache.stats().bytes, 25000u);
  EXPECT_GT(cache.stats().bytes, 0u);
}

}  // namespace
}  // namespace vgpu::server

namespace vgpu::server {
namespace {

// Encodings live in the cache for a long time: they must not keep the
// worst-case buffer they were made in (zstd's bound is larger than the raw
// pixels; a shrunk string keeps its capacity).
TEST(ImageEncoderTest, LosslessEncodingsHoldOnlyTheirBytes) {
  std::vector<uint32_t> pixels(256 * 256, 0xFF336699u);
  for (ImageKind kind : {ImageKind::kZstdBgrx, ImageKind::kPng}) {
    absl::StatusOr<std::string> out =
        EncodeBgrx(reinterpret_cast<const uint8_t*>(pixels.data()), 256, 256,
                   EncodeOptions{kind});
    ASSERT_TRUE(out.ok());
    EXPECT_LT(out->size(), 4096u);  // one colour compresses to almost nothing
    EXPECT_LE(out->capacity(), out->size() + 32);
  }
}

// One JPEG encoder serves frames (staged from tiles, strips on tile
// boundaries) and plain buffers: the same pixels give the same bytes, at
// an origin that puts the first strip mid-tile too.
TEST(ImageEncoderTest, JpegFromTilesEqualsJpegFromABuffer) {
  gpu::TileGrid grid(200, 150);
  Gradient(grid, {0, 0, 200, 150}, 7);
  gpu::Frame frame(180, 120, 10, 20, grid.Snapshot(), grid.columns(), 1);
  std::vector<uint8_t> pixels(180 * 120 * 4);
  frame.ReadPixels({0, 0, 180, 120}, pixels.data(), 180 * 4);
  for (ChromaSubsampling subsampling :
       {ChromaSubsampling::k420, ChromaSubsampling::k444,
        ChromaSubsampling::kGray}) {
    EncodeOptions options{ImageKind::kJpeg, 75, subsampling};
    absl::StatusOr<std::string> from_tiles =
        EncodeImage(frame, {0, 0, 180, 120}, options);
    absl::StatusOr<std::string> from_buffer =
        EncodeBgrx(pixels.data(), 180, 120, options);
    ASSERT_TRUE(from_tiles.ok() && from_buffer.ok());
    EXPECT_EQ(*from_tiles, *from_buffer);
  }
  EncodeOptions bad{ImageKind::kJpeg, 101};
  EXPECT_EQ(EncodeImage(frame, {0, 0, 10, 10}, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeBgrx(pixels.data(), 10, 10, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vgpu::server
