#include "clients/common/output_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace vgpu::clients {

absl::Status CheckWritable(const std::string& path) {
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::string where = folder.empty() ? "." : folder.string();
  if (access(where.c_str(), W_OK) != 0 ||
      (access(path.c_str(), F_OK) == 0 && access(path.c_str(), W_OK) != 0)) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view bytes) {
  const std::string temp = path + ".partial";
  std::ofstream file(temp, std::ios::binary | std::ios::trunc);
  if (!file) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  }
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  int error = errno;
  if (!file || std::rename(temp.c_str(), path.c_str()) != 0) {
    if (file) error = errno;
    std::remove(temp.c_str());
    return absl::DataLossError(
        absl::StrCat("cannot write ", path, ": ", strerror(error)));
  }
  return absl::OkStatus();
}

}  // namespace vgpu::clients
