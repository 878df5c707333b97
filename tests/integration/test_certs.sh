# Sourced by the TLS tests: a throwaway CA (ca.pem, ca.key) in the current
# folder, and make_cert NAME CN for certificates it signs (NAME.pem,
# NAME.key), valid for localhost and 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=vgpu test CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
make_cert() {  # NAME CN
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
