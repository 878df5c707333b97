#!/usr/bin/env bash
# vgpu-vnc with real VNC clients, against a real vgpu-displayd and its demo
# guest: gvnccapture (gtk-vnc, ZRLE) and ../shared/tools-style RFB probes
# take pictures pixel-equal to the daemon's own screenshot; vncsnapshot
# (Tight JPEG at quality level 6) within a PSNR bound; passwords; a refused
# insecure listener; clients that stay through a daemon restart.
# Usage: vnc_clients_test.sh VGPU_DISPLAYD VGPU_VNC VGPU_SHOT VNC_PROBE
set -euo pipefail
daemon="$1"; bridge="$2"; shot="$3"; probe="$4"
work="$(mktemp -d /tmp/vgpu-vnc-XXXXXX)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
py=/usr/bin/python3
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -n 20 "$f"; done; exit 1; }

start_daemon() {  # $1: scene, $2: log name, $3: frames the guest draws
  "$daemon" --demo --demo_scene="$1" --demo_frames="${3:-20}" --width=640 --height=480 \
    --grpc_listen="unix:$work/grpc.sock" > "$work/$2.log" 2>&1 &
  daemon_pid=$!
  pids+=("$daemon_pid")
  # Up, and its guest's last frame drawn: the screen is final (on a loaded
  # machine a still screen could otherwise be one not yet drawn).
  for _ in $(seq 1 300); do
    grep -q "frames drawn" "$work/$2.log" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the daemon did not start and draw its ${3:-20} frames"
}
# The daemon's own picture of the still screen.
daemon_shot() {
  "$shot" --server="unix:$work/grpc.sock" --connect_timeout=10s --wait=stable:300 \
    --timeout=20s --out="$1" > /dev/null || fail "vgpu-shot"
}
# Compares two images: exact, or with a PSNR floor in dB.
compare() {  # $1 $2 [min_psnr]
  "$py" - "$@" <<'PY'
import math, sys
from PIL import Image, ImageChops, ImageStat
a = Image.open(sys.argv[1]).convert("RGB"); b = Image.open(sys.argv[2]).convert("RGB")
if a.size != b.size: sys.exit(f"sizes differ: {a.size} {b.size}")
diff = ImageChops.difference(a, b)
if len(sys.argv) < 4:
    box = diff.getbbox()
    if box: sys.exit(f"{sys.argv[2]} differs from {sys.argv[1]} in {box}")
    print(f"  {sys.argv[2]}: pixel-exact"); sys.exit(0)
mse = sum(v * v for v in ImageStat.Stat(diff).rms) / 3
psnr = 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse)
print(f"  {sys.argv[2]}: PSNR {psnr:.1f} dB")
if psnr < float(sys.argv[3]): sys.exit(f"PSNR {psnr:.1f} dB under {sys.argv[3]}")
PY
}

# libvncserver exports TurboJPEG symbols of its own (tjCompress2, ...):
# vgpu-vnc must load the real libturbojpeg first, or the feed's JPEG
# decoding binds to libvncserver's copy.
needed="$(readelf -d "$bridge" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
case "$needed" in
  *libturbojpeg*libvncserver*) ;;
  *) fail "vgpu-vnc loads libvncserver before libturbojpeg: $needed" ;;
esac

start_daemon console daemon
"$bridge" --server="unix:$work/grpc.sock" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  > "$work/vnc.log" 2>&1 &
pids+=("$!")
port=""
for _ in $(seq 1 100); do
  port="$(sed -n 's|.*vnc://127.0.0.1:\([0-9]*\).*|\1|p' "$work/vnc.log")"
  [ -n "$port" ] && grep -q "feed from the daemon" "$work/vnc.log" && break
  sleep 0.1
done
grep -q "feed from the daemon" "$work/vnc.log" || fail "vgpu-vnc got no feed from the daemon"
metrics_port="$(sed -n 's|.*Prometheus metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$work/vnc.log")"
[ -n "$port" ] || fail "vgpu-vnc did not listen"
display=$((port - 5900))
daemon_shot "$work/daemon.png"

# gvnccapture (gtk-vnc: ZRLE, Hextile, RRE, Raw; writes PNG).
gvnccapture --quiet "127.0.0.1:$display" "$work/gvnc.png" || fail "gvnccapture"
compare "$work/daemon.png" "$work/gvnc.png" || fail "gvnccapture's picture"
# libvncclient in each lossless encoding.
for encodings in "copyrect zrle" hextile raw "copyrect tight"; do
  "$probe" --port="$port" --encodings="$encodings" --out="$work/probe.ppm" > "$work/probe.log" 2>&1 \
    || fail "vnc probe ($encodings)"
  echo -n "$encodings:"; compare "$work/daemon.png" "$work/probe.ppm" || fail "probe ($encodings)"
done
# vncsnapshot: Tight JPEG at quality level 6, as noVNC asks; the file is a
# JPEG too (quality 100).
vncsnapshot -quiet -encodings "tight copyrect" -vncQuality 6 -quality 100 \
  "127.0.0.1:$display" "$work/snap.jpg" > "$work/vncsnapshot.log" 2>&1 || fail "vncsnapshot"
compare "$work/daemon.png" "$work/snap.jpg" 30 || fail "vncsnapshot's picture"
echo "PASS: real clients see the daemon's screen"

