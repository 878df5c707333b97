// Command-line handling shared by every vgpu-display program, on top of
// Abseil flags.
//
//   int main(int argc, char** argv) {
//     vgpu::cli::ParseOrExit(argc, argv, {"vgpu-shot", "a screenshot ..."});
//     if (absl::Status s = vgpu::cli::CheckRange("quality", q, 1, 100); ...)
//
// Rules (the same in all programs, documented in the README):
//   --help, --helpfull, --helpshort   the program's own flags, exit 0
//   --version                         "PROGRAM vgpu-display VERSION", exit 0
//   an unknown flag or a bad value    one line on stderr, exit 2 (kUsageExit)
// Values are checked before Abseil sees them, so its own multi-line errors
// (and its exit code 1) never show.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vgpu::cli {

// Exit code of a usage or start-up error (wrong flag, bad value, a listener
// that cannot be opened), as in sysexits' EX_USAGE convention of shells.
inline constexpr int kUsageExit = 2;
// Exit code of a client whose work failed (the daemon refused, a file
// could not be written).
inline constexpr int kFailureExit = 1;

struct Program {
  absl::string_view name;     // e.g. "vgpu-shot"
  absl::string_view summary;  // one line, then optional example lines
};

// The project version (CMake's project VERSION).
absl::string_view Version();

// Parses argv into the Abseil flags, or prints help / version / the error
// and exits. No program takes positional arguments: any is an error.
void ParseOrExit(int argc, char** argv, const Program& program);

// The help text ParseOrExit prints: the summary, then every flag this binary
// defines outside Abseil, sorted by name, with its default and meaning.
std::string HelpText(const Program& program);

// Prints "PROGRAM: message" to stderr and returns kUsageExit.
int UsageError(absl::string_view program, absl::string_view message);
// Prints "PROGRAM: message" to stderr and returns kFailureExit.
int Failure(absl::string_view program, absl::string_view message);

// The PEM file a flag names (TLS certificates, keys, CA bundles), read
// whole: InvalidArgument "--FLAG=PATH: cannot read: <system reason>" or
// "--FLAG=PATH: not a PEM file".
absl::StatusOr<std::string> ReadPemFlag(absl::string_view flag,
                                        const std::string& path);

// A secret token a flag names (a file holding one line): the line without
// surrounding white space. InvalidArgument "--FLAG=PATH: cannot read: ..."
// or when it is empty, longer than 1024 bytes, or not printable ASCII
// without spaces (it travels in a gRPC metadata header).
absl::StatusOr<std::string> ReadTokenFlag(absl::string_view flag,
                                          const std::string& path);

// "--NAME must be LO..HI (got VALUE)" unless LO <= value <= HI.
absl::Status CheckRange(absl::string_view flag, int64_t value, int64_t lo,
                        int64_t hi);

}  // namespace vgpu::cli
