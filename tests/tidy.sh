#!/usr/bin/env bash
# clang-tidy 14 with the repo's .clang-tidy over the project's own sources
# (tests and fuzz targets excluded), using a clang build's compile database.
# Any finding fails (WarningsAsErrors).
# Usage: tests/tidy.sh [CLANG_BUILD_DIR]   (default build/asan)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/asan}"
[ -f "$build/compile_commands.json" ] || { echo "tidy: no $build/compile_commands.json (build it first)"; exit 2; }
mapfile -t files < <(git ls-files 'common/*.cc' 'device/*.cc' 'server/*.cc' 'clients/*.cc' |
  grep -v -e '_test\.cc$' -e '/wire_check\.cc$')
log="$(mktemp)"
if run-clang-tidy-14 -p "$build" -quiet -j "${TIDY_JOBS:-2}" "${files[@]}" > "$log" 2>&1; then
  echo "tidy: ${#files[@]} files clean"
  rm -f "$log"
  exit 0
fi
grep -E 'error:|warning:' "$log" | grep -v 'warnings generated' | sort -u | head -200
echo "tidy FAILED: $(grep -cE ': error: ' "$log") findings in ${#files[@]} files"
rm -f "$log"
exit 1
