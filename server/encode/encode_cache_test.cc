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
  EXPECT_EQ((*pieces)[0].rect, (gpu::PixelRect{0, 0, 128, 64}));
  EXPECT_EQ((*pieces)[0].data, nullptr);
  EXPECT_FALSE((*pieces)[0].solid);
  EXPECT_EQ(cache.stats().misses, 0u);
}

TEST(EncodeCacheTest, OneColourRunsAreSentAsTheColour) {
  gpu::TileGrid grid(300, 200);
  Fill(grid, {0, 0, 300, 200}, 0xFF112233);
  Fill(grid, {0, 64, 1, 1}, 0xFF000000);  // tile row 1 is not solid
  gpu::Frame frame(300, 200, 0, 0, grid.Snapshot(), grid.columns(), 1);
  EncodeCache cache;
  auto pieces =
      cache.Encode(frame, {{0, 0, 300, 200}}, {ImageKind::kPng}, 1 << 20);
  ASSERT_TRUE(pieces.ok());
  ASSERT_EQ(pieces->size(), 4u);  // one run per tile row
  EXPECT_TRUE((*pieces)[0].solid);
  EXPECT_EQ((*pieces)[0].solid_bgrx, 0x112233u);
  EXPECT_EQ((*pieces)[0].data, nullptr);
  EXPECT_FALSE((*pieces)[1].solid);
  EXPECT_NE((*pieces)[1].data, nullptr);
  EXPECT_TRUE((*pieces)[3].solid);  // the bottom row is partly past the edge
  EXPECT_EQ(cache.stats().solid, 3u);
}

TEST(EncodeCacheTest, SameTilesAreEncodedOncePerProfile) {
  gpu::TileGrid grid(300, 200);
  Gradient(grid, {0, 0, 300, 200}, 2);
  gpu::Frame frame(300, 200, 0, 0, grid.Snapshot(), grid.columns(), 1);
  EncodeCache cache;
  EncodeOptions raw{ImageKind::kZstdBgrx};
  auto first = cache.Encode(frame, {{10, 10, 100, 20}}, raw, 1 << 20);
  ASSERT_TRUE(first.ok());
  // One run of whole tiles: columns 0..1 of row 0, i.e. (0,0)-(128,64).
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].rect, (gpu::PixelRect{0, 0, 128, 64}));
  EXPECT_EQ(Pixels((*first)[0]).size(), 128u * 64 * 4);
  auto second = cache.Encode(frame, {{10, 10, 100, 20}}, raw, 1 << 20);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)[0].data, (*first)[0].data);  // the same bytes, shared
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().misses, 1u);
  // Another profile is another encoding.
  ASSERT_TRUE(
      cache.Encode(frame, {{10, 10, 100, 20}}, {ImageKind::kPng}, 1 << 20)
          .ok());
  EXPECT_EQ(cache.stats().misses, 2u);
}

TEST(EncodeCacheTest, AChangedTileIsEncodedAgainAndUnchangedNeighboursAreNot) {
  gpu::TileGrid grid(256, 64);
  Gradient(grid, {0, 0, 256, 64}, 3);
  EncodeCache cache;
  EncodeOptions raw{ImageKind::kZstdBgrx};
  gpu::Frame before(256, 64, 0, 0, grid.Snapshot(), grid.columns(), 1);
  // Small pieces: one tile per run.
  size_t one_tile = gpu::kTileBytes;
  ASSERT_TRUE(cache.Encode(before, {{0, 0, 256, 64}}, raw, one_tile).ok());
  EXPECT_EQ(cache.stats().misses, 4u);
  Fill(grid, {70, 5, 3, 3}, 0xFFFFFFFF);  // touches tile 1 only
  gpu::Frame after(256, 64, 0, 0, grid.Snapshot(), grid.columns(), 2);
  auto pieces = cache.Encode(after, {{0, 0, 256, 64}}, raw, one_tile);
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
  gpu::Frame frame(200, 100, 90, 60, grid.Snapshot(), grid.columns(),
                   1);  // shows (90,60)+
  EncodeCache cache;
  auto pieces =
      cache.Encode(frame, {{10, 10, 1, 1}}, {ImageKind::kZstdBgrx}, 1 << 20);
  ASSERT_TRUE(pieces.ok());
  ASSERT_EQ(pieces->size(), 1u);
  const EncodedPiece& piece = (*pieces)[0];
  // Grid tile (1,1) = grid (64..127, 64..127) = frame (0..37, 4..67).
  EXPECT_EQ(piece.rect, (gpu::PixelRect{0, 4, 38, 64}));
  uint32_t pixel;
  std::memcpy(&pixel, Pixels(piece).data() + ((10 - 4) * 38 + 10) * 4, 4);
  EXPECT_EQ(pixel, 0xFFABCDEFu);
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
