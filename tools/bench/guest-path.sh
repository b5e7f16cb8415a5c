#!/bin/sh
# The guest path beside its peers: one QEMU 7.2 guest (TCG, virtio-net) attached through
# `-netdev stream` to `netwire serve`, through `-netdev stream` to passt (its QEMU mode), and
# through QEMU's own `-netdev user` (libslirp), the same guest and workload each time, the runs
# interleaved. Needs qemu-system-x86, passt, python3, cpio, the guest image
# (tools/guest/build-image.sh, which needs root) and the .NET SDK. See --help.
set -eu
cd "$(dirname "$0")/../.."
case " $* " in
    *" -h "*|*" --help "*) exec /usr/bin/python3 tools/bench/guest_path.py --help ;;
esac
dotnet build src/NetWire.Cli/NetWire.Cli.csproj -c Release -v q -nologo > /dev/null
tools/guest/build-image.sh > /dev/null
exec /usr/bin/python3 tools/bench/guest_path.py "$@"
