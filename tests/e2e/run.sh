#!/usr/bin/env bash
# Real QEMU, real Linux guest: boots Debian's kernel with a busybox
# initramfs under QEMU 10 (TCG) with -device vhost-user-gpu-pci against
# vgpu-displayd, and checks pixel for pixel that the daemon's scanout shows
# what the guest wrote to /dev/fb0 (two test patterns), that console text is
# drawn (on the scanout, through vgpu-shot and through the VNC bridge), and
# that the display comes back after a guest reboot. Input: text typed with
# vgpu-input (US and German layouts) arrives on the guest's tty1 exactly, a
# click and a wheel turn arrive in /dev/input at the right place, CapsLock's
# LED comes back and a line typed with it on arrives as typed, on both
# boots and with a new QEMU on the same daemon; a command typed in the
# browser console (headless Chromium, noVNC) arrives on tty1 exactly and its
# echo shows in the canvas.
# Usage: run.sh BUILD_DIR [CACHE_DIR]     (BUILD_DIR holds the release build)
set -euo pipefail
build="$(cd "$1" && pwd)"
cache="${2:-$build/e2e-cache}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
width=1280 height=800
started=$SECONDS

source "$here/lib.sh"
prepare_guest vgpu-e2e

start_daemon --width=$width --height=$height --mirror_to_qemu

# The VNC bridge on the same daemon: the console as a VNC viewer sees it.
start_vgpu_vnc "$run/vnc.log"

start_qemu "$run/serial.log"
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
  # And through the VNC bridge, as a VNC viewer (libvncclient, ZRLE) sees it.
  result="$("$build/clients/vnc/vnc-probe" --port="$vnc_port" --encodings="copyrect zrle" \
    --stable_ms=300 --timeout=10 --out="$run/vnc.ppm" 2>&1)" || fail "vnc-probe failed: $result"
  result="$("$tool" text "$run/vnc.ppm" 40)" || fail "the VNC bridge's picture has no console text: $result"
  echo "  VNC bridge (vgpu-vnc, ZRLE): $result"
  check_input $boot
  if [ $boot -eq 1 ]; then
    # The browser console types a command into the guest: its tty1 reads it.
    # The guest's CapsLock is on first (the browser's is off): noVNC sends
    # key codes, and the bridge turns the guest's CapsLock off before the
    # first letter, as QEMU's VNC server does for such clients.
    "$build/clients/input/vgpu-input" --server="unix:$run/grpc.sock" --timeout=30s \
      --key=capslock --wait_led=caps_lock > /dev/null || fail "CapsLock did not go on"
    /usr/bin/python3 "$here/browser_type.py" "$web_url" "$run/grpc.sock" \
      "$build/clients/shot/vgpu-shot" 'echo from the browser\n' ||
      fail "typing in the browser console"
    wait_vt_line "echo from the browser" 1
    "$build/clients/input/vgpu-input" --server="unix:$run/grpc.sock" --timeout=10s \
      --wait_led=caps_lock=off > /dev/null || fail "the browser left the guest's CapsLock on"
    echo "  the guest's tty1 read the line typed in the browser exactly, its CapsLock put in step"
  fi

  if [ $boot -eq 1 ]; then
    "$tool" monitor "$run/monitor.sock" system_reset
    boot_started=$SECONDS
  fi
done
"$tool" monitor "$run/monitor.sock" quit || true
grep -q "guest reset" "$run/daemon.log" || fail "the daemon did not see the guest reset"
# QEMU goes away and a new one connects to the same daemon: input works.
wait "$qemu_pid" 2>/dev/null || true
echo "e2e boot 3 (a new QEMU on the same daemon)"
start_qemu "$run/serial3.log"
check_input 1
"$tool" monitor "$run/monitor.sock" quit || true
echo "E2E PASS: patterns pixel-exact, console text drawn (scanout, vgpu-shot over gRPC, a VNC viewer through vgpu-vnc), display back after reboot, input into tty1 and /dev/input after a reboot and a new QEMU, a command typed in the browser console ($((SECONDS - started)) s)"
