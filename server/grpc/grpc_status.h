// absl::Status → grpc::Status: the codes are the same numbers in both.
#pragma once

#include <string>

#include "absl/status/status.h"
#include <grpcpp/grpcpp.h>

namespace vgpu::server {

inline grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace vgpu::server
