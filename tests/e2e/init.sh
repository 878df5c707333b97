#!/bin/busybox sh
# The e2e guest: load virtio-gpu, then show pattern A, pattern B and console
# text, announcing each phase on the serial console. Stays up afterwards;
# the harness resets or quits QEMU.
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
while true; do sleep 60; done
