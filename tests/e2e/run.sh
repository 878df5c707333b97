#!/usr/bin/env bash
# Real QEMU, real Linux guest: boots Debian's kernel with a busybox
# initramfs under QEMU 10 (TCG) with -device vhost-user-gpu-pci against
# vgpu-displayd, and checks pixel for pixel that the daemon's scanout shows
# what the guest wrote to /dev/fb0 (two test patterns), that console text is
# drawn, and that the display comes back after a guest reboot.
# Usage: run.sh BUILD_DIR [CACHE_DIR]     (BUILD_DIR holds the release build)
set -euo pipefail
build="$(cd "$1" && pwd)"
cache="${2:-$build/e2e-cache}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
width=1280 height=800
started=$SECONDS

"$here/fetch.sh" "$cache"
tool="$build/tests/e2e/e2e_tool"
daemon="$build/server/vgpu-displayd"
"$here/build_initramfs.sh" "$cache" "$tool" "$width" "$height" "$cache/initrd.gz"

run="$(mktemp -d /tmp/vgpu-e2e-XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
fail() {
  echo "E2E FAIL: $*"
  echo "--- serial"; cat "$run/serial.log" 2>/dev/null || true
  echo "--- qemu"; cat "$run/qemu.log" 2>/dev/null || true
  echo "--- vgpu-displayd"; tail -n 40 "$run/daemon.log" 2>/dev/null || true
  exit 1
}
# Waits until the serial console has printed marker $1 $2 times.
wait_serial() {
  local marker="$1" count="$2" deadline=$((SECONDS + 60))
  local seen
  while seen="$(grep -c "E2E PHASE $marker" "$run/serial.log" 2>/dev/null || true)"; [ "${seen:-0}" -lt "$count" ]; do
    [ $SECONDS -lt $deadline ] || fail "no '$marker' (#$count) on the serial console within 60 s"
    grep -q "E2E PHASE NOFB" "$run/serial.log" 2>/dev/null && fail "the guest found no /dev/fb0"
    sleep 0.2
  done
}
# Waits until the daemon's snapshot equals expected image $1.
wait_pixels() {
  local expected="$1" deadline=$((SECONDS + 15)) result=""
  while [ $SECONDS -lt $deadline ]; do
    if [ -f "$run/screen.ppm" ] && result="$("$tool" diff "$expected" "$run/screen.ppm")"; then
      echo "  $(basename "$expected"): $result"
      return 0
    fi
    sleep 0.2
  done
  fail "scanout never matched $(basename "$expected"): ${result:-no snapshot}"
}
wait_text() {
  local deadline=$((SECONDS + 15)) result=""
  while [ $SECONDS -lt $deadline ]; do
    if [ -f "$run/screen.ppm" ] && result="$("$tool" text "$run/screen.ppm" 40)"; then
      echo "  console text: $result"
      return 0
    fi
    sleep 0.2
  done
  fail "no console text on the scanout: $result"
}

"$daemon" --vhost_user_socket="$run/vgpu.sock" --width=$width --height=$height \
  --snapshot="$run/screen.ppm" --snapshot_interval=100ms --mirror_to_qemu \
  --grpc_listen="unix:$run/grpc.sock" > "$run/daemon.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -S "$run/vgpu.sock" ] && break; sleep 0.1; done
[ -S "$run/vgpu.sock" ] || fail "vgpu-displayd did not create its socket"

root="$cache/root"
QEMU_MODULE_DIR="$root/usr/lib/x86_64-linux-gnu/qemu" "$root/usr/bin/qemu-system-x86_64" \
  -L "$root/usr/share/qemu" -L "$root/usr/share/seabios" \
  -machine q35 -accel tcg -m 512 -smp 1 -nodefaults -vga none \
  -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz" -append "console=ttyS0 quiet e2e.hold=3" \
  -object memory-backend-memfd,id=mem,size=512M,share=on -machine memory-backend=mem \
  -chardev socket,id=vgpu,path="$run/vgpu.sock" -device vhost-user-gpu-pci,chardev=vgpu \
  -display none -serial file:"$run/serial.log" \
  -monitor unix:"$run/monitor.sock",server=on,wait=off > "$run/qemu.log" 2>&1 &
pids+=($!)
boot_started=$SECONDS

for boot in 1 2; do
  echo "e2e boot $boot"
  wait_serial PATTERN-a $boot
  echo "  pattern A on /dev/fb0 after $((SECONDS - boot_started)) s"
  wait_pixels "$cache/expected-a.ppm"
  if [ $boot -eq 1 ]; then
    # What the daemon mirrored to QEMU's console, as QEMU's own screendump sees it.
    "$tool" monitor "$run/monitor.sock" screendump "$run/qemu-screen.ppm"
    result="$("$tool" diff "$cache/expected-a.ppm" "$run/qemu-screen.ppm")" ||
      fail "QEMU's screendump differs from pattern A: $result"
    echo "  QEMU screendump (display socket mirror): $result"
  fi
  wait_serial PATTERN-b $boot
  wait_pixels "$cache/expected-b.ppm"
  wait_serial TEXT $boot
  wait_text
  # The same console through the gRPC service, as a CI job would take it.
  result="$("$build/clients/shot/vgpu-shot" --server="unix:$run/grpc.sock" --wait=stable:300 \
    --timeout=10s --out="$run/console.ppm")" || fail "vgpu-shot failed: $result"
  result="$("$tool" text "$run/console.ppm" 40)" || fail "vgpu-shot's picture has no console text: $result"
  echo "  vgpu-shot over gRPC: $result"

  if [ $boot -eq 1 ]; then
    "$tool" monitor "$run/monitor.sock" system_reset
    boot_started=$SECONDS
  fi
done
"$tool" monitor "$run/monitor.sock" quit || true
grep -q "guest reset" "$run/daemon.log" || fail "the daemon did not see the guest reset"
echo "E2E PASS: patterns pixel-exact, console text drawn (scanout and vgpu-shot over gRPC), display back after reboot ($((SECONDS - started)) s)"
