#!/bin/busybox sh
# The e2e guest: load virtio-gpu, then show pattern A, pattern B and console
# text, then take a line typed in the US layout and one in the German one,
# announcing each phase on the serial console. Stays up afterwards; the
# harness resets or quits QEMU.
. /boot.sh
echo 0 > /sys/class/graphics/fbcon/cursor_blink 2>/dev/null
size="$(cat /sys/class/graphics/fb0/virtual_size)"
phase "FB $size"
# No cursor, no kernel messages on the screen while patterns are up.
printf '\033[?25l' > /dev/tty1
hold="$(sed -n 's/.*e2e.hold=\([0-9]*\).*/\1/p' /proc/cmdline)"
for p in a b; do
  cat "/patterns/$p.raw" > /dev/fb0
  phase "PATTERN-$p"
  sleep "${hold:-3}"
done
# Back to text: reset the terminal (fbcon redraws) and print a banner.
printf '\033c\033[?25l' > /dev/tty1
printf 'VGPU-DISPLAY E2E: console text through vhost-user-gpu\nline two of the console\n' > /dev/tty1
phase TEXT
# Input: the daemon's virtio keyboard and tablet. Raw tablet events go to
# the serial console; lines typed on the keyboard reach the VT (tty1),
# first through the kernel's default US keymap, then through a German one.
for i in $(seq 1 100); do
  kbd="" tab=""
  for d in /sys/class/input/event*; do
    case "$(cat "$d/device/name" 2>/dev/null)" in
      "vgpu-display keyboard") kbd="/dev/input/${d##*/}" ;;
      "vgpu-display tablet") tab="/dev/input/${d##*/}" ;;
    esac
  done
  [ -n "$kbd" ] && [ -n "$tab" ] && break
  sleep 0.1
done
[ -n "$kbd" ] && [ -n "$tab" ] || phase NOINPUT
hexdump -v -e '"EV " 24/1 "%02x" "\n"' "$tab" > /dev/ttyS0 &
phase INPUT-READY
read -t 120 line < /dev/tty1
echo "E2E VT-LINE <$line>" > /dev/ttyS0
loadkmap < /kmaps/de.kmap
phase KMAP-DE
read -t 120 line < /dev/tty1
echo "E2E VT-LINE <$line>" > /dev/ttyS0
loadkmap < /kmaps/us.kmap
phase INPUT-DONE
# A line typed while CapsLock is on.
read -t 120 line < /dev/tty1
echo "E2E VT-LINE <$line>" > /dev/ttyS0
# A line typed in the browser console (noVNC, through vgpu-vnc).
read -t 120 line < /dev/tty1
echo "E2E VT-LINE <$line>" > /dev/ttyS0
while true; do sleep 60; done
