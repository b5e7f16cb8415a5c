#!/usr/bin/env bash
# SPICE link handshakes per second (with and without ticketing, plaintext and TLS) and
# main-channel round trip on loopback: netwire serve and QEMU's own SPICE server
# (libspice-server, qemu -machine none) measured in the same run, with the same client
# (tools/bench/spice_bench.py) and, for TLS, the same certificates (made here with openssl:
# a CA and an RSA 2048 server certificate for 127.0.0.1, in QEMU's x509-dir layout).
#
#   tools/bench/spice.sh [SECONDS] [CONNECTIONS]     defaults: 5 s per measurement, 4 client threads
#
# Needs: dotnet (builds netwire Release), qemu-system-x86, openssl, python3-cryptography.
# Prints a Markdown table for docs/performance.md, with the server's CPU time per handshake
# (the figure that holds on a busy machine). Every process it starts is ended by its own pid.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-5}
CONNECTIONS=${2:-4}
PASSWORD=s3cret
PY=/usr/bin/python3
BENCH=tools/bench/spice_bench.py

dotnet build src/NetWire.Cli/NetWire.Cli.csproj -c Release --nologo -v quiet -clp:ErrorsOnly > /dev/null
NETWIRE=src/NetWire.Cli/bin/Release/net10.0/netwire.dll
tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        $PY -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2> /dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

# The certificates both servers use for their TLS port.
pki=$tmp/pki
mkdir -p "$pki"
tools/bench/make-pki.sh "$pki"

# run NAME TICKETING(yes|no) TRANSPORT(plaintext|TLS) PORT COMMAND...: start a server, wait for
# its port, measure, stop it.
run() {
    local name=$1 ticketing=$2 transport=$3 port=$4
    shift 4
    "$@" > "$tmp/run.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_port "$port"
    local extra=()
    [[ $ticketing == yes ]] && extra+=(--password "$PASSWORD")
    [[ $transport == TLS ]] && extra+=(--tls --ca-file "$pki/ca-cert.pem")
    $PY "$BENCH" --port "$port" "${extra[@]}" --seconds "$SECONDS_EACH" --connections "$CONNECTIONS" --server-pid "$pid" > "$tmp/run.json"
    kill "$pid"
    wait "$pid" 2> /dev/null || true
    $PY - "$name" "$ticketing" "$transport" "$tmp/run.json" << 'PYEOF'
import json, sys
name, ticketing, transport, path = sys.argv[1:]
r = json.load(open(path))
h, m = r["handshakes"], r["main_round_trip"]
err = " (errors: %s)" % "; ".join(h["errors"]) if h["errors"] else ""
print("| %s | %s | %s | %s%s | %s | %s | %s |" % (name, transport, ticketing, h["per_second"], err,
      h.get("server_cpu_ms_per_handshake", "-"), m["median_us"], m["p99_us"]))
PYEOF
}

echo "SPICE on loopback, $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), ${SECONDS_EACH} s per cell, ${CONNECTIONS} client threads"
echo
echo "| server | transport | ticketing | link handshakes/s | server CPU ms per handshake | main round trip median (µs) | p99 (µs) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
QEMU="QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}') spice-server"
p=$(free_port); run "netwire serve" yes plaintext "$p" dotnet "$NETWIRE" serve --spice-port "$p" --password "$PASSWORD" --log-level Warning
p=$(free_port); run "netwire serve" no plaintext "$p" dotnet "$NETWIRE" serve --spice-port "$p" --disable-ticketing --log-level Warning
p=$(free_port); run "$QEMU" yes plaintext "$p" \
    qemu-system-x86_64 -machine none -display none -object secret,id=pw,data=$PASSWORD -spice "port=$p,addr=127.0.0.1,password-secret=pw"
p=$(free_port); run "$QEMU" no plaintext "$p" \
    qemu-system-x86_64 -machine none -display none -spice "port=$p,addr=127.0.0.1,disable-ticketing=on"
p=$(free_port); run "netwire serve" yes TLS "$p" dotnet "$NETWIRE" serve --tls-port "$p" --x509-dir "$pki" --password "$PASSWORD" --log-level Warning
p=$(free_port); run "$QEMU" yes TLS "$p" \
    qemu-system-x86_64 -machine none -display none -object secret,id=pw,data=$PASSWORD -spice "tls-port=$p,addr=127.0.0.1,x509-dir=$pki,password-secret=pw"
p=$(free_port); run "netwire serve" no TLS "$p" dotnet "$NETWIRE" serve --tls-port "$p" --x509-dir "$pki" --disable-ticketing --log-level Warning
p=$(free_port); run "$QEMU" no TLS "$p" \
    qemu-system-x86_64 -machine none -display none -spice "tls-port=$p,addr=127.0.0.1,x509-dir=$pki,disable-ticketing=on"
