#!/usr/bin/env bash
# Builds the guest's initramfs: busybox, the virtio-gpu and virtio-input
# module closures from the fetched kernel, test patterns, console keymaps
# (us, de) and an /init that shows them.
# Usage: build_initramfs.sh CACHE_DIR E2E_TOOL WIDTH HEIGHT OUT.cpio.gz
#          [INIT_SCRIPT [EXTRA_DIR]]
# INIT_SCRIPT replaces tests/e2e/init.sh; EXTRA_DIR is copied to /bench.
set -euo pipefail
cache="$1"; tool="$2"; width="$3"; height="$4"; out="$5"
init_script="${6:-}"; extra="${7:-}"
root="$cache/root"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kver="$(ls "$root/lib/modules" | head -n 1)"
moddir="$root/lib/modules/$kver"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,dev,proc,sys,modules,patterns,kmaps}
touch "$work/modules/order"
cp "$root/bin/busybox" "$work/bin/busybox"

# virtio-gpu and everything it depends on, in load order. Dependencies come
# from each module's own .modinfo "depends=" line (the package ships no
# modules.dep; that is made at install time).
find_module() {
  local found
  found="$(find "$moddir/kernel" \( -name "$1.ko" -o -name "${1//_/-}.ko" \) | head -n 1)"
  [ -n "$found" ] || { echo "module $1 not in $kver" >&2; exit 1; }
  echo "$found"
}
resolve() {
  local file deps
  file="$(find_module "$1")"
  deps="$(grep -a -o -m 1 'depends=[A-Za-z0-9_,-]*' "$file" | head -n 1 | cut -d= -f2 | tr ',' ' ')"
  for dep in $deps; do
    grep -qx "$dep" "$work/modules/order" || resolve "$dep"
  done
  grep -qx "$1" "$work/modules/order" || {
    cp "$file" "$work/modules/$1.ko"
    echo "$1" >> "$work/modules/order"
  }
}
resolve virtio_pci
resolve virtio-gpu
# The daemon's keyboard and tablet, and /dev/input/event* for them.
resolve virtio_input
resolve evdev

"$tool" pattern A "$width" "$height" "$work/patterns/a.raw" "$cache/expected-a.ppm"
"$tool" pattern B "$width" "$height" "$work/patterns/b.raw" "$cache/expected-b.ppm"
for layout in us de; do "$tool" kmap "$layout" "$work/kmaps/$layout.kmap"; done
cp "${init_script:-$here/init.sh}" "$work/init"
cp "$here/guest_boot.sh" "$work/boot.sh"
[ -z "$extra" ] || cp -r "$extra" "$work/bench"
chmod +x "$work/init"
(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1 > "$out")
echo "initramfs: $(tr '\n' ' ' < "$work/modules/order")from $kver, $(du -h "$out" | cut -f1)"
