#!/usr/bin/env bash
# Runs NetWire's whole test suite, doing all set-up first on a fresh Debian 12 machine:
# Debian packages (as root), NuGet restore, the test guest image, then `dotnet test`.
#
#   tools/test.sh                 everything (host tests need root; they skip without it, except in CI)
#   tools/test.sh --filter EXPR   passed on to dotnet test (e.g. --filter Category!=Host)
#
# Environment: NETWIRE_SKIP_APT=1 skips apt-get; CI=true makes host tests fail instead of skip.
# NETWIRE_TEST_HANG_MINUTES (15): a test that runs longer fails the run; its assembly process's stacks are printed first.
# With CI=true (or NETWIRE_HARDENING=1) two stages follow the tests (docs/reliability.md): every
# fuzz target for NETWIRE_FUZZ_SECONDS (60) under afl++ (tools/fuzz/run.sh all), and a soak of
# NETWIRE_SOAK_MINUTES (3) that fails on growth (tools/soak.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
    qemu-system-x86      # the real guest NIC peer (QEMU 7.2, TCG)
    ipxe-qemu            # QEMU's NIC boot ROMs: the diskless guest boots through iPXE (PxeBootTests)
    busybox-static cpio gzip kmod xz-utils  # the test guest image (tools/guest/build-image.sh)
    iproute2 util-linux  # namespaces, veth, TAP addressing, setpriv
    tshark               # captures are read back with the real dissectors
    tcpdump              # the replay veth test captures on the peer with it
    libpcap0.8           # the pcap: host end (SharpPcap loads it)
    python3              # the namespace-side load generator in the backpressure test
    python3-prometheus-client  # /metrics is parsed with Prometheus' own parser (GatewayQemuGuestTests)
    python3-gi gir1.2-spiceclientglib-2.0  # spice-gtk 0.42, headless, for the SPICE interop tests (tools/spice/gtk_client.py)
    iperf3 curl          # netwire run tests: the namespace's clients against host-loopback servers
    nftables             # the network lock of a TCP flow migration (nft), and its tests
    podman runc slirp4netns uidmap passwd  # NetWire as Podman's slirp4netns, rootful and rootless (useradd, subuid)
    passt                # pasta, beside slirp4netns in the Podman benchmark
    openssl              # TLS tests make their certificates with it and probe the TLS port with s_client
    ndisc6 isc-dhcp-client  # real IPv6 peers in netwire run: rdisc6/ndisc6 read the gateway's NDP, dhclient -6 -S its DHCPv6
    ca-certificates
    systemd              # systemd-analyze verify and security check tools/systemd's units (ServiceTests)
    afl++                # coverage-guided fuzzing of the parsers (tools/fuzz/run.sh, with SharpFuzz)
    gnuplot-nox          # the soak's plot of RSS, fds and threads (tools/soak.sh)
)

if [[ $(id -u) -eq 0 && -z ${NETWIRE_SKIP_APT:-} ]]; then
    echo "== apt-get: ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" > /dev/null
fi

if ! command -v dotnet > /dev/null; then
    echo "tools/test.sh: the .NET 10 SDK (dotnet) is not on PATH" >&2
    exit 2
fi

if [[ $(id -u) -eq 0 ]]; then
    echo "== guest image"
    tools/guest/build-image.sh
fi

echo "== restore and build"
dotnet restore NetWire.sln --nologo -v quiet
dotnet build NetWire.sln -c Release --no-restore --nologo -v quiet -clp:ErrorsOnly

# A test assembly's process (xunit runs each as its own executable under vstest's test host) that
# runs longer than NETWIRE_TEST_HANG_MINUTES is hung: a whole assembly takes under 4 minutes on 2
# busy cores. Its threads' managed stacks are printed (dotnet-stack), then vstest's hang guard
# ends it and names the test that was running, so a hang fails the run with its cause instead of
# running into the CI's time limit.
hang_minutes=${NETWIRE_TEST_HANG_MINUTES:-15}
dotnet tool restore > /dev/null

watch_hangs() {
    local reported=" " pid age
    while sleep 30; do
        for pid in $(pgrep -f '/NetWire[.][A-Za-z]+[.]Tests @@' || true); do
            age=$(ps -o etimes= -p "$pid" 2> /dev/null | tr -d ' ') || continue
            [[ -n $age ]] || continue
            if (( age > (hang_minutes + 2) * 60 )); then
                # The hang guard ends the test host; the assembly's process it ran is ended here.
                echo "== test process $pid outlived the hang guard: ended" >&2
                kill -9 "$pid" 2> /dev/null || true
            elif (( age > (hang_minutes - 1) * 60 )) && [[ $reported != *" $pid "* ]]; then
                reported+="$pid "
                echo "== test process $pid ($(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null | cut -c1-120)) has run for $age s: its threads' stacks" >&2
                timeout 120 dotnet tool run dotnet-stack report -p "$pid" >&2 || true
            fi
        done
    done
}

echo "== test"
log=$(mktemp)
watch_hangs &
watcher=$!
trap 'kill "$watcher" 2> /dev/null || true; rm -f "$log"' EXIT
set +e
dotnet test NetWire.sln -c Release --no-build --nologo \
    --blame-hang-timeout "${hang_minutes}m" --blame-hang-dump-type none "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
kill "$watcher" 2> /dev/null || true

echo "== tests took $SECONDS s since the start"

if [[ ${CI:-} == true || -n ${NETWIRE_HARDENING:-} ]]; then
    echo "== fuzz: every target, ${NETWIRE_FUZZ_SECONDS:-60} s each"
    stage=$SECONDS
    tools/fuzz/run.sh all "${NETWIRE_FUZZ_SECONDS:-60}" || status=1
    echo "== fuzz took $((SECONDS - stage)) s"
    echo "== soak: ${NETWIRE_SOAK_MINUTES:-3} minutes"
    stage=$SECONDS
    tools/soak.sh "${NETWIRE_SOAK_MINUTES:-3}" --out .build/soak || status=1
    echo "== soak took $((SECONDS - stage)) s; $SECONDS s in all"
fi

# One closing line over all test assemblies: "N passed, N failed, N skipped".
awk '/^(Passed|Failed)!/ {
        for (i = 1; i <= NF; i++) {
            if ($i == "Failed:")  f += $(i + 1)
            if ($i == "Passed:")  p += $(i + 1)
            if ($i == "Skipped:") s += $(i + 1)
        }
    }
    END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
