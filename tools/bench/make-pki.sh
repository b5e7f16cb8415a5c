#!/usr/bin/env bash
# Makes the certificates the TLS benchmarks give to every server, in QEMU's x509-dir layout:
#
#   tools/bench/make-pki.sh DIR
#
# DIR/ca-cert.pem (a CA, RSA 2048), DIR/server-cert.pem and DIR/server-key.pem (RSA 2048,
# subjectAltName IP:127.0.0.1, extendedKeyUsage serverAuth), valid 30 days. Needs openssl.
set -euo pipefail
dir=${1:?usage: make-pki.sh DIR}
mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca-key.pem" -out "$dir/ca-cert.pem" -days 30 -subj "/CN=bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2> /dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$dir/server-key.pem" -out "$dir/server.csr" -subj "/CN=bench" 2> /dev/null
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' > "$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca-cert.pem" -CAkey "$dir/ca-key.pem" -set_serial 0x2001 -days 30 \
    -extfile "$dir/server.ext" -out "$dir/server-cert.pem" 2> /dev/null
rm -f "$dir/server.csr" "$dir/server.ext"
