#!/usr/bin/env bash
# vgpu-displayd against QEMU's reference vhost-user-gpu back-end, driven by
# the same synthetic guest (vgpu-synth-guest) over vhost-user, in one run:
# frames per second and back-end CPU seconds per 1000 frames, for 1080p
# full-screen updates (video) and console text (one 8x16 cell per frame).
# Medians of REPEAT runs (default 3).
# Usage: backend_bench.sh BUILD_DIR [E2E_CACHE_DIR]
#   (the reference back-end comes from the same cache tests/e2e/fetch.sh fills)
set -euo pipefail
build="$(cd "$1" && pwd)"
cache="${2:-$build/e2e-cache}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repeat="${REPEAT:-3}"
"$here/../e2e/fetch.sh" "$cache" >/dev/null
reference="$cache/root/usr/lib/qemu/vhost-user-gpu"
ours="$build/server/vgpu-displayd"
guest="$build/clients/synth_guest/vgpu-synth-guest"
hz="$(getconf CLK_TCK)"
work="$(mktemp -d /tmp/vgpu-bench-XXXXXX)"
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run BACKEND SCENE FRAMES -> "fps cpu_seconds_per_1000_frames"
run() {
  local backend="$1" scene="$2" frames="$3" socket="$work/$1.sock" pid
  rm -f "$socket"
  if [ "$backend" = ours ]; then
    "$ours" --vhost_user_socket="$socket" --width=1920 --height=1080 > "$work/$backend.log" 2>&1 &
  else
    "$reference" --socket-path="$socket" > "$work/$backend.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 1 50); do [ -S "$socket" ] && break; sleep 0.1; done
  local before after line out="$work/guest.out"
  before="$(cpu_ticks "$pid")"
  # The guest reports, then keeps the connection while we sample the
  # back-end (the reference back-end exits as soon as its VMM leaves).
  "$guest" --socket="$socket" --scene="$scene" --frames="$frames" --width=1920 --height=1080 \
    --linger=3s > "$out" &
  local guest_pid=$!
  for _ in $(seq 1 600); do grep -q "fps=" "$out" && break; sleep 0.1; done
  after="$(cpu_ticks "$pid")"
  line="$(cat "$out")"
  kill "$guest_pid" "$pid" 2>/dev/null || true
  wait "$guest_pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local fps="${line##*fps=}"
  fps="${fps%% *}"
  awk -v f="$fps" -v t="$((after - before))" -v hz="$hz" -v n="$frames" \
    'BEGIN { printf "%s %.4f\n", f, t / hz / n * 1000 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf "%-8s %-9s %12s %22s\n" scene backend fps "cpu s / 1000 frames"
declare -A fps cpu
for scene in video console; do
  frames=1000
  [ "$scene" = console ] && frames=20000
  for backend in ours reference; do
    results=()
    for _ in $(seq 1 "$repeat"); do results+=("$(run "$backend" "$scene" "$frames")"); done
    fps[$scene.$backend]="$(printf '%s\n' "${results[@]}" | cut -d' ' -f1 | median)"
    cpu[$scene.$backend]="$(printf '%s\n' "${results[@]}" | cut -d' ' -f2 | median)"
    printf "%-8s %-9s %12s %22s\n" "$scene" "$backend" "${fps[$scene.$backend]}" "${cpu[$scene.$backend]}"
  done
done
echo
for scene in video console; do
  awk -v s="$scene" -v fo="${fps[$scene.ours]}" -v fr="${fps[$scene.reference]}" \
      -v co="${cpu[$scene.ours]}" -v cr="${cpu[$scene.reference]}" 'BEGIN {
    printf "%-8s frame rate %.2fx the reference (target >= 2x on video); CPU per frame %.2fx (target < 1x)\n",
           s, fo / fr, (cr > 0 ? co / cr : 0) }'
done
