#!/usr/bin/env bash
# Real-guest bandwidth benchmark: the same Linux guest (QEMU 10, TCG,
# 1280x800, fbcon on tty1 and /dev/fb0) draws the same workloads, asked
# for over its serial console, once behind QEMU's own VNC server (built-in
# virtio-gpu-pci, -vnc lossy=on, measured by ../shared/tools/rfb_probe.py as
# a noVNC-like Tight client at quality level 6 = JPEG 60) and once behind
# each vgpu-displayd given (vhost-user-gpu-pci, measured by stream_probe over
# gRPC StreamFrames), and once behind the first vgpu-displayd with the VNC
# bridge vgpu-vnc in front (measured by rfb_probe.py exactly as QEMU's VNC;
# its CPU is the daemon's and the bridge's processes). One viewer each.
# Workloads:
#   typing     30 characters a second on tty1 (indexed, else zstd)
#   flood      a text flood: the console scrolls as fast as the guest can
#   video10/15/30 full-screen frames at 10, 15 and 30 a second (JPEG 60)
#   still      one full-screen picture that stays; the bytes of a new
#              viewer's first update (the whole screen, JPEG 60)
#   latency    the host writes "mark K" to the serial console, the guest
#              fills a band; time until the viewer has it
#   native_latency  the same, VNC measured by vnc_latency_probe (libvncclient,
#              the same Tight q6 settings) instead of rfb_probe.py, whose
#              Python pixel check per update delays the next one when the
#              guest's band comes in several (gRPC: stream_probe again)
# For each: updates per second, bytes per update (p50, p99), bytes per
# second, server CPU per update (the daemon's process; QEMU's vnc_worker
# thread only, its VNC work on the main loop is not separable), latency.
# Video workloads also run once with no viewer: "net" CPU per update takes
# that CPU per second off (what a viewer adds), as do CPU s/s figures.
#
# Usage: guest_bench.sh BUILD_DIR [CACHE_DIR]
#   DAEMONS="label=/path/to/vgpu-displayd ..."  (default: BUILD_DIR's, "vgpu")
#   SECONDS_PER=10  counting window per workload
#   LATENCY_TRIES=40  markers timed per target and latency workload
#   LATENCY_TRIES=40  marks timed per target in the latency workload
#   QEMU_VNC=0      skip QEMU's VNC server
#   VNC_BRIDGE=0    skip vgpu-vnc
#   RESULTS=FILE    also write every result as a JSON line here
#   WORKLOADS="typing flood video10 video15 still latency"  (default: all)
#   DUMP_DIR=DIR    stream_probe writes each message's make-up there
set -euo pipefail
build="$(cd "$1" && pwd)"
cache="${2:-$build/e2e-cache}"
bench="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
here="$bench/../e2e"
shared="$(cd "$bench/../../.." && pwd)/shared"
width=1280 height=800
window="${SECONDS_PER:-10}"
tries="${LATENCY_TRIES:-40}"
only="${WORKLOADS:-typing flood video10 video15 video30 still latency native_latency}"
daemons="${DAEMONS:-vgpu=$build/server/vgpu-displayd}"
probe="$build/tests/bench/stream_probe"
python=/usr/bin/python3
started=$SECONDS

source "$here/lib.sh"
"$here/fetch.sh" "$cache"
tool="$build/tests/e2e/e2e_tool"
run="$(mktemp -d /tmp/vgpu-bench-XXXXXX)"
pids=()
trap cleanup EXIT
results="${RESULTS:-$run/results.jsonl}"
: > "$results"

# The guest's files: four video frames, two markers, text for the flood.
mkdir -p "$run/extra"
for f in 0 1 2 3; do
  "$tool" pattern "$f" $width $height "$run/extra/frame$f.raw" /dev/null
done
"$tool" pattern M $width 32 "$run/extra/mark1.raw" /dev/null
"$tool" pattern N $width 32 "$run/extra/mark2.raw" /dev/null
for i in $(seq 1 120); do
  echo "line $i: the quick brown fox jumps over the lazy dog; 0123456789 [$((i * 7919 % 1000))] ok"
