#!/usr/bin/env bash
# The operator's and the CI engineer's mistakes, each with the exit code and
# the message it must give: bad flags and values, listeners in use (two
# daemons on one port, one vhost-user socket, one metrics port), outputs
# that cannot be written, a daemon that is still starting or goes away,
# signals, --help and --version on every program.
# Usage: cli_test.sh VGPU_DISPLAYD VGPU_SHOT VGPU_WATCH VGPU_SYNTH_GUEST VGPU_INPUT
set -uo pipefail
daemon="$(realpath "$1")"; shot="$(realpath "$2")"; watch="$(realpath "$3")"; synth="$(realpath "$4")"
input="$(realpath "$5")"
work="$(mktemp -d /tmp/vgpu-cli-XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
failures=0
checks=0

# expect CODE PATTERN COMMAND...: runs COMMAND (60 s at most), checks its exit
# code and that its output (stdout and stderr) contains PATTERN (grep -E).
expect() {
  local code="$1" pattern="$2"; shift 2
  checks=$((checks + 1))
  timeout 60 "$@" > out.txt 2>&1
  local got=$?
  if [ "$got" != "$code" ] || ! grep -qE -- "$pattern" out.txt; then
    echo "FAIL: $* -> exit $got (want $code), output:"; sed 's/^/    /' out.txt
    echo "    (wanted /$pattern/)"
    failures=$((failures + 1))
  else
    echo "ok   exit $code  $(basename "$1") ${*:2} :: $(grep -E -m1 -- "$pattern" out.txt)"
  fi
}
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# start_daemon LOG FLAGS...: starts vgpu-displayd in the background and waits
# for its start-up line; sets $daemon_pid.
start_daemon() {
  local log="$1"; shift
  "$daemon" "$@" > "$log" 2>&1 &
  daemon_pid=$!
  pids+=("$daemon_pid")
  for _ in $(seq 1 100); do
    grep -q "serving a vhost-user-gpu device" "$log" && return 0
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log"; fail "daemon did not start: $*"; return 1
}
port_of() { sed -n "s/.*$2 on [^ ]*:\([0-9]*\).*/\1/p" "$1" | head -n 1; }
temp_dirs() { ls -d /tmp/vgpu-displayd-* 2>/dev/null | wc -l; }

echo "== every program: --help, --version, unknown flags, stray arguments"
for program in "$daemon" "$shot" "$watch" "$synth" "$input"; do
  expect 0 '^Flags:' "$program" --help
  expect 0 '\(vgpu-display\) [0-9]+\.[0-9]+\.[0-9]+$' "$program" --version
  expect 2 'unknown flag --bogus \(see --help\)' "$program" --bogus
  expect 2 "unexpected argument 'stray'" "$program" stray
  expect 2 "unexpected argument 'stray'" "$program" -- stray
done
expect 0 '--vhost_user_socket' "$daemon" --help
expect 0 '--connect_timeout' "$shot" --help
expect 0 '--tls_ca' "$watch" --help
expect 0 '120 MB/s' "$watch" --help
"$daemon" --help | grep -q "No flags matched" && fail "--help says No flags matched"

echo "== vgpu-displayd: values that cannot work are refused at start-up"
before="$(temp_dirs)"
expect 2 'nothing to serve: pass --vhost_user_socket' "$daemon"
expect 2 '--duration=10: a duration needs a unit' "$daemon" --demo --duration=10
expect 2 '--duration must be 0 \(run until stopped\) or more' "$daemon" --demo --duration=-1s
expect 2 '--grpc_listen=127.0.0.1:99999: port must be 0..65535' "$daemon" --demo --grpc_listen=127.0.0.1:99999
expect 2 '--grpc_listen=nonsense: expected host:port or unix:/path' "$daemon" --demo --grpc_listen=nonsense
expect 2 '--max_host_memory_mib must be 1..1048576 \(got 0\)' "$daemon" --demo --max_host_memory_mib=0
expect 2 '--max_host_memory_mib=2 cannot hold one 1280x800 frame' "$daemon" --demo --max_host_memory_mib=2
expect 2 '--max_resources must be 1..1048576 \(got 0\)' "$daemon" --demo --max_resources=0
expect 2 '--max_viewers must be 1..4096' "$daemon" --demo --max_viewers=0
expect 2 '--max_resources=-1: must be a whole number' "$daemon" --demo --max_resources=-1
expect 2 'display mode 5x800 outside 16..4095' "$daemon" --demo --width=5
expect 2 "--demo_scene must be one of demo, console, scroll, video, cursor \(got 'nope'\)" "$daemon" --demo --demo_scene=nope
expect 2 '--resource_policy must be copy, shared or auto' "$daemon" --demo --resource_policy=fast
expect 2 'folder .*/missing does not exist' "$daemon" --demo --grpc_listen="unix:$work/missing/g.sock"
expect 2 '--vhost_user_socket: cannot listen on .*: folder .* does not exist' "$daemon" --vhost_user_socket="$work/missing/v.sock"
expect 2 '--metrics_listen=bad: expected host:port' "$daemon" --demo --metrics_listen=bad
expect 2 '--tls_cert and --tls_key go together' "$daemon" --demo --tls_cert=server.pem
expect 2 '--tls_cert=missing.pem: cannot read: No such file or directory' "$daemon" --demo --tls_cert=missing.pem --tls_key=missing.key
expect 2 '--snapshot=/proc/x/screen.ppm: cannot write' "$daemon" --demo --snapshot=/proc/x/screen.ppm
expect 2 '--metrics_listen and --grpc_listen both use port 45999' "$daemon" --demo --grpc_listen=127.0.0.1:45999 --metrics_listen=127.0.0.1:45999
expect 2 'folder .*/missing does not exist' "$daemon" --demo --snapshot="$work/snaps/s.ppm" --grpc_listen="unix:$work/missing/g.sock"
[ ! -e "$work/snaps" ] || fail "a failed start made the --snapshot folder"
[ "$(temp_dirs)" = "$before" ] || fail "a failed start left a /tmp/vgpu-displayd-* folder behind"

