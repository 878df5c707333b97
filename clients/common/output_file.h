// Output files of the clients: found writable before any waiting, written
// whole or not at all.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace vgpu::clients {

// Whether `path` can be written (its folder, and the file if it exists);
// PermissionDenied "cannot write PATH: <system reason>" otherwise.
absl::Status CheckWritable(const std::string& path);

// Writes `bytes` to PATH.partial, then renames it over `path`: a failed or
// interrupted write never leaves half a file under `path`, nor replaces an
// earlier good one. Errors give the system's reason.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view bytes);

}  // namespace vgpu::clients
