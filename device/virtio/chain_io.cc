#include "device/virtio/chain_io.h"

#include <algorithm>

namespace vgpu::virtio {

ChainReader::ChainReader(absl::Span<const absl::Span<uint8_t>> buffers)
    : buffers_(buffers) {
  for (const auto& buffer : buffers_) remaining_ += buffer.size();
}

bool ChainReader::ReadBytes(absl::Span<uint8_t> out) {
  if (out.size() > remaining_) return false;
  uint64_t copied = 0;
  while (copied < out.size()) {
    const absl::Span<uint8_t>& buffer = buffers_[buffer_index_];
    uint64_t piece = std::min<uint64_t>(out.size() - copied,
                                        buffer.size() - offset_in_buffer_);
    if (piece > 0)
      std::memcpy(out.data() + copied, buffer.data() + offset_in_buffer_,
                  piece);
    copied += piece;
    offset_in_buffer_ += piece;
    if (offset_in_buffer_ == buffer.size()) {
      ++buffer_index_;
      offset_in_buffer_ = 0;
    }
  }
  remaining_ -= out.size();
  return true;
}

uint64_t ChainReader::Skip(uint64_t count) {
  uint64_t skipped = std::min(count, remaining_);
  uint64_t left = skipped;
  while (left > 0) {
    const absl::Span<uint8_t>& buffer = buffers_[buffer_index_];
    uint64_t piece =
        std::min<uint64_t>(left, buffer.size() - offset_in_buffer_);
    left -= piece;
    offset_in_buffer_ += piece;
    if (offset_in_buffer_ == buffer.size()) {
      ++buffer_index_;
      offset_in_buffer_ = 0;
    }
  }
  remaining_ -= skipped;
  return skipped;
}

ChainWriter::ChainWriter(absl::Span<const absl::Span<uint8_t>> buffers)
    : buffers_(buffers) {
  for (const auto& buffer : buffers_) capacity_ += buffer.size();
}

uint64_t ChainWriter::Write(absl::Span<const uint8_t> data) {
  uint64_t to_write = std::min<uint64_t>(data.size(), capacity_ - written_);
  uint64_t copied = 0;
  while (copied < to_write) {
    const absl::Span<uint8_t>& buffer = buffers_[buffer_index_];
    uint64_t piece = std::min<uint64_t>(to_write - copied,
                                        buffer.size() - offset_in_buffer_);
    if (piece > 0)
      std::memcpy(buffer.data() + offset_in_buffer_, data.data() + copied,
                  piece);
    copied += piece;
    offset_in_buffer_ += piece;
    if (offset_in_buffer_ == buffer.size()) {
      ++buffer_index_;
      offset_in_buffer_ = 0;
    }
  }
  written_ += to_write;
  return to_write;
}

}  // namespace vgpu::virtio