echo "== vgpu-displayd: no silent takeovers"
start_daemon a.log --vhost_user_socket="$work/vm.sock" --grpc_listen=127.0.0.1:0 \
  --metrics_listen=127.0.0.1:0 --width=320 --height=200 --demo --demo_scene=cursor
first="$daemon_pid"
grpc_port="$(port_of a.log 'gRPC display service')"
metrics_port="$(port_of a.log 'Prometheus metrics')"
[ -n "$grpc_port" ] && [ -n "$metrics_port" ] || fail "no ports in the log"
expect 2 "127.0.0.1:$grpc_port is in use" "$daemon" --demo --grpc_listen="127.0.0.1:$grpc_port"
expect 2 "--metrics_listen: 127.0.0.1:$metrics_port is in use" "$daemon" --demo --grpc_listen=127.0.0.1:0 --metrics_listen="127.0.0.1:$metrics_port"
expect 2 "$work/vm.sock is in use: another process holds $work/vm.sock.lock" "$daemon" --vhost_user_socket="$work/vm.sock" --grpc_listen=127.0.0.1:0
[ -S "$work/vm.sock" ] || fail "the refused daemon removed the first one's socket"
# The first daemon still serves its own screen, and only it.
for _ in 1 2 3; do
  expect 0 'shot.png: 320x200' "$shot" --server="127.0.0.1:$grpc_port" --out=shot.png
done
# A socket nobody listens on (its daemon was killed) is replaced.
kill -9 "$first"; wait "$first" 2>/dev/null
[ -S "$work/vm.sock" ] || fail "no stale socket to replace"
start_daemon b.log --vhost_user_socket="$work/vm.sock" --grpc_listen=127.0.0.1:0 --duration=1s
wait "$daemon_pid"; code=$?
[ "$code" = 0 ] || fail "the --duration run exited $code"
grep -q -- '--duration=1s elapsed: shutting down' b.log || fail "the end of --duration is not said: $(tail -n 3 b.log)"
[ ! -e "$work/vm.sock" ] && [ ! -e "$work/vm.sock.lock" ] || fail "the socket or its lock stayed behind"
# A live socket of another program (no lock file) is not taken either.
/usr/bin/python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); print("ready", flush=True); time.sleep(60)' "$work/other.sock" > other.log &
pids+=($!)
for _ in $(seq 1 50); do grep -q ready other.log && break; sleep 0.1; done
expect 2 "other.sock is in use: a process accepts connections on it" "$daemon" --vhost_user_socket="$work/other.sock" --grpc_listen=127.0.0.1:0
# Off loopback without TLS: a warning.
start_daemon c.log --demo --grpc_listen=0.0.0.0:0 --duration=1s
wait "$daemon_pid"
grep -q "without TLS: anyone who can reach it sees the VM's screen" c.log || fail "no warning for plaintext off loopback"
start_daemon d.log --demo
kill -TERM "$daemon_pid"; wait "$daemon_pid"; code=$?
[ "$code" = 0 ] && grep -q "SIGTERM received: shutting down" d.log || fail "SIGTERM: exit $code, $(tail -n 2 d.log)"

