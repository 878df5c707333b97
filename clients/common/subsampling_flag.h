// The --subsampling flag of the command-line clients.
#pragma once

#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "vgpu/display/v1/display.pb.h"

namespace vgpu::clients {

inline constexpr char kSubsamplingHelp[] =
    "JPEG chroma subsampling: 420, 422, 444 or gray.";

// "420", "422", "444" or "gray" (any case); nullopt for anything else.
inline std::optional<vgpu::display::v1::JpegSubsampling> ParseSubsampling(
    const std::string& name) {
  vgpu::display::v1::JpegSubsampling subsampling;
  if (!vgpu::display::v1::JpegSubsampling_Parse(
          absl::AsciiStrToUpper(absl::StrCat("JPEG_SUBSAMPLING_", name)),
          &subsampling)) {
    return std::nullopt;
  }
  return subsampling;
}

}  // namespace vgpu::clients
