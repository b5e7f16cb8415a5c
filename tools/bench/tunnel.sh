#!/usr/bin/env bash
# Tunnel throughput (1 socket, 20 sockets), CPU per GB and connection-open latency, guest ->
# loopback service, through the SPICE tunnel in plaintext, through the tunnel over TLS (a second
# tunnel client on the SPICE TLS port, certificates made here with openssl), and beside them
# through the gateway's own NAT, in one run:
#
#   sudo tools/bench/tunnel.sh [--runs 3] [--mib 200] [--parallel 20] [--connects 200]
#
# The guest is the kernel in a network namespace nwtb-<pid> on the user-mode gateway (TAP),
# like `netwire run`; the service is a loopback HTTP server in the measuring process; the
# tunnel client runs in that process too. Needs root, ip (iproute2), python3, the .NET SDK.
# Prints a Markdown table for docs/performance.md. The namespace is deleted on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $(id -u) -ne 0 ]]; then
    echo "tools/bench/tunnel.sh: needs root (network namespace and TAP)" >&2
    exit 2
fi

dotnet build tools/bench/tunnel-bench/NetWire.TunnelBench.csproj -c Release --nologo -v quiet -clp:ErrorsOnly > /dev/null
pki=$(mktemp -d)
trap 'rm -rf "$pki"' EXIT
tools/bench/make-pki.sh "$pki"
echo "$(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
dotnet tools/bench/tunnel-bench/bin/Release/net10.0/netwire-tunnel-bench.dll --x509-dir "$pki" "$@"
