#!/bin/busybox sh
# The benchmark guest (tests/bench/guest_bench.sh): loads virtio-gpu, then
# draws what the host asks for over the serial console, one command a line:
#   clear               reset tty1 (cursor shown, blinking as by default)
#   type N MS           type N characters on tty1, one every MS ms
#   flood SECONDS       a text flood on tty1 (the console scrolls)
#   video FPS SECONDS   full-screen frames into /dev/fb0 at FPS
#   mark K              fill the top 32 rows with marker colour K (1 or 2)
# Each command but mark ends with "E2E PHASE DONE <command>".
. /boot.sh
stty -F /dev/ttyS0 -echo
exec 3< /dev/ttyS0
mark_bytes=$(($(wc -c < /bench/mark1.raw) - 4))  # once: a fork costs ms
phase READY
while read -r cmd a b <&3; do
  case "$cmd" in
    clear)
      printf '\033c' > /dev/tty1 ;;
    type)
      words='the quick brown fox jumps over the lazy dog '
      i=0
      while [ "$i" -lt "$a" ]; do
        printf '%s' "${words:$((i % 44)):1}" > /dev/tty1
        [ $((i % 60)) -eq 59 ] && printf '\n' > /dev/tty1
        usleep $((b * 1000))
        i=$((i + 1))
      done ;;
    flood)
      end=$(($(date +%s) + a))
      while [ "$(date +%s)" -lt "$end" ]; do cat /bench/text.txt > /dev/tty1; done ;;
    video)
      printf '\033[?25l' > /dev/tty1
      i=0
      while [ "$i" -lt $((a * b)) ]; do
        cat "/bench/frame$((i % 4)).raw" > /dev/fb0
        usleep $((1000000 / a))
        i=$((i + 1))
      done ;;
    mark)
      # One write, as a program draws a band, so one flush. It stops a
      # pixel short: Linux 6.1's fbdev emulation tracks no damage for a
      # write that ends exactly at the end of a row.
      dd if="/bench/mark$a.raw" of=/dev/fb0 bs=$mark_bytes count=1 conv=notrunc \
        2> /dev/null
      continue ;;
    *) continue ;;
  esac
  phase "DONE $cmd"
done
