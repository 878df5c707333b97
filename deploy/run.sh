#!/usr/bin/env bash
# The main job (README): installs dependencies, builds the release, and runs
# vgpu-displayd serving the built-in demo guest. What the display shows is
# written to demo-out/screen.ppm once a second. Ctrl-C stops it.
#   SCENE=console|scroll|video|cursor   DURATION=10s (default: until Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target vgpu-displayd vgpu-shot vgpu-watch
mkdir -p demo-out
echo "vgpu-displayd: demo guest running; the screen is in demo-out/screen.ppm (any image viewer),"
echo "  and over gRPC: build/release/clients/shot/vgpu-shot --out=screen.png, or build/release/clients/watch/vgpu-watch"
exec build/release/server/vgpu-displayd --demo --demo_scene="${SCENE:-console}" \
  --duration="${DURATION:-0s}" --snapshot=demo-out/screen.ppm
