#!/usr/bin/env bash
# The main job (README): installs dependencies, builds the release, and runs
# vgpu-displayd with its built-in demo guest plus the VNC bridge (vgpu-vnc):
# open the printed URL in a browser, or point a VNC viewer at the printed
# address. The screen is also written to demo-out/screen.ppm once a second.
# Ctrl-C stops both.
#   SCENE=demo|console|scroll|video|cursor   DURATION=10s (default: until Ctrl-C)
#   WEB_PORT=6080 VNC_PORT=5900          (loopback only)
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target vgpu-displayd vgpu-vnc vgpu-shot vgpu-watch vgpu-input
mkdir -p demo-out
web_port="${WEB_PORT:-6080}"
vnc_port="${VNC_PORT:-5900}"

build/release/server/vgpu-displayd --demo --demo_scene="${SCENE:-demo}" \
  --duration="${DURATION:-0s}" --snapshot=demo-out/screen.ppm \
  --grpc_listen=127.0.0.1:50051 &
daemon=$!
build/release/clients/vnc/vgpu-vnc --server=127.0.0.1:50051 \
  --listen="127.0.0.1:$vnc_port" --web_listen="127.0.0.1:$web_port" &
bridge=$!
trap 'kill $bridge $daemon 2>/dev/null || true' INT TERM EXIT

# The bridge prints its addresses as it starts; then the tips.
sleep 1
if kill -0 "$bridge" 2>/dev/null; then
  echo
  echo "  Browser console:  http://127.0.0.1:$web_port/"
  echo "  VNC viewer:       127.0.0.1:$vnc_port  (e.g. vncviewer 127.0.0.1::$vnc_port)"
  echo "  gRPC:             build/release/clients/shot/vgpu-shot --server=127.0.0.1:50051 --out=screen.png"
  echo "  Type into it:     type at the demo prompt in the browser console, or"
  echo "                    build/release/clients/input/vgpu-input --server=127.0.0.1:50051 --type='echo hi\\n'"
  echo "  (from another machine: ssh -L $web_port:127.0.0.1:$web_port this-host)"
  echo
fi
# Ends when the daemon ends (DURATION, Ctrl-C) or the bridge fails to start.
wait -n "$daemon" "$bridge" || true
