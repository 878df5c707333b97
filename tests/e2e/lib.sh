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
    grep -q "E2E PHASE NOINPUT" "$serial" 2>/dev/null && fail "the guest found no vgpu-display keyboard or tablet"
    sleep 0.2
  done
}

# Waits until the serial console ($serial) has shown typed line $1 $2 times.
wait_vt_line() {
  local line="$1" count="$2" deadline=$((SECONDS + 60)) seen
  while seen="$(grep -cF "E2E VT-LINE <$line>" "$serial" 2>/dev/null || true)"; [ "${seen:-0}" -lt "$count" ]; do
    [ $SECONDS -lt $deadline ] || fail "the guest's tty1 never read '$line' (#$count)"
    sleep 0.1
  done
}

# Types into the guest, checks each line arrives on its tty1 exactly (US,
# then German layout), clicks and turns the wheel on the tablet and checks
# the guest's evdev events, and lights CapsLock, sees the LED come back and
# types a line with it on.
# $1: how many times the guest has booted on this serial log.
check_input() {
  local boot="$1" input="$build/clients/input/vgpu-input" from events x y
  local server=(--server="unix:$run/grpc.sock" --timeout=30s)
  wait_serial INPUT-READY "$boot"
  cp "$run/screen.ppm" "$run/before-typing.ppm"
  "$input" "${server[@]}" --type='hello vgpu 42\n' > /dev/null || fail "vgpu-input --type failed"
  wait_vt_line "hello vgpu 42" "$boot"
  # The VT echoed the line on the guest's console: the scanout changed.
  local deadline=$((SECONDS + 15))
  while "$tool" diff "$run/before-typing.ppm" "$run/screen.ppm" > /dev/null; do
    [ $SECONDS -lt $deadline ] || fail "the typed line never showed on the guest's console"
    sleep 0.1
  done
  wait_serial KMAP-DE "$boot"
  # On a German keyboard z and y swap, @ is AltGr+Q, / is Shift+7.
  "$input" "${server[@]}" --layout=de --type='zy@/-ok\n' > /dev/null || fail "vgpu-input --layout=de failed"
  wait_vt_line "zy@/-ok" "$boot"
  echo "  typed into tty1 over gRPC (vgpu-input): us and de layouts exact, echoed on the scanout"
  from=$(($(wc -l < "$serial") + 1))
  "$input" "${server[@]}" --click=640,400 --wheel=-2 > /dev/null || fail "vgpu-input --click failed"
  deadline=$((SECONDS + 30))
  while events="$(tail -n +"$from" "$serial" | "$tool" events /dev/stdin)"; ! grep -q "^2 8 -2$" <<< "$events"; do
    [ $SECONDS -lt $deadline ] || fail "the tablet's events never reached the guest: $events"
    sleep 0.1
  done
  x="$(sed -n 's/^3 0 //p' <<< "$events" | tail -n 1)"
  y="$(sed -n 's/^3 1 //p' <<< "$events" | tail -n 1)"
  # The guest maps the axis (0..32767) back to pixels as value*(size-1)/32767.
  [ "$((x * (width - 1) / 32767))" = 640 ] && [ "$((y * (height - 1) / 32767))" = 400 ] ||
    fail "the click arrived at axis $x,$y, not pixel 640,400"
  grep -q "^1 272 1$" <<< "$events" && grep -q "^1 272 0$" <<< "$events" ||
    fail "no BTN_LEFT press and release: $events"
  echo "  tablet in /dev/input: click at 640,400 (axis $x,$y), BTN_LEFT down/up, wheel -2"
  wait_serial INPUT-DONE "$boot"
  # CapsLock, then at once a line: with the guest's CapsLock on, text still
  # arrives as typed (Shift added to lower-case letters, left off capitals).
  # The key's call ends once the guest reported its LED, so the text's call
  # knows the lock is on.
  "$input" "${server[@]}" --key=capslock --type='aB1 Caps\n' > /dev/null ||
    fail "vgpu-input --key=capslock --type failed"
  "$input" "${server[@]}" --wait_led=caps_lock > /dev/null ||
    fail "CapsLock's LED never came back from the guest"
  wait_vt_line "aB1 Caps" "$boot"
  "$input" "${server[@]}" --key=capslock --wait_led=caps_lock=off > /dev/null ||
    fail "CapsLock's LED did not go off"
  echo "  CapsLock: the guest's LED on and off through the status queue; text typed with it on arrives as typed"
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

# Starts QEMU 10 (TCG) with the busybox guest against $run/vgpu.sock (and
# the keyboard and tablet on $run/kbd.sock, $run/tab.sock); its
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
    -chardev socket,id=kbd,path="$run/kbd.sock" -device vhost-user-input-pci,chardev=kbd \
    -chardev socket,id=tab,path="$run/tab.sock" -device vhost-user-input-pci,chardev=tab \
    -display none -serial file:"$serial" \
    -monitor unix:"$run/monitor.sock",server=on,wait=off >> "$run/qemu.log" 2>&1 &
  qemu_pid=$!
  pids+=("$qemu_pid")
}

# Starts vgpu-displayd on $run/vgpu.sock with extra flags "$@"; waits for
# its socket. Sets daemon_pid.
start_daemon() {
  "$build/server/vgpu-displayd" --vhost_user_socket="$run/vgpu.sock" \
    --keyboard_socket="$run/kbd.sock" --tablet_socket="$run/tab.sock" \
    --snapshot="$run/screen.ppm" --snapshot_interval=100ms \
    --grpc_listen="unix:$run/grpc.sock" "$@" > "$run/daemon.log" 2>&1 &
  daemon_pid=$!
  pids+=("$daemon_pid")
  for _ in $(seq 1 50); do [ -S "$run/tab.sock" ] && break; sleep 0.1; done
  [ -S "$run/vgpu.sock" ] && [ -S "$run/tab.sock" ] || fail "vgpu-displayd did not create its sockets"
}

# Starts the VNC bridge on $run/grpc.sock with its web console, logging to
# $1; sets bridge_pid, vnc_port and web_url (the ports it chose).
start_vgpu_vnc() {
  "$build/clients/vnc/vgpu-vnc" --server="unix:$run/grpc.sock" --listen=127.0.0.1:0 \
    --web_listen=127.0.0.1:0 > "$1" 2>&1 &
  bridge_pid=$!
  pids+=("$bridge_pid")
  vnc_port=""
  for _ in $(seq 1 100); do
    vnc_port="$(sed -n 's|.*vnc://127.0.0.1:\([0-9]*\).*|\1|p' "$1")"
    web_url="$(sed -n 's|.*web console on \(http://[^ ]*\).*|\1|p' "$1")"
    [ -n "$vnc_port" ] && [ -n "$web_url" ] && return 0
    sleep 0.1
  done
  fail "vgpu-vnc did not start: $(cat "$1")"
}
