#!/usr/bin/env bash
# Input end to end through real processes: vgpu-input -> the daemon's Input
# service -> its virtio-input devices -> the demo guest's virtio-input
# driver over vhost-user -> the guest's console, whose picture changes, and
# whose CapsLock LED comes back on the keyboard's status queue. Then the
# errors a script meets (no keyboard, a key or character that does not
# exist, a token or client certificate missing) with their exit codes and
# messages.
# VNC clients type and click through vgpu-vnc, and a view-only client
# cannot. (QEMU extended key events: the browser console test, with noVNC.)
# vgpu-synth-guest drives a virtio-input keyboard of its own too.
# Usage: input_test.sh VGPU_DISPLAYD VGPU_INPUT VGPU_SHOT VGPU_VNC VNC_PROBE
#          VGPU_SYNTH_GUEST
set -uo pipefail
daemon="$(realpath "$1")"; input="$(realpath "$2")"; shot="$(realpath "$3")"
vnc="$(realpath "$4")"; probe="$(realpath "$5")"; synth="$(realpath "$6")"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d /tmp/vgpu-input-XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# expect CODE PATTERN COMMAND...: exit code and output (grep -E).
expect() {
  local code="$1" pattern="$2"; shift 2
  timeout 60 "$@" > out.txt 2>&1
  local got=$?
  if [ "$got" != "$code" ] || ! grep -qE -- "$pattern" out.txt; then
    echo "FAIL: $* -> exit $got (want $code), output:"; sed 's/^/    /' out.txt
    failures=$((failures + 1))
  else
    echo "ok   exit $code  $(basename "$1") ${*:2} :: $(grep -E -m1 -- "$pattern" out.txt)"
  fi
}
# start LOG LINE FLAGS...: the daemon, waiting for LINE in its log.
start() {
  local log="$1" line="$2"; shift 2
  "$daemon" "$@" > "$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do
    grep -q "$line" "$log" && return 0
    sleep 0.1
  done
  cat "$log"; fail "daemon did not say '$line': $*"; exit 1
}

echo "== the demo guest types, clicks and lights CapsLock"
start demo.log "frames drawn; the screen stays still" --demo --demo_frames=5 \
  --grpc_listen="unix:$work/g.sock" --width=640 --height=480
grep -q "with keyboard and tablet" demo.log || fail "the demo guest has no input: $(cat demo.log)"
g=(--server="unix:$work/g.sock")
expect 0 '^before.png: 640x480' "$shot" "${g[@]}" --wait=stable:300 --out=before.png
expect 0 'typed 13 characters \(26 key events, layout us\)' "$input" "${g[@]}" --type='echo vgpu 42\n'
expect 0 'pointer: 3 events sent' "$input" "${g[@]}" --click=600,440
expect 0 '^after.png: 640x480' "$shot" "${g[@]}" --wait=stable:300 --out=after.png
# The echo lands on the console's text rows (two lines: the command and its
# answer, a new prompt below), the click's dot where it was asked for.
/usr/bin/python3 - before.png after.png <<'PY' || fail "the guest's console did not show the typing"
import sys
from PIL import Image, ImageChops
a, b = (Image.open(p).convert("RGB") for p in sys.argv[1:3])
text = ImageChops.difference(a.crop((0, 0, 640, 400)), b.crop((0, 0, 640, 400))).getbbox()
dot = ImageChops.difference(a.crop((590, 430, 610, 450)), b.crop((590, 430, 610, 450))).getbbox()
print("text changed in", text, "dot changed in", dot)
# 16-pixel rows: the typed line, the echo, the new prompt.
assert text is not None and text[3] - text[1] >= 32, text
assert dot is not None and dot[2] - dot[0] == 5 and dot[3] - dot[1] == 5, dot
PY
expect 0 'caps_lock is on' "$input" "${g[@]}" --key=capslock --wait_led=caps_lock --timeout=10s
expect 0 'caps_lock is off' "$input" "${g[@]}" --key=capslock --wait_led=caps_lock=off --timeout=10s
expect 1 "'é' \(U\+00E9\) is on no key of keyboard layout 'us'" "$input" "${g[@]}" --type='café'
expect 2 "'\\\\q' is not an escape" "$input" "${g[@]}" --type='a\qb'
expect 1 "unknown keyboard layout 'xx'" "$input" "${g[@]}" --type=a --layout=xx
expect 0 'typed 4 characters' "$input" "${g[@]}" --type='café' --layout=fr
expect 2 "unknown key 'hyper'" "$input" "${g[@]}" --key=ctrl+hyper
expect 2 '--click is X,Y' "$input" "${g[@]}" --click=12
expect 2 'nothing to do' "$input" "${g[@]}"
expect 1 'did not turn on within --timeout' "$input" "${g[@]}" --wait_led=scroll_lock --timeout=1s

