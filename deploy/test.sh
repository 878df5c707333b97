#!/usr/bin/env bash
# The test command (README): installs dependencies, checks formatting,
# builds the release, ASan+UBSan and TSan configurations and runs every test
# in each, runs clang-tidy, boots a real Linux guest under real QEMU against vgpu-displayd
# (tests/e2e) and soaks it briefly (reboots and a killed QEMU with viewers
# attached), then builds the libFuzzer targets and runs each for a bounded
# time.
#   FUZZ_SECONDS=N  seconds per fuzz target (default 60)
#   SOAK_REBOOTS=N, SOAK_KILLS=N  the soak's guest reboots and QEMU kills
#                   (default 1 and 1; tests/e2e/soak.sh alone defaults to 5 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds="${FUZZ_SECONDS:-60}"

./deploy/install-deps.sh

echo "== format and layering"
tests/format_check.sh
tests/layering_check.sh

echo "== release build and tests"
cmake --workflow --preset release

echo "== real QEMU + real Linux guest against vgpu-displayd (tests/e2e)"
tests/e2e/run.sh build/release
REBOOTS="${SOAK_REBOOTS:-1}" KILLS="${SOAK_KILLS:-1}" tests/e2e/soak.sh build/release

echo "== asan+ubsan build and tests"
cmake --workflow --preset asan

echo "== clang-tidy (the asan build's compile database)"
tests/tidy.sh build/asan

echo "== tsan build and tests"
cmake --workflow --preset tsan

echo "== fuzz targets (${fuzz_seconds}s each)"
fuzzers=(virtio_gpu_command_fuzzer virtqueue_fuzzer vhost_user_message_fuzzer rfb_client_fuzzer
         service_request_fuzzer input_device_fuzzer)
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${fuzzers[@]}"
for name in "${fuzzers[@]}"; do
  seeds="tests/fuzz/corpus/${name%_fuzzer}"
  scratch="$(mktemp -d)"
  echo "-- $name"
  # New inputs go to a scratch directory; the committed seeds stay as they are.
  LSAN_OPTIONS="suppressions=$PWD/cmake/lsan.supp" \
  build/fuzz/tests/fuzz/"$name" -max_total_time="$fuzz_seconds" -print_final_stats=1 \
    -rss_limit_mb=4096 "$scratch" "$seeds" 2>&1 | tail -n 12
  rm -rf "$scratch"
done
echo "all tests passed"
