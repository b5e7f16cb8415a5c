#!/bin/sh
# Client switch time of a semi-seamless SPICE migration: NetWire (20 rounds) beside QEMU's own
# SPICE servers (two QEMUs with -spice, 5 rounds) in the same run. Root (tshark on lo), spice-gtk
# (python3-gi, gir1.2-spiceclientglib-2.0), qemu-system-x86. Results go to docs/performance.md.
set -eu
cd "$(dirname "$0")/../.."
dotnet build src/NetWire.Cli/NetWire.Cli.csproj -c Release -v q -nologo > /dev/null
exec /usr/bin/python3 tools/bench/migration_bench.py "$@"