echo "== VNC clients type through vgpu-vnc; a view-only one cannot"
echo fullpass > full.pw
echo viewpass > view.pw
"$vnc" --server="unix:$work/g.sock" --listen=127.0.0.1:0 --password_file=full.pw \
  --view_password_file=view.pw > vnc.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q "forwarding VNC keys" vnc.log && grep -q "feed from the daemon" vnc.log && break
  sleep 0.1
done
port="$(sed -n 's|.*vnc://127.0.0.1:\([0-9]*\).*|\1|p' vnc.log)"
[ -n "$port" ] && grep -q "forwarding VNC keys" vnc.log || { cat vnc.log; fail "vgpu-vnc did not start"; }
v=(--port="$port" --timeout=20)
expect 0 'changed picture' "$probe" "${v[@]}" --password=fullpass --type='echo keysyms\n' --until_changes=1
expect 0 'changed picture' "$probe" "${v[@]}" --password=fullpass --click=20,460 --until_changes=1
expect 0 '^click.png: 640x480' "$shot" "${g[@]}" --wait=stable:300 --out=click.png
/usr/bin/python3 - click.png <<'PY' || fail "the VNC client's click left no dot in the guest"
import sys
from PIL import Image
pixel = Image.open(sys.argv[1]).convert("RGB").getpixel((20, 460))
print("the guest's screen at the VNC click:", pixel)
assert pixel == (127, 209, 127), pixel  # the demo's dot colour
PY
# The view-only client's CapsLock goes nowhere: once the full client's
# ScrollLock (sent after it) is lit in the guest, CapsLock is still off.
expect 0 'sent 1 keys' "$probe" "${v[@]}" --password=viewpass --key=Caps_Lock
expect 0 'sent 1 keys' "$probe" "${v[@]}" --password=fullpass --key=Scroll_Lock
expect 0 'scroll_lock is on' "$input" "${g[@]}" --wait_led=scroll_lock --timeout=10s
expect 0 'caps_lock is off' "$input" "${g[@]}" --wait_led=caps_lock=off --timeout=1s

echo "== a VNC client that leaves with a key down while another stays: the key is lifted"
# state_has PATTERN: until vgpu-input --state shows it (10 s).
state_has() {
  for _ in $(seq 1 100); do
    "$input" "${g[@]}" --state 2>&1 | grep -qE -- "$1" && return 0
    sleep 0.1
  done
  return 1
}
"$probe" --port="$port" --timeout=60 --password=fullpass --until_changes=100000 > stay.txt 2>&1 &
stay=$!; pids+=("$stay")
"$probe" --port="$port" --timeout=60 --password=fullpass --hold=Shift_L --until_changes=100000 \
  > hold.txt 2>&1 &
holder=$!; pids+=("$holder")
if state_has '^keyboard: attached, 1 pressed'; then
  kill "$holder"
  if state_has '^keyboard: attached, 0 pressed'; then
    echo "ok   the leaver's Shift was lifted; the other client is still connected"
  else
    fail "a VNC client left with Shift down and it stayed down: $("$input" "${g[@]}" --state)"
  fi
