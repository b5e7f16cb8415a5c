#!/usr/bin/env bash
# Builds netwire as one self-contained executable (no .NET install needed where it runs):
#
#   tools/publish.sh [OUTDIR]        default .build/publish; RID linux-x64 (NETWIRE_RID=linux-arm64 ...)
#
# The result is OUTDIR/netwire (the runtime and every managed assembly bundled, native
# libraries extracted on first start); libpcap stays the system's (Debian's libpcap0.8), as
# SharpPcap loads it by name. `OUTDIR/netwire --version` names the version and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.build/publish}
rid=${NETWIRE_RID:-linux-x64}
dotnet publish src/NetWire.Cli/NetWire.Cli.csproj -c Release -r "$rid" --self-contained true \
    -p:PublishSingleFile=true -p:IncludeNativeLibrariesForSelfExtract=true -p:DebugType=none \
    --nologo -v quiet -o "$out"
"$out/netwire" --version
ls -l "$out/netwire"
