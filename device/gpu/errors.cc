#include "device/gpu/errors.h"

#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

#include "device/gpu/wire.h"

namespace vgpu::gpu {
namespace {

constexpr absl::string_view kRespPayload = "vgpu.virtio_gpu_resp";

absl::Status WithResp(absl::StatusCode code, absl::string_view message,
                      uint32_t resp) {
  absl::Status status(code, message);
  char bytes[sizeof(resp)];
  std::memcpy(bytes, &resp, sizeof(resp));
  status.SetPayload(kRespPayload,
                    absl::Cord(absl::string_view(bytes, sizeof(bytes))));
  return status;
}

}  // namespace

absl::Status InvalidResourceId(uint32_t resource_id) {
  return WithResp(absl::StatusCode::kNotFound,
                  absl::StrCat("invalid resource id ", resource_id),
                  wire::kRespErrInvalidResourceId);
}

absl::Status InvalidScanoutId(uint32_t scanout_id) {
  return WithResp(absl::StatusCode::kOutOfRange,
                  absl::StrCat("invalid scanout id ", scanout_id),
                  wire::kRespErrInvalidScanoutId);
}

absl::Status InvalidParameter(absl::string_view why) {
  return WithResp(absl::StatusCode::kInvalidArgument, why,
                  wire::kRespErrInvalidParameter);
}

absl::Status OutOfMemory(absl::string_view why) {
  return WithResp(absl::StatusCode::kResourceExhausted, why,
                  wire::kRespErrOutOfMemory);
}

absl::Status Unspec(absl::string_view why) {
  return WithResp(absl::StatusCode::kFailedPrecondition, why,
                  wire::kRespErrUnspec);
}

uint32_t ToVirtioResp(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kRespPayload);
  if (!payload || payload->size() != sizeof(uint32_t))
    return wire::kRespErrUnspec;
  std::string flat(*payload);
  uint32_t resp;
  std::memcpy(&resp, flat.data(), sizeof(resp));
  return resp;
}

}  // namespace vgpu::gpu
