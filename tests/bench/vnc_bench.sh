#!/usr/bin/env bash
# The VNC bridge under a full-screen stream: vgpu-displayd's synthetic guest
# draws its `video` scene at 1920x1080 and --fps frames/s, vgpu-vnc serves
# it, and ../shared/tools/rfb_probe.py's noVNC-like viewers (Tight quality
# level 6, compression 2; parse-only, the fastest viewer) watch it, 1 and 10
# at a time, with encode once on (the daemon's JPEG forwarded) and off
# (libvncserver encodes for each viewer). Prints, per case, the daemon's and
# the bridge's CPU (cores busy over the window), updates per second each
# viewer got, bytes per update, and CPU per viewer-update; then the 10:1 CPU
# ratio. Each case runs RUNS times (default 3); the table shows medians.
#
# Usage: vnc_bench.sh BUILD_DIR [FPS]     (about 2 minutes at the defaults)
#   SECONDS_PER_RUN=N  measured seconds per run (default 8)
set -euo pipefail
build="$(cd "${1:?usage: vnc_bench.sh BUILD_DIR [FPS]}" && pwd)"
fps="${2:-30}"
runs="${RUNS:-3}"
window="${SECONDS_PER_RUN:-8}"
warmup=2
cd "$(dirname "$0")/../.."
probe="$(cd .. && pwd)/shared/tools/rfb_probe.py"
[[ -f "$probe" ]] || { echo "vnc_bench: $probe is missing" >&2; exit 1; }
python=/usr/bin/python3
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ticks="$(getconf CLK_TCK)"

# CPU seconds (user + system) a process has used.
cpu_of() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }

# Waits until a file has a line matching a pattern (a process's start-up
# banner), at most 20 s.
await_line() {
  for _ in $(seq 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "vnc_bench: no '$2' in $1" >&2
  cat "$1" >&2
  exit 1
}

# One run: prints "daemon_cores bridge_cores updates_per_s_each
# bytes_per_update ms_per_viewer_update".
run_case() {
  local encode_once="$1" clients="$2" out="$tmp/run"
  rm -rf "$out" && mkdir -p "$out"
  "$build/server/vgpu-displayd" --demo --demo_scene=video --width=1920 \
    --height=1080 --demo_fps="$fps" --grpc_listen="unix:$out/grpc.sock" \
    >"$out/daemon.log" 2>&1 &
  local daemon=$!
  pids+=("$daemon")
  await_line "$out/daemon.log" "gRPC"
  "$build/clients/vnc/vgpu-vnc" --server="unix:$out/grpc.sock" \
    --listen=127.0.0.1:0 --max_clients=32 --encode_once="$encode_once" \
    >"$out/vnc.log" 2>&1 &
  local bridge=$!
  pids+=("$bridge")
  await_line "$out/vnc.log" "fed by"
  local port
  port="$(sed -n 's|.*vnc://127.0.0.1:\([0-9]*\).*|\1|p' "$out/vnc.log")"
  "$python" "$probe" many --encodings novnc --clients "$clients" \
    --duration "$window" --warmup "$warmup" --quiet --json "$out/many.json" \
    "127.0.0.1::$port" &
  local viewers=$!
  # The window: from the end of the probe's warm-up to its end.
  sleep "$warmup.5"
  local d0 b0 d1 b1
  d0="$(cpu_of "$daemon")"
  b0="$(cpu_of "$bridge")"
  local start end
  start="$(date +%s.%N)"
  wait "$viewers"
  end="$(date +%s.%N)"
  d1="$(cpu_of "$daemon")"
  b1="$(cpu_of "$bridge")"
  kill "$bridge" "$daemon"
  wait "$bridge" "$daemon" 2>/dev/null || true
  pids=()
  "$python" - "$out/many.json" "$d0" "$d1" "$b0" "$b1" "$start" "$end" <<'EOF'
import json, sys
res = json.load(open(sys.argv[1]))
d0, d1, b0, b1, start, end = map(float, sys.argv[2:8])
elapsed = end - start
cpu = (d1 - d0) + (b1 - b0)
# Updates in the same window: the probe's rate times the window.
updates = sum(p["updates_per_s"] for p in res["per_client"]) * elapsed
print(f"{(d1 - d0) / elapsed:.3f} {(b1 - b0) / elapsed:.3f} "
      f"{res['updates_per_s_each_mean']:.1f} "
      f"{res['bytes_per_update_p50_mean']:.0f} "
      f"{1000 * cpu / max(updates, 1):.2f}")
EOF
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "VNC bridge, 1920x1080 video at $fps frames/s, noVNC-like viewers" \
     "(Tight q6), $runs runs of ${window} s, medians"
printf '%-12s %7s %12s %12s %12s %12s %14s\n' "encode once" viewers \
  "daemon cores" "bridge cores" "upd/s each" "B/update" "ms CPU/v-upd"
declare -A total
for encode_once in true false; do
  for clients in 1 10; do
    : >"$tmp/results"
    for _ in $(seq "$runs"); do run_case "$encode_once" "$clients" >>"$tmp/results"; done
    cols=()
    for c in 1 2 3 4 5; do cols+=("$(cut -d' ' -f"$c" "$tmp/results" | median)"); done
    printf '%-12s %7s %12s %12s %12s %12s %14s\n' "$encode_once" "$clients" \
      "${cols[@]}"
    total["$encode_once,$clients"]="$(awk -v a="${cols[0]}" -v b="${cols[1]}" 'BEGIN { print a + b }')"
  done
done
for encode_once in true false; do
  awk -v one="${total[$encode_once,1]}" -v ten="${total[$encode_once,10]}" \
      -v e="$encode_once" 'BEGIN {
        printf "encode once %s: 10 viewers use %.2fx the CPU (daemon + bridge) of one\n", e, ten / one }'
done
