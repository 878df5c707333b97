#!/usr/bin/env bash
# gRPC over TLS and mutual TLS: vgpu-displayd with certificates made here by
# openssl, vgpu-shot with and without the right credentials.
# Usage: tls_test.sh VGPU_DISPLAYD VGPU_SHOT
set -euo pipefail
daemon="$1"; shot="$2"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d /tmp/vgpu-tls-XXXXXX)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
. "$here/test_certs.sh"
make_cert server localhost
make_cert client viewer

start() {  # extra daemon flags...
  "$daemon" --demo --demo_scene=cursor --width=320 --height=200 --grpc_listen=127.0.0.1:0 \
    --tls_cert=server.pem --tls_key=server.key "$@" > daemon.log 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    port="$(sed -n 's/.*gRPC display service on 127.0.0.1:\([0-9]*\).*/\1/p' daemon.log)"
    [ -n "$port" ] && return 0
    sleep 0.1
  done
  cat daemon.log; echo "FAIL: the daemon did not start"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
expect_ok() { "$shot" --server="127.0.0.1:$port" --timeout=5s --out=shot.png "$@" > out.txt 2>&1 || { cat out.txt; echo "FAIL: $*"; exit 1; }; }
expect_fail() { if "$shot" --server="127.0.0.1:$port" --timeout=2s --out=shot.png "$@" > out.txt 2>&1; then echo "FAIL: succeeded: $*"; exit 1; fi; }

start
expect_ok --tls_ca=ca.pem
expect_fail                                  # plaintext against a TLS server
stop
echo "PASS: TLS"
start --tls_client_ca=ca.pem
expect_ok --tls_ca=ca.pem --tls_cert=client.pem --tls_key=client.key
expect_fail --tls_ca=ca.pem                  # no client certificate
stop
echo "PASS: mutual TLS"

# TLS on a unix socket: gRPC binds the path itself, the daemon still holds
# its lock (a second daemon is refused) and nothing is left after a stop.
"$daemon" --demo --demo_scene=cursor --width=320 --height=200 --grpc_listen="unix:$work/tls.sock" \
  --tls_cert=server.pem --tls_key=server.key > daemon.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "gRPC display service on unix:" daemon.log && break; sleep 0.1; done
"$shot" --server="unix:$work/tls.sock" --tls_ca=ca.pem --timeout=5s --out=shot.png > out.txt 2>&1 ||
  { cat out.txt daemon.log; echo "FAIL: TLS over a unix socket"; exit 1; }
if "$daemon" --demo --grpc_listen="unix:$work/tls.sock" --tls_cert=server.pem --tls_key=server.key > second.log 2>&1; then
  echo "FAIL: a second daemon took the TLS unix socket"; exit 1
fi
grep -q "is in use" second.log || { cat second.log; echo "FAIL: no 'in use' message"; exit 1; }
stop
[ ! -e "$work/tls.sock" ] && [ ! -e "$work/tls.sock.lock" ] || { ls -la "$work"; echo "FAIL: socket or lock left"; exit 1; }
echo "PASS: TLS on a unix socket"
