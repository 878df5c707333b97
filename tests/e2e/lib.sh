# Shared by the real-guest scripts (run.sh, soak.sh): sourced after
# `build`, `cache`, `here`, `width` and `height` are set; prepare_guest sets
# `tool`, `run` (a scratch folder) and `pids` (killed at exit).

# Fetches QEMU and the guest (cached), builds the initramfs, makes the
# scratch folder $1-XXXXXX under /tmp.
prepare_guest() {
  "$here/fetch.sh" "$cache"
  tool="$build/tests/e2e/e2e_tool"
  "$here/build_initramfs.sh" "$cache" "$tool" "$width" "$height" "$cache/initrd.gz"
  run="$(mktemp -d "/tmp/$1-XXXXXX")"
  pids=()
  trap cleanup EXIT
}
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}

fail() {
  echo "E2E FAIL: $*"
  echo "--- serial"; tail -n 40 "${serial:-$run/serial.log}" 2>/dev/null || true
  echo "--- qemu"; cat "$run"/qemu*.log 2>/dev/null || true
  echo "--- vgpu-displayd"; tail -n 40 "$run/daemon.log" 2>/dev/null || true
  exit 1
}

# Waits until the serial console ($serial) has printed marker $1 $2 times.
wait_serial() {
  local marker="$1" count="$2" deadline=$((SECONDS + 60))
  local seen
  while seen="$(grep -c "E2E PHASE $marker" "$serial" 2>/dev/null || true)"; [ "${seen:-0}" -lt "$count" ]; do
    [ $SECONDS -lt $deadline ] || fail "no '$marker' (#$count) on the serial console within 60 s"
    grep -q "E2E PHASE NOFB" "$serial" 2>/dev/null && fail "the guest found no /dev/fb0"
    sleep 0.2
  done
}

# Waits until the daemon's snapshot ($run/screen.ppm) equals expected image $1.
wait_pixels() {
  local expected="$1" deadline=$((SECONDS + 15)) result=""
  while [ $SECONDS -lt $deadline ]; do
    if [ -f "$run/screen.ppm" ] && result="$("$tool" diff "$expected" "$run/screen.ppm")"; then
      echo "  $(basename "$expected"): $result"
      return 0
    fi
    sleep 0.2
  done
  fail "scanout never matched $(basename "$expected"): ${result:-no snapshot}"
}

# Waits until the snapshot shows console text.
wait_text() {
  local deadline=$((SECONDS + 15)) result=""
  while [ $SECONDS -lt $deadline ]; do
    if [ -f "$run/screen.ppm" ] && result="$("$tool" text "$run/screen.ppm" 40)"; then
      echo "  console text: $result"
      return 0
    fi
    sleep 0.2
  done
  fail "no console text on the scanout: $result"
}

# Starts QEMU 10 (TCG) with the busybox guest against $run/vgpu.sock; its
# serial console goes to $1, its monitor to $run/monitor.sock. Sets qemu_pid.
start_qemu() {
  local root="$cache/root"
  serial="$1"
  QEMU_MODULE_DIR="$root/usr/lib/x86_64-linux-gnu/qemu" "$root/usr/bin/qemu-system-x86_64" \
    -L "$root/usr/share/qemu" -L "$root/usr/share/seabios" \
    -machine q35 -accel tcg -m 512 -smp 1 -nodefaults -vga none \
    -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz" -append "console=ttyS0 quiet e2e.hold=3" \
    -object memory-backend-memfd,id=mem,size=512M,share=on -machine memory-backend=mem \
    -chardev socket,id=vgpu,path="$run/vgpu.sock" -device vhost-user-gpu-pci,chardev=vgpu \
    -display none -serial file:"$serial" \
    -monitor unix:"$run/monitor.sock",server=on,wait=off >> "$run/qemu.log" 2>&1 &
  qemu_pid=$!
  pids+=("$qemu_pid")
}

# Starts vgpu-displayd on $run/vgpu.sock with extra flags "$@"; waits for
# its socket. Sets daemon_pid.
start_daemon() {
  "$build/server/vgpu-displayd" --vhost_user_socket="$run/vgpu.sock" \
    --snapshot="$run/screen.ppm" --snapshot_interval=100ms \
    --grpc_listen="unix:$run/grpc.sock" "$@" > "$run/daemon.log" 2>&1 &
  daemon_pid=$!
  pids+=("$daemon_pid")
  for _ in $(seq 1 50); do [ -S "$run/vgpu.sock" ] && break; sleep 0.1; done
  [ -S "$run/vgpu.sock" ] || fail "vgpu-displayd did not create its socket"
}

# Starts the VNC bridge on $run/grpc.sock, logging to $1; sets bridge_pid
# and vnc_port (the port it chose).
start_vgpu_vnc() {
  "$build/clients/vnc/vgpu-vnc" --server="unix:$run/grpc.sock" --listen=127.0.0.1:0 \
    > "$1" 2>&1 &
  bridge_pid=$!
  pids+=("$bridge_pid")
  vnc_port=""
  for _ in $(seq 1 100); do
    vnc_port="$(sed -n 's|.*vnc://127.0.0.1:\([0-9]*\).*|\1|p' "$1")"
    [ -n "$vnc_port" ] && return 0
    sleep 0.1
  done
  fail "vgpu-vnc did not start: $(cat "$1")"
}
