#!/usr/bin/env bash
# Fetches what the real-guest test boots, into a cache directory, without
# touching the system's apt sources or installed packages:
#   QEMU 10 (bookworm-backports) and its reference vhost-user-gpu back-end,
#   SeaBIOS, Debian's linux-image kernel and busybox-static — all unpacked.
# Usage: fetch.sh CACHE_DIR      (idempotent; a second run only checks)
set -euo pipefail
cache="$(mkdir -p "$1" && cd "$1" && pwd)"
root="$cache/root"
if [ -x "$root/usr/bin/qemu-system-x86_64" ] && [ -f "$cache/vmlinuz" ] && [ -x "$root/bin/busybox" ]; then
  echo "e2e fetch: cached in $cache"
  exit 0
fi
apt_dir="$cache/apt"
mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$cache/debs"
cat > "$apt_dir/sources.list" <<SOURCES
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-backports main
SOURCES
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State=$apt_dir/state" -o "Dir::Cache=$apt_dir/cache" -o "Debug::NoLocking=1"
          -o "APT::Sandbox::User=root")
echo "e2e fetch: package lists"
apt-get "${apt_opts[@]}" -qq update
kernel="$(apt-cache "${apt_opts[@]}" depends linux-image-amd64/bookworm | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$kernel" ] || { echo "e2e fetch: cannot resolve linux-image-amd64" >&2; exit 1; }
qemu_version="$(apt-cache "${apt_opts[@]}" madison qemu-system-x86 | awk -F'|' '/bookworm-backports/ {gsub(/ /, "", $2); print $2; exit}')"
[ -n "$qemu_version" ] || { echo "e2e fetch: no QEMU in bookworm-backports" >&2; exit 1; }
echo "e2e fetch: QEMU $qemu_version, $kernel, busybox-static, seabios"
(cd "$cache/debs" && rm -f ./*.deb && apt-get "${apt_opts[@]}" -qq download \
  "qemu-system-x86=$qemu_version" "qemu-system-common=$qemu_version" \
  "qemu-system-data=$qemu_version" "qemu-system-gui=$qemu_version" \
  "$kernel/bookworm" busybox-static/bookworm seabios/bookworm)
rm -rf "$root"
mkdir -p "$root"
for deb in "$cache"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
cp "$root"/boot/vmlinuz-* "$cache/vmlinuz"
echo "e2e fetch: done ($(du -sh "$root" | cut -f1) unpacked)"
