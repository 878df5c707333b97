#!/usr/bin/env bash
# vgpu-watch against a running vgpu-displayd: it subscribes, counts updates,
# records the stream, and replaying the recording rebuilds the same screen.
# Usage: watch_test.sh VGPU_DISPLAYD VGPU_WATCH
set -euo pipefail
daemon="$1"; watch="$2"
work="$(mktemp -d /tmp/vgpu-watch-XXXXXX)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
"$daemon" --demo --demo_scene=console --demo_fps=60 --width=640 --height=480 \
  --grpc_listen="unix:$work/grpc.sock" > "$work/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -S "$work/grpc.sock" ] && break; sleep 0.1; done
"$watch" --server="unix:$work/grpc.sock" --duration=2s --record="$work/rec" --out="$work/live.ppm" \
  > "$work/live.txt"
cat "$work/live.txt"
updates="$(sed -n 's/^\([0-9]*\) updates.*/\1/p' "$work/live.txt")"
[ "${updates:-0}" -ge 20 ] || { echo "FAIL: only ${updates:-0} updates in 2 s"; exit 1; }
"$watch" --replay="$work/rec" --out="$work/replay.ppm" > /dev/null
cmp "$work/live.ppm" "$work/replay.ppm" || { echo "FAIL: the replay differs"; exit 1; }
"$watch" --replay="$work/daemon.log" > /dev/null 2>&1 && { echo "FAIL: accepted a non-recording"; exit 1; }
echo "PASS: vgpu-watch live, record and replay"

# A guest that changes resolution every 6 frames (a DRM modeset each time):
# vgpu-watch keeps its copy through every change and ends on the last mode.
kill "$pid"; wait "$pid" 2>/dev/null || true
"$daemon" --demo --demo_scene=video --demo_fps=60 --demo_mode_every=6 --width=640 --height=480 \
  --grpc_listen="unix:$work/resize.sock" > "$work/resize.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -S "$work/resize.sock" ] && break; sleep 0.1; done
for format in raw zstd jpeg; do
  "$watch" --server="unix:$work/resize.sock" --format="$format" --duration=2s > "$work/resize.txt" \
    || { cat "$work/resize.txt"; echo "FAIL: vgpu-watch ($format) died during resolution changes"; exit 1; }
  tail -n 1 "$work/resize.txt"
done
echo "PASS: vgpu-watch through resolution changes"