echo "== vgpu-shot"
expect 2 '--timeout=10: a duration needs a unit, e.g. 10s' "$shot" --timeout=10
expect 2 '--quality must be 1..100 \(got 0\)' "$shot" --quality=0 --out=x.jpg
expect 2 '--out must end in .png, .jpg, .jpeg or .ppm' "$shot" --out=x.gif
expect 2 '--wait must be now, next, after:SEQ or stable:MS' "$shot" --wait=later
expect 2 '--tls_ca=missing.pem: cannot read: No such file or directory' "$shot" --tls_ca=missing.pem
expect 2 '--tls_cert and --tls_key go together' "$shot" --tls_cert=client.pem
expect 1 'cannot write /proc/nope/x.png: No such file or directory' "$shot" --out=/proc/nope/x.png
expect 1 'cannot reach unix:.*/nobody.sock: .*is vgpu-displayd running there\?' "$shot" --server="unix:$work/nobody.sock"
# CI starts the daemon and the screenshot step together.
"$shot" --server="unix:$work/late.sock" --connect_timeout=30s --wait=next --out=late.png > late.txt 2>&1 &
shot_pid=$!
sleep 1
start_daemon e.log --demo --width=640 --height=480 --grpc_listen="unix:$work/late.sock"
wait "$shot_pid"; code=$?
[ "$code" = 0 ] && grep -q "late.png: 640x480" late.txt || fail "--connect_timeout: exit $code, $(cat late.txt)"
expect 1 'no scanout 3' "$shot" --server="unix:$work/late.sock" --scanout=3
expect 1 'not still for 5s within 300ms \(the timeout is not longer' "$shot" --server="unix:$work/late.sock" --wait=stable:5000 --timeout=300ms
expect 1 'not still for 300ms within 1s \(it kept changing' "$shot" --server="unix:$work/late.sock" --wait=stable:300 --timeout=1s

echo "== vgpu-watch"
expect 1 '--out: cannot write /proc/nope/a.ppm: No such file or directory' "$watch" --server="unix:$work/late.sock" --out=/proc/nope/a.ppm
expect 1 'cannot write --record=/proc/nope/a.rec: No such file or directory' "$watch" --server="unix:$work/late.sock" --record=/proc/nope/a.rec
expect 2 "--format must be zstd, raw, rgbx, png or jpeg \(got 'gif'\)" "$watch" --format=gif
expect 2 '--quality must be 1..100' "$watch" --quality=101
expect 1 'cannot reach unix:.*nobody.sock' "$watch" --server="unix:$work/nobody.sock"
# An earlier --out stays when the watch gets no screen.
printf 'P6\n1 1\n255\nabc' > keep.ppm
expect 1 'no screen was received; keep.ppm not written' "$watch" --server="unix:$work/nobody.sock" --out=keep.ppm
[ "$(cat keep.ppm | tail -c 3)" = abc ] || fail "an earlier --out file was replaced or removed"
# Ctrl-C while waiting for a daemon that never comes: stops at once.
"$watch" --server="unix:$work/nobody.sock" --connect_timeout=60s > wait.txt 2>&1 &
watch_pid=$!
sleep 1
start_wait=$(date +%s)
kill -INT "$watch_pid"; wait "$watch_pid"; code=$?
[ "$code" = 130 ] && [ $(( $(date +%s) - start_wait )) -le 5 ] ||
  fail "SIGINT during --connect_timeout: exit $code after $(( $(date +%s) - start_wait ))s, $(cat wait.txt)"
expect 0 'stopped after --duration=1s' "$watch" --server="unix:$work/late.sock" --duration=1s --out=w1.ppm
head -c 2 w1.ppm | grep -q P6 || fail "--duration: no --out"
expect 0 'recording raw pixels .* 120 MB/s' "$watch" --server="unix:$work/late.sock" --format=raw --record=raw.rec --duration=500ms
# Ctrl-C: the last screen and the summary are still written.
"$watch" --server="unix:$work/late.sock" --out=int.ppm > int.txt 2>&1 &
watch_pid=$!
for _ in $(seq 1 100); do grep -q subscribed int.txt && break; sleep 0.1; done
sleep 0.5
kill -INT "$watch_pid"; wait "$watch_pid"; code=$?
[ "$code" = 130 ] && grep -q "stopped by SIGINT" int.txt && grep -q "updates (" int.txt &&
  head -c 2 int.ppm | grep -q P6 || fail "SIGINT: exit $code, $(cat int.txt)"
# The daemon goes away: exit 3, with the last screen.
"$watch" --server="unix:$work/late.sock" --out=gone.ppm > gone.txt 2>&1 &
watch_pid=$!
for _ in $(seq 1 100); do grep -q subscribed gone.txt && break; sleep 0.1; done
sleep 0.5
kill -TERM "$daemon_pid"; wait "$daemon_pid"
wait "$watch_pid"; code=$?
[ "$code" = 3 ] && grep -qE "the daemon (shut down|ended the stream)" gone.txt && head -c 2 gone.ppm | grep -q P6 ||
  fail "daemon shutdown: exit $code, $(cat gone.txt)"

echo "== vgpu-synth-guest"
expect 2 '--socket is required' "$synth"

echo "$checks checks, $failures failures"
[ "$failures" = 0 ] && echo "PASS: command-line behaviour"
[ "$failures" = 0 ]
