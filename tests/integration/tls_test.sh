#!/usr/bin/env bash
# gRPC over TLS and mutual TLS: vgpu-displayd with certificates made here by
# openssl, vgpu-shot with and without the right credentials.
# Usage: tls_test.sh VGPU_DISPLAYD VGPU_SHOT
set -euo pipefail
daemon="$1"; shot="$2"
work="$(mktemp -d /tmp/vgpu-tls-XXXXXX)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=vgpu test CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
make_cert() {  # NAME CN
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
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
