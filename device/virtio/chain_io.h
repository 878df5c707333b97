// Byte-stream views of a descriptor chain: the device-readable buffers read
// as one stream (gather), the device-writable buffers written as one sink
// (scatter). Every read copies out of guest memory.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"

namespace vgpu::virtio {

using BufferList = absl::InlinedVector<absl::Span<uint8_t>, 4>;

// Thread-compatible.
class ChainReader {
 public:
  explicit ChainReader(absl::Span<const absl::Span<uint8_t>> buffers);

  // Bytes not yet read.
  uint64_t remaining() const { return remaining_; }
  // Copies exactly out.size() bytes, or copies nothing and returns false.
  bool ReadBytes(absl::Span<uint8_t> out);
  // Skips up to `count` bytes; returns the number skipped.
  uint64_t Skip(uint64_t count);

  // Reads a trivially copyable wire struct, or nothing if too few bytes.
  template <typename T>
  std::optional<T> Read() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    if (!ReadBytes(
            absl::MakeSpan(reinterpret_cast<uint8_t*>(&value), sizeof(T)))) {
      return std::nullopt;
    }
    return value;
  }

 private:
  absl::Span<const absl::Span<uint8_t>> buffers_;
  size_t buffer_index_ = 0;
  uint64_t offset_in_buffer_ = 0;
  uint64_t remaining_ = 0;
};

// Thread-compatible.
class ChainWriter {
 public:
  explicit ChainWriter(absl::Span<const absl::Span<uint8_t>> buffers);

  uint64_t capacity() const { return capacity_; }
  uint64_t bytes_written() const { return written_; }
  // Writes as much of `data` as fits; returns the bytes written.
  uint64_t Write(absl::Span<const uint8_t> data);

  template <typename T>
  uint64_t WriteObject(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return Write(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&value),
                                     sizeof(T)));
  }

 private:
  absl::Span<const absl::Span<uint8_t>> buffers_;
  size_t buffer_index_ = 0;
  uint64_t offset_in_buffer_ = 0;
  uint64_t capacity_ = 0;
  uint64_t written_ = 0;
};

}  // namespace vgpu::virtio
