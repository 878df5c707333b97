// Writes a frame to disk as a binary PPM (P6), atomically (temp + rename),
// so a viewer polling the file never sees half an image.
#pragma once

#include <string>

#include "absl/status/status.h"

#include "device/gpu/frame.h"

namespace vgpu::server {

absl::Status WritePpm(const gpu::Frame& frame, const std::string& path);

}  // namespace vgpu::server
