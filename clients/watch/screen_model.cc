#include "clients/watch/screen_model.h"

#include <png.h>
#include <zstd.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include <turbojpeg.h>

#include "common/indexed_codec.h"
#include "common/pixel_order.h"

namespace vgpu::watch {

namespace pb = vgpu::display::v1;

void ScreenModel::Resize(uint32_t width, uint32_t height) {
  width_ = width;
  height_ = height;
  pixels_.assign(size_t{width} * height * 4, 0);
}

absl::Status ScreenModel::Apply(const pb::StreamFramesResponse& event) {
  if (event.has_mode_changed()) {
    const pb::Scanout& scanout = event.mode_changed();
    Resize(scanout.enabled() ? scanout.width() : 0,
           scanout.enabled() ? scanout.height() : 0);
    return absl::OkStatus();
  }
  if (event.has_update()) return ApplyUpdate(event.update());
  return absl::OkStatus();
}

absl::Status DecodeRect(const pb::EncodedRect& rect,
                        std::vector<uint8_t>* bgrx) {
  const uint32_t w = rect.rect().width(), h = rect.rect().height();
  const size_t bytes = size_t{w} * h * 4;
  bgrx->resize(bytes);
  if (rect.solid()) {
    uint32_t pixel = rect.solid_bgrx();
    for (size_t i = 0; i < bytes; i += 4)
      std::memcpy(bgrx->data() + i, &pixel, 4);
    return absl::OkStatus();
  }
  const std::string& data = rect.data();
  switch (rect.format()) {
    case pb::IMAGE_FORMAT_RAW_BGRX:
      if (data.size() != bytes)
        return absl::DataLossError("raw rect of the wrong size");
      std::memcpy(bgrx->data(), data.data(), bytes);
      return absl::OkStatus();
    case pb::IMAGE_FORMAT_RAW_RGBX:
      if (data.size() != bytes)
        return absl::DataLossError("raw rect of the wrong size");
      std::memcpy(bgrx->data(), data.data(), bytes);
      SwapRedAndBlue(bgrx->data(), bytes / 4);
      return absl::OkStatus();
    case pb::IMAGE_FORMAT_INDEXED:
      return DecodeIndexed(data, w, h, bgrx->data());
    case pb::IMAGE_FORMAT_ZSTD_BGRX: {
      size_t size =
          ZSTD_decompress(bgrx->data(), bytes, data.data(), data.size());
      if (ZSTD_isError(size) || size != bytes)
        return absl::DataLossError("bad zstd rect");
      return absl::OkStatus();
    }
    case pb::IMAGE_FORMAT_JPEG: {
      std::unique_ptr<void, int (*)(tjhandle)> handle(tjInitDecompress(),
                                                      tjDestroy);
      if (tjDecompress2(handle.get(),
                        reinterpret_cast<const unsigned char*>(data.data()),
                        data.size(), bgrx->data(), static_cast<int>(w), 0,
                        static_cast<int>(h), TJPF_BGRX, TJFLAG_FASTDCT) != 0) {
        return absl::DataLossError("bad JPEG rect");
      }
      return absl::OkStatus();
    }
    case pb::IMAGE_FORMAT_PNG:
    case pb::IMAGE_FORMAT_UNSPECIFIED: {
      png_image image{};
      image.version = PNG_IMAGE_VERSION;
      if (!png_image_begin_read_from_memory(&image, data.data(), data.size())) {
        return absl::DataLossError("bad PNG rect");
      }
      image.format = PNG_FORMAT_BGRA;
      if (image.width != w || image.height != h ||
          !png_image_finish_read(&image, nullptr, bgrx->data(), 0, nullptr)) {
        png_image_free(&image);
        return absl::DataLossError("bad PNG rect");
      }
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown rect format ", rect.format()));
  }
}

absl::Status ScreenModel::ApplyUpdate(const pb::FrameUpdate& update) {
  for (const pb::CopyRect& copy : update.copies()) {
    const pb::Rect& r = copy.rect();
    if (uint64_t{r.x()} + r.width() > width_ ||
        uint64_t{r.y()} + r.height() > height_ ||
        uint64_t{copy.src_x()} + r.width() > width_ ||
        uint64_t{copy.src_y()} + r.height() > height_) {
      return absl::OutOfRangeError("copy rect outside the screen");
    }
    if (r.width() == 0 || r.height() == 0) continue;  // no pixel to index
    // Source and destination may overlap: walk rows away from the overlap.
    const size_t row_bytes = size_t{r.width()} * 4;
    const bool upwards = copy.src_y() < r.y();
    for (uint32_t i = 0; i < r.height(); ++i) {
      const uint32_t row = upwards ? r.height() - 1 - i : i;
      std::memmove(
          &pixels_[(size_t{r.y() + row} * width_ + r.x()) * 4],
          &pixels_[(size_t{copy.src_y() + row} * width_ + copy.src_x()) * 4],
          row_bytes);
    }
  }
  std::vector<uint8_t>& bgrx = scratch_;
  for (const pb::EncodedRect& rect : update.rects()) {
    const pb::Rect& r = rect.rect();
    if (uint64_t{r.x()} + r.width() > width_ ||
        uint64_t{r.y()} + r.height() > height_) {
      return absl::OutOfRangeError("update rect outside the screen");
    }
    if (r.width() == 0 || r.height() == 0) continue;
    if (absl::Status status = DecodeRect(rect, &bgrx); !status.ok())
      return status;
    for (uint32_t row = 0; row < r.height(); ++row) {
      std::memcpy(&pixels_[(size_t{r.y() + row} * width_ + r.x()) * 4],
                  &bgrx[size_t{row} * r.width() * 4], size_t{r.width()} * 4);
    }
  }
  return absl::OkStatus();
}

uint32_t ScreenModel::PixelAt(uint32_t x, uint32_t y) const {
  if (x >= width_ || y >= height_) return 0;
  uint32_t pixel;
  std::memcpy(&pixel, &pixels_[(size_t{y} * width_ + x) * 4], 4);
  return pixel;
}

std::string ScreenModel::ToPpm() const {
  std::string out = absl::StrCat("P6\n", width_, " ", height_, "\n255\n");
  size_t header = out.size();
  out.resize(header + size_t{width_} * height_ * 3);
  for (size_t i = 0; i < size_t{width_} * height_; ++i) {
    out[header + i * 3] = static_cast<char>(pixels_[i * 4 + 2]);
    out[header + i * 3 + 1] = static_cast<char>(pixels_[i * 4 + 1]);
    out[header + i * 3 + 2] = static_cast<char>(pixels_[i * 4]);
  }
  return out;
}

}  // namespace vgpu::watch