done > "$run/extra/text.txt"
"$here/build_initramfs.sh" "$cache" "$tool" $width $height "$run/initrd.gz" \
  "$bench/guest_init.sh" "$run/extra" > /dev/null

# Starts QEMU with the bench guest; "$@" is the display device. The serial
# console is a socket (commands in) with a log file (phases out).
boot() {
  local root="$cache/root"
  serial="$run/serial-$label.log"
  rm -f "$run/serial.sock" "$run/monitor.sock"
  QEMU_MODULE_DIR="$root/usr/lib/x86_64-linux-gnu/qemu" "$root/usr/bin/qemu-system-x86_64" \
    -L "$root/usr/share/qemu" -L "$root/usr/share/seabios" \
    -machine q35 -accel tcg -m 512 -smp 1 -nodefaults -vga none \
    -kernel "$cache/vmlinuz" -initrd "$run/initrd.gz" -append "console=ttyS0 quiet" \
    -name bench,debug-threads=on \
    -object memory-backend-memfd,id=mem,size=512M,share=on -machine memory-backend=mem \
    "$@" \
    -chardev socket,id=ser,path="$run/serial.sock",server=on,wait=off,logfile="$serial" \
    -serial chardev:ser -display none \
    -monitor unix:"$run/monitor.sock",server=on,wait=off >> "$run/qemu.log" 2>&1 &
  qemu_pid=$!
  pids+=("$qemu_pid")
  wait_serial READY 1
}
send() { "$tool" send "$run/serial.sock" "$@"; }
done_count() { grep -c "E2E PHASE DONE $1" "$serial" 2>/dev/null || true; }
# Runs guest command "$3..." (none for latency: the viewer sends its own
# triggers) while viewer function $2 measures workload $1. Waits for the
# guest to finish; appends the result.
measure() {
  local workload="$1" viewer="$2"; shift 2
  local before cpu0 cpu1 t0 t1
  before="$(done_count "${1:-}")"
  send clear; sleep 1
  cpu0="$(server_cpu)"; t0="$(date +%s.%N)"
  "$viewer" "$workload" "$run/$label-$workload.json" &
  local viewer_pid=$!
  sleep 0.2
  [ $# -eq 0 ] || send "$@"
  wait "$viewer_pid" || { post_mortem; fail "$label $workload: the viewer failed"; }
  cpu1="$(server_cpu)"; t1="$(date +%s.%N)"
  if [ $# -gt 0 ]; then
    until [ "$(done_count "$1")" -gt "$before" ]; do sleep 0.2; done
  fi
  record "$workload" "$cpu0" "$cpu1" "$t0" "$t1"
}
# The same workload with no viewer: the server's CPU per second then (the
# guest's drawing, the device, a bridge's own feed), which "net" figures
# take off (the issue's "with minus without a viewer"). The window is the
# measurement, not a wait for a condition.
measure_idle() {
  local workload="$1"; shift
  local before cpu0 cpu1 t0 t1
  before="$(done_count "$1")"
  send clear; sleep 1
  send "$@"
  sleep 1.2  # as the viewer's warm-up
  cpu0="$(server_cpu)"; t0="$(date +%s.%N)"
  sleep "$window"
  cpu1="$(server_cpu)"; t1="$(date +%s.%N)"
  until [ "$(done_count "$1")" -gt "$before" ]; do sleep 0.2; done
  awk -v c0="$cpu0" -v c1="$cpu1" -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "%.6f\n", (c1 - c0) / (t1 - t0) }' > "$run/$label-$workload.idle"
}
# What a daemon that died left: the end of its log and, from a core, where
# each thread was.
post_mortem() {
  echo "--- daemon-$label.log"; tail -n 40 "$run/daemon-$label.log" 2> /dev/null || true
  local core
  for core in "$run"/core*; do
    [ -f "$core" ] && command -v gdb > /dev/null &&
      gdb -q -batch -ex "thread apply all bt 12" "${daemon:-}" "$core" 2> /dev/null | head -150
  done
  return 0
}
# A full-screen picture (frame 0) that stays: a viewer that connects then
# gets it as its first update, JPEG 60 from both servers.
measure_still() {
  local before cpu0 cpu1
  before="$(done_count video)"
  send clear; sleep 1
  send video 1 1
  until [ "$(done_count video)" -gt "$before" ]; do sleep 0.2; done
  cpu0="$(server_cpu)"
  "$1" still "$run/$label-still.json" || fail "$label still: the viewer failed"
  cpu1="$(server_cpu)"
  record still "$cpu0" "$cpu1"
}
# Appends the result of workload $1 (its viewer's JSON) with the server's
# CPU seconds from $2 to $3.
record() {
  local workload="$1" cpu0="$2" cpu1="$3" t0="${4:-0}" t1="${5:-0}"
  local idle_file="$run/$label-$workload.idle"
  $python - "$run/$label-$workload.json" "$label" "$workload" "$cpu0" "$cpu1" "$cpu_what" \
    "$t0" "$t1" "$idle_file" >> "$results" <<'EOF'
import json, os, sys
path, label, workload, cpu0, cpu1, what, t0, t1, idle_file = sys.argv[1:10]
r = json.load(open(path))
r.update(target=label, workload=workload, server_cpu=what)
if "updates" in r and r["updates"]:
    cpu = float(cpu1) - float(cpu0)
    r["cpu_ms_per_update"] = round(cpu * 1000 / r["updates"], 3)
    wall = float(t1) - float(t0)
    if os.path.exists(idle_file) and wall > 0:
        idle = float(open(idle_file).read())  # CPU seconds per second
        r["idle_cpu_per_s"] = round(idle, 4)
        r["cpu_per_s"] = round(cpu / wall, 4)
        r["net_cpu_ms_per_update"] = round((cpu - idle * wall) * 1000 / r["updates"], 3)
print(json.dumps(r))
EOF
  tail -n 1 "$results" | $python -c 'import json,sys; r=json.load(sys.stdin); print("  %-9s %-8s %s" % (r["target"], r["workload"], {k: r[k] for k in ("updates_per_s","bytes_per_update_p50","bytes_per_update_p99","bytes_per_s","cpu_ms_per_update","net_cpu_ms_per_update","cpu_per_s","idle_cpu_per_s","ms_p50","ms_p99","flush_ms_p50","first_update_bytes","rects") if k in r}))'
}
workloads() {
  local view="$1" w
  for w in $only; do
    case "$w" in
      typing) measure typing "$view" type $((30 * (window + 3))) 33 ;;
      flood) measure flood "$view" flood $((window + 3)) ;;
      video10) measure_idle video10 video 10 $((window + 3))
               measure video10 "$view" video 10 $((window + 3)) ;;
      video15) measure_idle video15 video 15 $((window + 3))
               measure video15 "$view" video 15 $((window + 3)) ;;
      video30) measure_idle video30 video 30 $((window + 3))
               measure video30 "$view" video 30 $((window + 3)) ;;
      latency) measure latency "$view" ;;
      native_latency) measure native_latency "$view" ;;
      still) measure_still "$view" ;;
    esac
  done
}
ticks="$(getconf CLK_TCK)"
# Seconds of CPU of $1's threads whose name matches $2 (all when empty).
cpu_of() {
  local total=0 t fields
  for t in /proc/"$1"/task/*; do
    [ -z "$2" ] || grep -qx "$2" "$t/comm" 2> /dev/null || continue
    read -r -a fields < <(sed 's/.*) //' "$t/stat")
    total=$((total + fields[11] + fields[12]))
  done
  awk -v t="$total" -v h="$ticks" 'BEGIN { printf "%.3f", t / h }'
}

# The TCP port of VNC target "host:display" or "host::port".
vnc_port_of() {
  case "$1" in
    *::*) echo "${1##*::}" ;;
    *) echo $((5900 + ${1##*:})) ;;
  esac
}

# A noVNC-like VNC viewer (Tight quality 6) of $vnc_target.
vnc_view() {
  case "$1" in
    still) $python "$bench/rfb_first_update.py" "$shared/tools" "$vnc_target" 6 "$2" ;;
    native_latency) "$build/tests/bench/vnc_latency_probe" --port="$(vnc_port_of "$vnc_target")" \
      --trigger_path="$run/serial.sock" --region=0,0,$width,32 --tries="$tries" \
      --gap_min_ms=300 --gap_max_ms=800 --json="$2" > /dev/null ;;
    latency) $python "$shared/tools/rfb_probe.py" latency "$vnc_target" --quality 6 \
      --trigger-path "$run/serial.sock" --region 0,0,$width,32 --tries "$tries" \
      --gap-min-ms 300 --gap-max-ms 800 --json "$2" --quiet > /dev/null ;;
    *) $python "$shared/tools/rfb_probe.py" stats "$vnc_target" --quality 6 \
      --decode none --duration "$window" --warmup 1 --json "$2" --quiet > /dev/null ;;
  esac
}

# --- QEMU's own VNC server.
if [ "${QEMU_VNC:-1}" = 1 ] && [ -f "$shared/tools/rfb_probe.py" ]; then
  label=qemu-vnc cpu_what="QEMU vnc_worker thread" vnc_target=127.0.0.1:57
  server_cpu() { cpu_of "$qemu_pid" vnc_worker; }
  echo "guest bench: QEMU's VNC server"
  boot -device virtio-gpu-pci -vnc 127.0.0.1:57,lossy=on
  workloads vnc_view
  "$tool" monitor "$run/monitor.sock" quit > /dev/null || true
  wait "$qemu_pid" 2> /dev/null || true
else
  echo "guest bench: QEMU's VNC server skipped (QEMU_VNC=0 or no $shared/tools/rfb_probe.py)"
fi

# Starts $daemon for $label on $run/vgpu.sock and $run/grpc.sock; sets
# daemon_pid.
start_bench_daemon() {
  rm -f "$run/vgpu.sock" "$run/grpc.sock"
  # A daemon that crashes leaves a core in $run (see post_mortem).
  (ulimit -c unlimited 2> /dev/null; cd "$run" && exec "$daemon" \
    --vhost_user_socket="$run/vgpu.sock" --grpc_listen="unix:$run/grpc.sock" \
    --width=$width --height=$height) > "$run/daemon-$label.log" 2>&1 &
  daemon_pid=$!
  pids+=("$daemon_pid")
  for _ in $(seq 1 50); do [ -S "$run/vgpu.sock" ] && break; sleep 0.1; done
}

# --- Each vgpu-displayd.
for entry in $daemons; do
  label="${entry%%=*}" daemon="${entry#*=}" cpu_what="vgpu-displayd process"
  start_bench_daemon
  server_cpu() { cpu_of "$daemon_pid" ""; }
  grpc_view() {
    # INDEXED where the daemon has it (an older one falls back to zstd).
    local format=indexed,zstd
    case "$1" in video* | still) format=jpeg ;; esac
    case "$1" in
      still) "$probe" --server="unix:$run/grpc.sock" --mode=first --format=jpeg --quality=60 \
        --json="$2" > /dev/null ;;
      latency | native_latency) "$probe" --server="unix:$run/grpc.sock" --mode=latency --format=zstd \
        --trigger_path="$run/serial.sock" --region=0,0,$width,32 --tries="$tries" \
        --gap_min_ms=300 --gap_max_ms=800 --json="$2" > /dev/null ;;
      *) "$probe" --server="unix:$run/grpc.sock" --format=$format --quality=60 \
        --duration="${window}s" --warmup=1s --json="$2" \
        ${DUMP_DIR:+--dump="$DUMP_DIR/$label-$1.txt"} > /dev/null ;;
    esac
  }
  echo "guest bench: $label ($daemon)"
  boot -chardev socket,id=vgpu,path="$run/vgpu.sock" -device vhost-user-gpu-pci,chardev=vgpu
  workloads grpc_view
  "$tool" monitor "$run/monitor.sock" quit > /dev/null || true
  wait "$qemu_pid" 2> /dev/null || true
  kill "$daemon_pid"; wait "$daemon_pid" 2> /dev/null || true
done

# --- vgpu-vnc in front of the first vgpu-displayd.
if [ "${VNC_BRIDGE:-1}" = 1 ] && [ -f "$shared/tools/rfb_probe.py" ]; then
  entry="${daemons%% *}"
  label=vgpu-vnc daemon="${entry#*=}" cpu_what="vgpu-displayd + vgpu-vnc processes"
  start_bench_daemon
  start_vgpu_vnc "$run/bridge.log"
  vnc_target="127.0.0.1::$vnc_port"
  server_cpu() {
    awk -v a="$(cpu_of "$daemon_pid" "")" -v b="$(cpu_of "$bridge_pid" "")" \
      'BEGIN { printf "%.3f", a + b }'
  }
  echo "guest bench: $label (vgpu-vnc in front of $daemon)"
  boot -chardev socket,id=vgpu,path="$run/vgpu.sock" -device vhost-user-gpu-pci,chardev=vgpu
  workloads vnc_view
  "$tool" monitor "$run/monitor.sock" quit > /dev/null || true
  wait "$qemu_pid" 2> /dev/null || true
  kill "$bridge_pid" "$daemon_pid"; wait "$bridge_pid" "$daemon_pid" 2> /dev/null || true
fi

echo
$python - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
targets = list(dict.fromkeys(r["target"] for r in rows))
def get(t, w, k):
    for r in rows:
        if r["target"] == t and r["workload"] == w and k in r:
            return r[k]
    return None
lines = [("typing", "bytes_per_update_p50", "B/update p50"),
         ("typing", "updates_per_s", "updates/s"),
         ("typing", "cpu_ms_per_update", "CPU ms/update"),
         ("flood", "bytes_per_s", "B/s"),
         ("flood", "updates_per_s", "updates/s"),
         ("flood", "cpu_ms_per_update", "CPU ms/update"),
         ("video10", "bytes_per_update_p50", "B/update p50"),
         ("video10", "updates_per_s", "updates/s"),
         ("video10", "cpu_ms_per_update", "CPU ms/update"),
         ("video10", "net_cpu_ms_per_update", "CPU ms/update, net of no viewer"),
         ("video10", "cpu_per_s", "CPU s/s"),
         ("video10", "idle_cpu_per_s", "CPU s/s with no viewer"),
         ("video15", "bytes_per_update_p50", "B/update p50"),
         ("video15", "updates_per_s", "updates/s"),
         ("video30", "bytes_per_update_p50", "B/update p50"),
         ("video30", "updates_per_s", "updates/s"),
         ("video30", "cpu_ms_per_update", "CPU ms/update"),
         ("video30", "net_cpu_ms_per_update", "CPU ms/update, net of no viewer"),
         ("video30", "cpu_per_s", "CPU s/s"),
         ("still", "first_update_bytes", "whole screen, first update B"),
         ("still", "rects", "rects"),
         ("latency", "ms_p50", "trigger-to-pixel p50 ms"),
         ("latency", "ms_p99", "trigger-to-pixel p99 ms"),
         ("latency", "flush_ms_p50", "flush-to-pixel p50 ms (daemon)"),
         ("native_latency", "ms_p50", "trigger-to-pixel p50 ms, native viewer"),
         ("native_latency", "ms_p99", "trigger-to-pixel p99 ms, native viewer")]
print("| workload | figure | " + " | ".join(targets) + " |")
print("|---|---|" + "---|" * len(targets))
for w, k, name in lines:
    print(f"| {w} | {name} | " + " | ".join(str(get(t, w, k)) for t in targets) + " |")
EOF
echo "guest bench done in $((SECONDS - started)) s; results: $results"
