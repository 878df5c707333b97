#!/usr/bin/env bash
# The test command (README): installs dependencies, builds the release and
# the sanitizer (ASan+UBSan) configurations, runs every test in both, boots a
# real Linux guest under real QEMU against vgpu-displayd (tests/e2e), then
# builds the libFuzzer targets and runs each for a bounded time.
#   FUZZ_SECONDS=N  seconds per fuzz target (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds="${FUZZ_SECONDS:-60}"

./deploy/install-deps.sh

echo "== release build and tests"
cmake --workflow --preset release

echo "== real QEMU + real Linux guest against vgpu-displayd (tests/e2e)"
tests/e2e/run.sh build/release

echo "== asan+ubsan build and tests"
cmake --workflow --preset asan

echo "== fuzz targets (${fuzz_seconds}s each)"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target virtio_gpu_command_fuzzer virtqueue_fuzzer
for fuzzer in build/fuzz/tests/fuzz/*_fuzzer; do
  [ -x "$fuzzer" ] || continue
  name="$(basename "$fuzzer")"
  seeds="tests/fuzz/corpus/${name%_fuzzer}"
  scratch="$(mktemp -d)"
  echo "-- $name"
  # New inputs go to a scratch directory; the committed seeds stay as they are.
  "$fuzzer" -max_total_time="$fuzz_seconds" -print_final_stats=1 -rss_limit_mb=4096 \
    "$scratch" "$seeds" 2>&1 | tail -n 12
  rm -rf "$scratch"
done
echo "all tests passed"
