// Guest-facing errors: an absl::Status that carries the exact virtio-gpu
// response code as a payload, so "invalid resource" and "invalid scanout"
// stay distinct all the way to the reply.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace vgpu::gpu {

absl::Status InvalidResourceId(uint32_t resource_id);
absl::Status InvalidScanoutId(uint32_t scanout_id);
absl::Status InvalidParameter(absl::string_view why);
absl::Status OutOfMemory(absl::string_view why);
absl::Status Unspec(absl::string_view why);

// The VIRTIO_GPU_RESP_ERR_* code of a failed status; ERR_UNSPEC when the
// status carries none. Must not be called with an OK status.
uint32_t ToVirtioResp(const absl::Status& status);

}  // namespace vgpu::gpu
