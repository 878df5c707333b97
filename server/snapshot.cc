#include "server/snapshot.h"

#include <cerrno>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"

namespace vgpu::server {

absl::Status WritePpm(const gpu::Frame& frame, const std::string& path) {
  const uint32_t width = frame.width(), height = frame.height();
  std::vector<uint8_t> bgrx(size_t{width} * 4);
  std::vector<uint8_t> rgb(size_t{width} * 3);
  std::string temp = path + ".tmp";
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr)
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", temp));
  std::fprintf(file, "P6\n%u %u\n255\n", width, height);
  bool ok = true;
  for (uint32_t y = 0; y < height && ok; ++y) {
    frame.ReadPixels(gpu::PixelRect{0, y, width, 1}, bgrx.data(), bgrx.size());
    for (size_t x = 0; x < width; ++x) {
      rgb[x * 3] = bgrx[x * 4 + 2];
      rgb[x * 3 + 1] = bgrx[x * 4 + 1];
      rgb[x * 3 + 2] = bgrx[x * 4];
    }
    ok = std::fwrite(rgb.data(), 1, rgb.size(), file) == rgb.size();
  }
  ok = (std::fclose(file) == 0) && ok;
  if (!ok || std::rename(temp.c_str(), path.c_str()) != 0) {
    std::remove(temp.c_str());
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

}  // namespace vgpu::server
