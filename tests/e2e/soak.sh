#!/usr/bin/env bash
# Soak: one vgpu-displayd serves a real Linux guest under QEMU 10 while the
# guest is rebooted REBOOTS times and QEMU is killed with SIGKILL and started
# again KILLS times; two gRPC viewers stay attached throughout. Afterwards the
# daemon's RSS, thread count and open fds must be back within a small margin
# of their values at the first idle screen, and every viewer's copy of the
# screen must equal the new guest's screen, pixel for pixel.
# Usage: [REBOOTS=5] [KILLS=3] soak.sh BUILD_DIR [CACHE_DIR]
set -euo pipefail
build="$(cd "$1" && pwd)"
cache="${2:-$build/e2e-cache}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
reboots="${REBOOTS:-5}" kills="${KILLS:-3}"
width=1280 height=800
started=$SECONDS

source "$here/lib.sh"
prepare_guest vgpu-soak

# RSS in KiB, threads and open fds of the daemon.
sample() {
  local rss threads fds
  rss="$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$daemon_pid/status")"
  threads="$(sed -n 's/^Threads:[[:space:]]*\([0-9]*\)/\1/p' "/proc/$daemon_pid/status")"
  fds="$(ls "/proc/$daemon_pid/fd" | wc -l)"
  echo "$rss $threads $fds"
}
# The guest has drawn its console and the screen has been still for 500 ms.
settled() {
  wait_serial TEXT "$1"
  wait_text
  "$build/clients/shot/vgpu-shot" --server="unix:$run/grpc.sock" --wait=stable:500 \
    --timeout=20s --out="$run/settled.ppm" > /dev/null || fail "the screen never settled"
}

start_daemon --width=$width --height=$height
for v in 1 2; do
  /usr/bin/python3 "$here/soak_viewer.py" "unix:$run/grpc.sock" "$here/../../proto" \
    "$run/viewer$v.ppm" > "$run/viewer$v.txt" 2>&1 &
  pids+=($!)
  viewer_pids[$v]=$!
done

boots=1
start_qemu "$run/serial-1.log"
settled 1
read -r rss0 threads0 fds0 < <(sample)
echo "soak: first idle screen: RSS ${rss0} KiB, ${threads0} threads, ${fds0} fds"

samples=()  # RSS after each boot
for r in $(seq 1 "$reboots"); do
  "$tool" monitor "$run/monitor.sock" system_reset > /dev/null
  settled $((r + 1))
  boots=$((boots + 1))
  echo "soak: reboot $r: $(sample)"
  read -r rss _ < <(sample); samples+=("$rss")
done
for k in $(seq 1 "$kills"); do
  kill -9 "$qemu_pid"
  wait "$qemu_pid" 2>/dev/null || true
  # The daemon drops the dead VMM's state and waits for the next one.
  deadline=$((SECONDS + 20))
  until [ "$(grep -c "front-end disconnected" "$run/daemon.log")" -ge "$k" ]; do
    [ $SECONDS -lt $deadline ] || fail "the daemon did not notice QEMU's death"
    sleep 0.2
  done
  rm -f "$run/monitor.sock"
  start_qemu "$run/serial-$((k + 1)).log"
  settled 1
  boots=$((boots + 1))
  echo "soak: QEMU killed and restarted $k: $(sample)"
  read -r rss _ < <(sample); samples+=("$rss")
done
kill -0 "$daemon_pid" || fail "the daemon died"
read -r rss1 threads1 fds1 < <(sample)
echo "soak: after $boots boots: RSS ${rss1} KiB, ${threads1} threads, ${fds1} fds"

# Margins. RSS: the first cycles warm the bounded pools (free tiles kept for
# reuse, per-thread heap arenas at their high-water mark: a few screens'
# worth, 32 MiB at most over the first idle value). A leak grows with every
# cycle, so with six or more boots the second half must stay within 8 MiB
# of the middle one. Threads and fds: nothing beyond gRPC's own (2).
[ "$rss1" -le $((rss0 + 32768)) ] || fail "RSS grew from $rss0 to $rss1 KiB"
mid=""
if [ "${#samples[@]}" -ge 5 ]; then
  mid="${samples[$(( ${#samples[@]} / 2 ))]}"
  [ "$rss1" -le $((mid + 8192)) ] || fail "RSS crept from $mid KiB (mid-soak) to $rss1 KiB"
fi
[ "$threads1" -le $((threads0 + 2)) ] || fail "threads grew from $threads0 to $threads1"
[ "$fds1" -le $((fds0 + 2)) ] || fail "open fds grew from $fds0 to $fds1"

# Every viewer stayed attached and shows the last guest's screen.
"$build/clients/shot/vgpu-shot" --server="unix:$run/grpc.sock" --out="$run/final.ppm" > /dev/null
for v in 1 2; do
  kill -TERM "${viewer_pids[$v]}"
  wait "${viewer_pids[$v]}" 2>/dev/null || true
  summary="$(cat "$run/viewer$v.txt")"
  case "$summary" in *"stream ended"*|*outside*) fail "viewer $v: $summary" ;; esac
  result="$("$tool" diff "$run/final.ppm" "$run/viewer$v.ppm")" ||
    fail "viewer $v does not show the guest's screen: $result ($summary)"
  echo "soak: viewer $v: $summary; $result"
done
echo "SOAK PASS: $boots boots ($reboots reboots, $kills QEMU kills), RSS $rss0 -> ${mid:-?} (mid-soak) -> $rss1 KiB, threads $threads0 -> $threads1, fds $fds0 -> $fds1 ($((SECONDS - started)) s)"