# Prometheus: what those clients got, by encoding.
[ -n "$metrics_port" ] || fail "no metrics port"
exec 3<>"/dev/tcp/127.0.0.1/$metrics_port"
printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
cat <&3 > "$work/metrics.txt" || true
exec 3<&-
for series in 'vgpu_vnc_feed_connected{scanout="0"} 1' 'vgpu_vnc_connections_total{scanout="0"}' \
    'vgpu_vnc_rects_total{encoding="ZRLE",scanout="0"}' 'vgpu_vnc_rects_total{encoding="hextile",scanout="0"}' \
    'vgpu_vnc_rects_total{encoding="raw",scanout="0"}' 'vgpu_vnc_sent_bytes_total{encoding="tight",scanout="0"}' \
    'vgpu_vnc_updates_total{scanout="0"}' 'vgpu_vnc_feed_updates_total{scanout="0"}'; do
  grep -qF "$series" "$work/metrics.txt" || { cat "$work/metrics.txt"; fail "no $series"; }
done
connections="$(sed -n 's/^vgpu_vnc_connections_total{scanout="0"} \([0-9]*\).*/\1/p' "$work/metrics.txt")"
[ "${connections:-0}" -ge 6 ] || fail "vgpu_vnc_connections_total is ${connections:-0}, want >= 6"
echo "PASS: the bridge's Prometheus metrics"

# The daemon restarts with another scene: a connected client stays and sees
# the new screen.
"$probe" --port="$port" --encodings="copyrect zrle" --out="$work/after.ppm" \
  --until_changes=1 --stable_ms=1000 --timeout=30 > "$work/restart-probe.log" 2>&1 &
probe_pid=$!
pids+=("$probe_pid")
for _ in $(seq 1 100); do grep -q "first picture" "$work/restart-probe.log" && break; sleep 0.1; done
grep -q "first picture" "$work/restart-probe.log" || fail "the probe did not connect"
kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
# One frame: the new screen is still from its first update, so a loaded
# machine cannot make the probe take a half-drawn scene for still.
start_daemon demo daemon2 1
wait "$probe_pid" || fail "the client did not stay through the daemon's restart"
daemon_shot "$work/daemon2.png"
compare "$work/daemon2.png" "$work/after.ppm" || fail "after the restart"
echo "PASS: a client stays through a daemon restart and gets the new screen"

# Passwords from files: full control, view only; a wrong one is refused.
printf 'secret-1\n' > "$work/full.pass"; printf 'viewer-2\n' > "$work/view.pass"
chmod 600 "$work/full.pass" "$work/view.pass"
"$bridge" --server="unix:$work/grpc.sock" --listen=127.0.0.1:0 \
  --password_file="$work/full.pass" --view_password_file="$work/view.pass" > "$work/auth.log" 2>&1 &
pids+=("$!")
auth_port=""
for _ in $(seq 1 100); do
  auth_port="$(sed -n 's|.*vnc://127.0.0.1:\([0-9]*\).*|\1|p' "$work/auth.log")"
  [ -n "$auth_port" ] && break; sleep 0.1
done
[ -n "$auth_port" ] || fail "vgpu-vnc with passwords did not listen"
"$probe" --port="$auth_port" --out="$work/auth.ppm" > /dev/null 2>&1 && fail "no password was accepted"
"$probe" --port="$auth_port" --password=wrong --out="$work/auth.ppm" > /dev/null 2>&1 && fail "a wrong password was accepted"
"$probe" --port="$auth_port" --password=secret-1 --out="$work/auth.ppm" > /dev/null || fail "the password"
"$probe" --port="$auth_port" --password=viewer-2 --out="$work/auth.ppm" > /dev/null || fail "the view-only password"
echo "PASS: VNC passwords"

# Start-up errors: one line, exit 2.
set +e
"$bridge" --server="unix:$work/grpc.sock" --listen=0.0.0.0:0 > "$work/err.log" 2>&1; code=$?
set -e
[ "$code" = 2 ] && grep -q "not a loopback address" "$work/err.log" || fail "a network listener without --insecure_network"
set +e
"$bridge" --password_file="$work/missing" > "$work/err.log" 2>&1; code=$?
set -e
[ "$code" = 2 ] && grep -q "cannot read" "$work/err.log" || fail "a missing password file"
set +e
"$bridge" --server="unix:$work/grpc.sock" --listen="127.0.0.1:$port" > "$work/err.log" 2>&1; code=$?
set -e
[ "$code" = 2 ] && grep -q "in use" "$work/err.log" || fail "a port in use"
# The console's TLS files: both or neither, and files that can serve.
set +e
"$bridge" --server="unix:$work/grpc.sock" --listen=127.0.0.1:0 --web_listen=127.0.0.1:0 \
  --web_tls_cert="$work/full.pass" > "$work/err.log" 2>&1; code=$?
set -e
[ "$code" = 2 ] && grep -q "go together" "$work/err.log" || fail "a certificate without its key"
set +e
"$bridge" --server="unix:$work/grpc.sock" --listen=127.0.0.1:0 --web_listen=127.0.0.1:0 \
  --web_tls_cert="$work/full.pass" --web_tls_key="$work/view.pass" > "$work/err.log" 2>&1; code=$?
set -e
[ "$code" = 2 ] && grep -q "cannot use the certificate" "$work/err.log" || fail "a file that is no certificate"
set +e
"$bridge" --server="unix:$work/grpc.sock" --listen=127.0.0.1:0 --web_listen=0.0.0.0:0 \
  --web_tls_cert="$work/full.pass" --web_tls_key="$work/view.pass" > "$work/err.log" 2>&1; code=$?
set -e
[ "$code" = 2 ] && grep -q "has no password" "$work/err.log" || fail "an HTTPS console on the network without a password"
echo "PASS: start-up errors"