else
  fail "the held Shift never reached the guest: $(cat hold.txt) $("$input" "${g[@]}" --state)"
fi
kill -0 "$stay" 2>/dev/null || fail "the staying VNC client is gone: $(cat stay.txt)"
expect 0 '^controller: ' "$input" "${g[@]}" --state
kill "$stay" 2>/dev/null

echo "== vgpu-synth-guest's keyboard"
start synth.log "serving a virtio-input keyboard" --vhost_user_socket="$work/s.sock" \
  --keyboard_socket="$work/sk.sock" --grpc_listen="unix:$work/s-grpc.sock" --width=320 --height=200
"$synth" --socket="$work/s.sock" --keyboard_socket="$work/sk.sock" --scene=demo --width=320 \
  --height=200 --frames=3 --fps=30 --linger=120s > synth.txt 2>&1 &
pids+=($!)
# Until its driver runs the keyboard (a refusal names what is missing).
for _ in $(seq 1 100); do
  "$input" --server="unix:$work/s-grpc.sock" --key=capslock > /dev/null 2>&1 && break
  sleep 0.1
done
expect 0 'caps_lock is on' "$input" --server="unix:$work/s-grpc.sock" --wait_led=caps_lock --timeout=10s

echo "== a daemon with no input devices"
start plain.log "serving a vhost-user-gpu device" --vhost_user_socket="$work/vu.sock" \
  --grpc_listen="unix:$work/p.sock"
expect 1 'no keyboard is served \(vgpu-displayd --keyboard_socket\)' "$input" --server="unix:$work/p.sock" --type=x
expect 1 'no tablet is served' "$input" --server="unix:$work/p.sock" --click=1,1

echo "== a token decides who may control"
echo 'tok-123' > token
echo 'wrong' > wrong
start token.log "frames drawn" --demo --demo_frames=1 --grpc_listen="unix:$work/t.sock" \
  --width=320 --height=200 --input_token_file=token
expect 1 'needs the daemon.s token' "$input" --server="unix:$work/t.sock" --type=x
expect 1 'needs the daemon.s token' "$input" --server="unix:$work/t.sock" --type=x --token_file=wrong
expect 0 'typed 1 characters' "$input" --server="unix:$work/t.sock" --type=x --token_file=token
expect 2 'token_file=missing: cannot read' "$input" --server="unix:$work/t.sock" --type=x --token_file=missing
expect 2 'input_token_file=missing: cannot read' "$daemon" --demo --input_token_file=missing

echo "== mutual TLS: the client certificate's name decides"
. "$here/test_certs.sh"
make_cert server localhost
make_cert operator operator
make_cert watcher watcher
expect 2 'input_allowed_clients names client certificates: it needs --tls_client_ca' \
  "$daemon" --demo --input_allowed_clients=operator
start tls.log "frames drawn" --demo --demo_frames=1 --grpc_listen=127.0.0.1:0 --width=320 --height=200 \
  --tls_cert=server.pem --tls_key=server.key --tls_client_ca=ca.pem --input_allowed_clients=operator
port="$(sed -n 's/.*gRPC display service on 127.0.0.1:\([0-9]*\).*/\1/p' tls.log)"
t=(--server="127.0.0.1:$port" --tls_ca=ca.pem)
expect 0 'typed 1 characters' "$input" "${t[@]}" --tls_cert=operator.pem --tls_key=operator.key --type=x
expect 1 'common name is one of: operator' "$input" "${t[@]}" --tls_cert=watcher.pem --tls_key=watcher.key --type=x
# Watching needs no permission.
expect 0 'num_lock is off' "$input" "${t[@]}" --tls_cert=watcher.pem --tls_key=watcher.key --wait_led=num_lock=off

[ "$failures" = 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "PASS: input"

