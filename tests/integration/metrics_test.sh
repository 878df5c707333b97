#!/usr/bin/env bash
# Prometheus metrics: vgpu-displayd with its built-in guest and a viewer;
# /metrics must show the device's commands, frames, the viewer's updates,
# the latency histograms and the input devices (the demo guest drives a
# keyboard and a tablet), in the text exposition format.
# Usage: metrics_test.sh VGPU_DISPLAYD VGPU_WATCH
set -euo pipefail
daemon="$1"; watch="$2"
work="$(mktemp -d /tmp/vgpu-metrics-XXXXXX)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
"$daemon" --demo --demo_scene=console --demo_fps=60 --width=640 --height=480 \
  --grpc_listen="unix:$work/grpc.sock" --metrics_listen=127.0.0.1:0 > "$work/daemon.log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 100); do
  port="$(sed -n 's|.*Prometheus metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$work/daemon.log")"
  [ -n "$port" ] && [ -S "$work/grpc.sock" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/daemon.log"; echo "FAIL: no metrics port"; exit 1; }
# A viewer stays connected while we scrape (per-viewer series are live ones);
# one in raw RGBX has come and gone (its updates count under their own label).
"$watch" --server="unix:$work/grpc.sock" --format=rgbx --duration=0.5s > /dev/null
"$watch" --server="unix:$work/grpc.sock" --duration=4s > /dev/null &
watch_pid=$!
sleep 1.5
fetch() {
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&3
  cat <&3 || true
  exec 3<&-
}
fetch /metrics > "$work/metrics.txt"
head -n 1 "$work/metrics.txt" | grep -q "200 OK" || { cat "$work/metrics.txt"; echo "FAIL: status"; exit 1; }
for series in 'vgpu_device_commands_total{command="TRANSFER_TO_HOST_2D"}' \
    'vgpu_device_commands_total{command="RESOURCE_FLUSH"}' 'vgpu_frames_published_total' \
    'vgpu_viewers{stream="StreamFrames"} 1' \
    'vgpu_updates_total{encoding="zstd"}' 'vgpu_updates_total{encoding="raw_rgbx"}' \
    'vgpu_viewer_updates_total{scanout="0",viewer=' \
    'vgpu_flush_to_send_seconds_bucket{le="+Inf"}' 'vgpu_encode_seconds_count' \
    'vgpu_encode_cache_misses_total' 'vgpu_input_attached{device="keyboard"} 1' \
    'vgpu_input_attached{device="tablet"} 1' 'vgpu_input_events_delivered_total{device="keyboard"}' \
    'vgpu_input_motion_dropped_total{device="tablet"}'; do
  grep -qF "$series" "$work/metrics.txt" || { cat "$work/metrics.txt"; echo "FAIL: no $series"; exit 1; }
done
# Every metric family says what it is (HELP) and what kind (TYPE).
families="$(sed -n 's/^# TYPE \([a-z_]*\) .*/\1/p' "$work/metrics.txt" | sort)"
helped="$(sed -n 's/^# HELP \([a-z_]*\) ..*/\1/p' "$work/metrics.txt" | sort)"
[ -n "$families" ] && [ "$families" = "$helped" ] || {
  echo "FAIL: families without HELP: $(comm -23 <(echo "$families") <(echo "$helped"))"; exit 1; }
! grep -q 'command="0x\|response="0x' "$work/metrics.txt" || { echo "FAIL: hex labels"; exit 1; }
frames="$(sed -n 's/^vgpu_frames_published_total \([0-9]*\)/\1/p' "$work/metrics.txt")"
[ "${frames:-0}" -gt 10 ] || { echo "FAIL: $frames frames"; exit 1; }
fetch /other | head -n 1 | grep -q "404" || { echo "FAIL: /other is not 404"; exit 1; }
wait "$watch_pid"
fetch /metrics | grep -qF 'vgpu_viewers{stream="StreamFrames"} 0' || {
  echo "FAIL: the viewers gauge did not go back to 0"; exit 1; }
echo "PASS: /metrics ($frames frames published)"
