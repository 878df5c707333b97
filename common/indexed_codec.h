// IMAGE_FORMAT_INDEXED (vgpu/display/v1/display.proto): lossless, chosen by
// content. Pixels with at most 256 colours (text, UI) become a palette and
// packed indices (the indices zstd-compressed when that is smaller);
// anything else is zstd-compressed B,G,R,X. The server encodes it, clients
// decode it. Thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vgpu {

// `width` x `height` B,G,R,X pixels, rows width*4 bytes apart. X is not
// kept (decoded as 0).
absl::StatusOr<std::string> EncodeIndexed(const uint8_t* pixels, uint32_t width,
                                          uint32_t height);
// Into `bgrx` (width*height*4 bytes). DataLoss when `data` does not
// describe a `width` x `height` image.
absl::Status DecodeIndexed(const std::string& data, uint32_t width,
                           uint32_t height, uint8_t* bgrx);
// zstd (level 1) of `size` bytes, appended to `out`.
absl::Status AppendZstd(const void* bytes, size_t size, std::string* out);

}  // namespace vgpu
