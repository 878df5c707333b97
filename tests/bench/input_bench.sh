#!/usr/bin/env bash
# Keystroke-to-pixel latency: a key sent to vgpu-displayd until the update
# that shows its echo reaches the viewer, p50/p99 over KEYS keys.
#   synthetic  the daemon's demo guest (its prompt echoes), over gRPC
#              (input_latency: StreamInput in, StreamFrames out) and over
#              VNC through vgpu-vnc (rfb_probe.py keys: RFB KeyEvents in,
#              updates out, as a noVNC-like Tight client)
#              and from the browser console (browser_keys.py: headless
#              Chromium, keys dispatched on noVNC's canvas, timed to its
#              next draw by the page's clock)
#   guest      the real Linux guest (QEMU 10, TCG) reading a line on tty1,
#              whose VT echoes each key: the same three paths
# Usage: input_bench.sh BUILD_DIR [CACHE_DIR]
#   KEYS=200  WORKLOADS="synthetic guest"
set -euo pipefail
build="$(cd "$1" && pwd)"
cache="${2:-$build/e2e-cache}"
bench="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
here="$bench/../e2e"
shared="$(cd "$bench/../../.." && pwd)/shared"
keys="${KEYS:-200}"
only="${WORKLOADS:-synthetic guest}"
width=1280 height=800
latency="$build/tests/bench/input_latency"
python=/usr/bin/python3

source "$here/lib.sh"
# vgpu-vnc with its web console (vnc_port, web_url), its input stream up.
start_bridge() {
  start_vgpu_vnc "$run/vnc.log"
  for _ in $(seq 1 100); do grep -q "forwarding VNC keys" "$run/vnc.log" && break; sleep 0.1; done
}
browser_keys() {  # LABEL
  "$python" "$bench/browser_keys.py" "$web_url" --keys="$keys" \
    --label="$1 browser (noVNC in Chromium)"
}
# rfb_probe.py keys: one key every 80 ms (its --interval-ms), each timed to
# the next update.
vnc_keys() {  # PORT LABEL [NEWLINES]: NEWLINES=1 ends a line every 40 keys
  local text
  if [ "${3:-0}" = 1 ]; then
    text="$(head -c "$keys" < <(yes 'asdfghjklasdfghjklasdfghjklasdfghjklasd~' | tr -d '\n' | tr '~' '\n'))"
    text="${text//$'\n'/\\n}"
  else
    text="$(head -c "$keys" < <(yes 'asdfghjkl' | tr -d '\n'))"
  fi
  "$python" "$shared/tools/rfb_probe.py" keys "127.0.0.1::$1" --text "$text" \
    --interval-ms 80 --settle-ms 500 --timeout 3 |
    sed -n "s/^keys:/$2 VNC (vgpu-vnc, rfb_probe.py keysyms) keystroke-to-pixel:/p"
}

if [[ " $only " == *" synthetic "* ]]; then
  run="$(mktemp -d /tmp/vgpu-input-bench-XXXXXX)"
  pids=()
  trap cleanup EXIT
  "$build/server/vgpu-displayd" --demo --demo_frames=1 --width=$width --height=$height \
    --grpc_listen="unix:$run/grpc.sock" > "$run/daemon.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "frames drawn" "$run/daemon.log" && break; sleep 0.1; done
  "$latency" --server="unix:$run/grpc.sock" --keys="$keys" \
    --label="synthetic guest, gRPC"
  start_bridge
  vnc_keys "$vnc_port" "synthetic guest," 1
  browser_keys "synthetic guest,"
  cleanup
  trap - EXIT
fi

if [[ " $only " == *" guest "* ]]; then
  prepare_guest vgpu-input-bench
  start_daemon --width=$width --height=$height
  start_bridge
  start_qemu "$run/serial.log"
  wait_serial INPUT-READY 1
  # The VT reads a line: every key echoes; no Enter, the line just grows.
  "$latency" --server="unix:$run/grpc.sock" --keys="$keys" \
    --label="real guest (QEMU TCG), gRPC"
  vnc_keys "$vnc_port" "real guest (QEMU TCG),"
  browser_keys "real guest (QEMU TCG),"
fi
