// Names of virtio-gpu command types and response codes as the virtio
// specification spells them without the VIRTIO_GPU_CMD_ / VIRTIO_GPU_RESP_
// prefix (logs, metrics labels).
#pragma once

#include <cstdint>

namespace vgpu::gpu::wire {

// "RESOURCE_FLUSH", ...; "unknown" for a type the spec does not define.
const char* CommandName(uint32_t type);
// "OK_NODATA", "ERR_INVALID_RESOURCE_ID", ...; "unknown" likewise.
const char* ResponseName(uint32_t code);

}  // namespace vgpu::gpu::wire
