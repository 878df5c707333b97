#include "common/indexed_codec.h"

#include <zstd.h>

#include <cstring>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

#include "common/status_macros.h"

namespace vgpu {
namespace {

uint32_t IndexBits(uint32_t colours) {
  return colours <= 2 ? 1 : colours <= 4 ? 2 : colours <= 16 ? 4 : 8;
}

}  // namespace

// zstd of `bytes`, into a per-thread scratch buffer appended to `out` at
// its size: a string shrunk from the worst-case bound would keep that
// capacity for as long as the encode cache holds it.
absl::Status AppendZstd(const void* bytes, size_t size, std::string* out) {
  thread_local std::vector<char> scratch;
  scratch.resize(ZSTD_compressBound(size));
  size_t made = ZSTD_compress(scratch.data(), scratch.size(), bytes, size, 1);
  if (ZSTD_isError(made))
    return absl::InternalError(absl::StrCat("zstd: ", ZSTD_getErrorName(made)));
  out->append(scratch.data(), made);
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeIndexed(const uint8_t* pixels, uint32_t width,
                                          uint32_t height) {
  const size_t count = size_t{width} * height;
  std::vector<uint32_t> palette;
  absl::flat_hash_map<uint32_t, uint8_t> index;
  std::vector<uint8_t> indices(count);
  uint32_t last = 0;
  uint8_t last_index = 0;
  bool few = true;
  for (size_t i = 0; i < count && few; ++i) {
    uint32_t pixel;
    std::memcpy(&pixel, pixels + i * 4, 4);
    pixel &= 0x00FFFFFFu;
    if (palette.empty() || pixel != last) {
      auto [it, added] =
          index.try_emplace(pixel, static_cast<uint8_t>(palette.size()));
      if (added) {
        if (palette.size() == 256) {
          few = false;
          break;
        }
        palette.push_back(pixel);
      }
      last = pixel;
      last_index = it->second;
    }
    indices[i] = last_index;
  }
  std::string out;
  if (few) {
    const uint32_t bits = IndexBits(static_cast<uint32_t>(palette.size()));
    const size_t row_bytes = (size_t{width} * bits + 7) / 8;
    std::vector<uint8_t> packed(row_bytes * height, 0);
    for (uint32_t y = 0; y < height; ++y) {
      uint8_t* row = packed.data() + y * row_bytes;
      for (uint32_t x = 0; x < width; ++x) {
        const size_t bit = size_t{x} * bits;
        row[bit / 8] |= static_cast<uint8_t>(indices[size_t{y} * width + x]
                                             << (8 - bits - bit % 8));
      }
    }
    out.push_back(1);
    out.push_back(static_cast<char>(palette.size() - 1));
    for (uint32_t colour : palette) {
      out.push_back(static_cast<char>(colour));
      out.push_back(static_cast<char>(colour >> 8));
      out.push_back(static_cast<char>(colour >> 16));
    }
    const size_t header = out.size();
    out.append(reinterpret_cast<const char*>(packed.data()), packed.size());
    if (packed.size() > 32) {  // a zstd frame costs a dozen bytes of its own
      std::string squeezed = out.substr(0, header);
      squeezed[0] = 2;
      VGPU_RETURN_IF_ERROR(AppendZstd(packed.data(), packed.size(), &squeezed));
      if (squeezed.size() < out.size()) out = std::move(squeezed);
    }
    return out;
  }
  out.push_back(0);
  VGPU_RETURN_IF_ERROR(AppendZstd(pixels, count * 4, &out));
  return out;
}

absl::Status DecodeIndexed(const std::string& data, uint32_t width,
                           uint32_t height, uint8_t* bgrx) {
  const size_t count = size_t{width} * height;
  if (data.empty()) return absl::DataLossError("empty indexed rect");
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  if (bytes[0] == 0) {
    size_t size = ZSTD_decompress(bgrx, count * 4, bytes + 1, data.size() - 1);
    if (ZSTD_isError(size) || size != count * 4)
      return absl::DataLossError("bad zstd in an indexed rect");
    return absl::OkStatus();
  }
  if ((bytes[0] != 1 && bytes[0] != 2) || data.size() < 2)
    return absl::DataLossError("bad indexed rect kind");
  const uint32_t colours = uint32_t{bytes[1]} + 1;
  const size_t header = 2 + size_t{colours} * 3;
  if (data.size() < header) return absl::DataLossError("short palette");
  const uint32_t bits = IndexBits(colours);
  const size_t row_bytes = (size_t{width} * bits + 7) / 8;
  std::vector<uint8_t> packed(row_bytes * height);
  if (bytes[0] == 1) {
    if (data.size() - header != packed.size())
      return absl::DataLossError("indices of the wrong size");
    std::memcpy(packed.data(), bytes + header, packed.size());
  } else {
    size_t size = ZSTD_decompress(packed.data(), packed.size(), bytes + header,
                                  data.size() - header);
    if (ZSTD_isError(size) || size != packed.size())
      return absl::DataLossError("bad zstd indices");
  }
  const uint8_t* palette = bytes + 2;
  for (uint32_t y = 0; y < height; ++y) {
    const uint8_t* row = packed.data() + y * row_bytes;
    for (uint32_t x = 0; x < width; ++x) {
      const size_t bit = size_t{x} * bits;
      const uint32_t i =
          (row[bit / 8] >> (8 - bits - bit % 8)) & ((1u << bits) - 1);
      if (i >= colours) return absl::DataLossError("index past the palette");
      uint8_t* out = bgrx + (size_t{y} * width + x) * 4;
      std::memcpy(out, palette + size_t{i} * 3, 3);
      out[3] = 0;
    }
  }
  return absl::OkStatus();
}

}  // namespace vgpu
