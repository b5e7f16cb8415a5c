#!/bin/sh
# Gateway flow migration: the appliance's added pause and the guest-visible stall of a stream,
# with 1, 100 and 1,000 live connections moved (chained migrations, 10 rounds each). Root
# (namespace, TAP, TCP_REPAIR), nft, python3. Results go to docs/performance.md.
set -eu
cd "$(dirname "$0")/../.."
dotnet build src/NetWire.Cli/NetWire.Cli.csproj -c Release -v q -nologo > /dev/null
exec /usr/bin/python3 tools/bench/migration_flows.py "$@"
