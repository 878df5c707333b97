#include "common/cli.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

#ifndef VGPU_VERSION
#error "VGPU_VERSION comes from CMake's project(VERSION)"
#endif

namespace vgpu::cli {
namespace {

// Abseil's own flags (--flagfile, --fromenv, ...) are not the program's.
bool IsOwnFlag(const absl::CommandLineFlag& flag) {
  return !absl::StrContains(flag.Filename(), "absl/") && !flag.IsRetired();
}

// Wraps `text` at 76 columns, each line indented by `indent`.
std::string Wrap(absl::string_view text, absl::string_view indent) {
  std::string out, line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && line.size() + 1 + word.size() + indent.size() > 76) {
      absl::StrAppend(&out, indent, line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) absl::StrAppend(&out, indent, line, "\n");
  return out;
}

[[noreturn]] void Exit(absl::string_view program, absl::string_view message) {
  std::fprintf(stderr, "%.*s: %.*s (see --help)\n",
               static_cast<int>(program.size()), program.data(),
               static_cast<int>(message.size()), message.data());
  std::exit(kUsageExit);
}

// Checks one `--name[=value]` (value from the next argument for non-bool
// flags, as Abseil allows); advances *index past what it consumed.
void CheckArgument(const Program& program, int argc, char** argv, int* index) {
  absl::string_view arg = argv[*index];
  absl::string_view body = absl::StripPrefix(absl::StripPrefix(arg, "-"), "-");
  size_t equals = body.find('=');
  absl::string_view name = body.substr(0, equals);
  absl::string_view value;
  const bool has_value = equals != absl::string_view::npos;
  if (has_value) value = body.substr(equals + 1);

  if (name == "help" || name == "helpfull" || name == "helpshort" ||
      name == "helppackage" || name == "helpon" || name == "helpmatch") {
    std::fputs(HelpText(program).c_str(), stdout);
    std::exit(0);
  }
  if (name == "version") {
    std::printf("%.*s (vgpu-display) %.*s\n",
                static_cast<int>(program.name.size()), program.name.data(),
                static_cast<int>(Version().size()), Version().data());
    std::exit(0);
  }
  if (name == "flagfile" || name == "fromenv" || name == "tryfromenv" ||
      name == "undefok") {
    return;  // Abseil's own; it reports their errors itself
  }
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr && absl::StartsWith(name, "no") && !has_value) {
    absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
    if (negated != nullptr && negated->IsOfType<bool>()) return;
  }
  if (flag == nullptr || !IsOwnFlag(*flag)) {
    Exit(program.name, absl::StrCat("unknown flag --", name));
  }
  std::string text;
  if (has_value) {
    text = std::string(value);
  } else if (flag->IsOfType<bool>()) {
    text = "true";
  } else if (*index + 1 < argc) {
    text = argv[++*index];
  } else {
    Exit(program.name, absl::StrCat("--", name, " needs a value"));
  }
  // Parse a throwaway copy: the real assignment is Abseil's, below.
  std::string saved = flag->CurrentValue(), error;
  if (!flag->ParseFrom(text, &error)) {
    std::string hint = error;
    if (flag->IsOfType<absl::Duration>()) {
      hint = "a duration needs a unit, e.g. 10s, 500ms, 2m";
    } else if (flag->IsOfType<uint32_t>()) {
      hint = "must be a whole number, 0..4294967295";
    } else if (flag->IsOfType<uint64_t>()) {
      hint = "must be a whole number, 0 or more";
    } else if (flag->IsOfType<int32_t>() || flag->IsOfType<int64_t>()) {
      hint = "must be a whole number";
    } else if (flag->IsOfType<double>()) {
      hint = "must be a number";
    } else if (flag->IsOfType<bool>()) {
      hint = "must be true or false";
    } else if (hint.empty()) {
      hint = absl::StrCat("not a valid value (default: ", flag->DefaultValue(),
                          ")");
    }
    Exit(program.name, absl::StrCat("--", name, "=", text, ": ", hint));
  }
  flag->ParseFrom(saved, &error);
}

}  // namespace

absl::string_view Version() { return VGPU_VERSION; }

std::string HelpText(const Program& program) {
  std::string out =
      absl::StrCat(program.name, ": ", program.summary, "\n\n", "Flags:\n");
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (IsOwnFlag(*flag)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const absl::CommandLineFlag* a, const absl::CommandLineFlag* b) {
              return a->Name() < b->Name();
            });
  for (const absl::CommandLineFlag* flag : flags) {
    std::string default_value = flag->DefaultValue();
    absl::StrAppend(&out, "  --", flag->Name());
    if (flag->IsOfType<std::string>()) {
      absl::StrAppend(&out, " (default \"", default_value, "\")\n");
    } else {
      absl::StrAppend(&out, " (default ", default_value, ")\n");
    }
    absl::StrAppend(&out, Wrap(flag->Help(), "      "));
  }
  absl::StrAppend(&out,
                  "  --help     this text\n"
                  "  --version  the program's version\n");
  return out;
}

void ParseOrExit(int argc, char** argv, const Program& program) {
  absl::SetProgramUsageMessage(std::string(program.summary));
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argc) {
        Exit(program.name, absl::StrCat("unexpected argument '", argv[i + 1],
                                        "' (every option is a --flag)"));
      }
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      Exit(program.name, absl::StrCat("unexpected argument '", arg,
                                      "' (every option is a --flag)"));
    }
    CheckArgument(program, argc, argv, &i);
  }
  absl::ParseCommandLine(argc, argv);
}

namespace {

void PrintError(absl::string_view program, absl::string_view message) {
  std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(program.size()),
               program.data(), static_cast<int>(message.size()),
               message.data());
}

}  // namespace

int UsageError(absl::string_view program, absl::string_view message) {
  PrintError(program, message);
  return kUsageExit;
}

int Failure(absl::string_view program, absl::string_view message) {
  PrintError(program, message);
  return kFailureExit;
}

namespace {

absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag,
                                         const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, "=", path, ": cannot read: ", strerror(errno)));
  }
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFlag(absl::string_view flag,
                                          const std::string& path) {
  absl::StatusOr<std::string> text = ReadFlagFile(flag, path);
  if (!text.ok()) return text.status();
  const std::string token(absl::StripAsciiWhitespace(*text));
  const bool printable = std::all_of(
      token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (token.empty() || token.size() > 1024 || !printable) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, "=", path,
        ": want one line of 1..1024 printable characters, no spaces"));
  }
  return token;
}

absl::StatusOr<std::string> ReadPemFlag(absl::string_view flag,
                                        const std::string& path) {
  absl::StatusOr<std::string> read = ReadFlagFile(flag, path);
  if (!read.ok()) return read.status();
  const std::string& text = *read;
  if (!absl::StrContains(text, "-----BEGIN ")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": not a PEM file"));
  }
  return text;
}

absl::Status CheckRange(absl::string_view flag, int64_t value, int64_t lo,
                        int64_t hi) {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--", flag, " must be ", lo, "..", hi, " (got ", value, ")"));
}

}  // namespace vgpu::cli
