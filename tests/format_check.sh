#!/usr/bin/env bash
# Every C++ file of the project is formatted as .clang-format says (Google
# based, clang-format 14 as Debian ships it). Prints the files that are not.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cc' '*.h' 2>/dev/null || find common device server clients tests -name '*.cc' -o -name '*.h')
if ! clang-format --dry-run --Werror $files 2> /tmp/vgpu-format.$$; then
  grep -o '^[^: ]*\.\(cc\|h\):[0-9]*:[0-9]*: error' /tmp/vgpu-format.$$ | cut -d: -f1 | sort -u | sed 's/^/not formatted: /'
  rm -f /tmp/vgpu-format.$$
  echo "format check FAILED: run clang-format -i on the files above"
  exit 1
fi
rm -f /tmp/vgpu-format.$$
echo "format check: $(echo $files | wc -w) files formatted"
