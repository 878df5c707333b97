# Sourced by every guest /init (tests/e2e/init.sh, tests/bench/guest_init.sh)
# as /boot.sh: busybox applets, the kernel's file systems, the virtio-gpu
# modules, and /dev/fb0 (or NOFB on the serial console and power off).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
phase() { echo "E2E PHASE $1" > /dev/ttyS0; }
for m in $(cat /modules/order); do insmod "/modules/$m.ko" 2>/dev/null; done
for i in $(seq 1 200); do [ -e /dev/fb0 ] && break; sleep 0.05; done
[ -e /dev/fb0 ] || { phase NOFB; poweroff -f; }
