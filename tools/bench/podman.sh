#!/usr/bin/env bash
# Podman containers' networking through NetWire (network_cmd_path -> netwire slirp4netns), the real
# slirp4netns and pasta, in one run:
#
#   container (busybox, sleeping; the clients run in its network namespace) -> tap0 -> gateway
#   process -> server on the host's 127.0.0.1, reached at 10.0.2.2 (allow_host_loopback=true)
#
# For each: iperf3 TCP throughput container->host and host->container, the TCP connection setup
# rate, and the gateway process's CPU seconds per GB moved (/proc/PID/stat). Debian's Podman 4.3
# has no --network pasta (that came with Podman 4.4), so pasta is attached to a --network none
# container's namespace by hand, with the same addresses. See tools/bench/README.md.
set -uo pipefail

usage() {
    cat <<'EOF'
usage: tools/bench/podman.sh [options]

Runs a busybox container per implementation with Podman (runc, rootful) and measures its
network. Needs root, podman, runc, busybox (static), iperf3, python3, nsenter, and the
slirp4netns and passt packages.

options:
  --impls "I ..."   any of netwire slirp4netns pasta (default: all three)
  --mtu M           the link MTU (default 65520, Podman's)
  --runs N          rounds; each measures every implementation once; the table shows medians (default 3)
  --seconds S       length of each iperf3 run (default 5)
  --connections N   connections per setup-rate measurement (default 500)
  --out DIR         where results go (default artifacts/bench/podman-<timestamp>)
  --netwire DLL     the netwire.dll to measure (default: this checkout, built Release)
  -h, --help        this text

output: DIR/results.jsonl (one JSON line per figure), DIR/summary.md, DIR/machine.txt, DIR/*.log.
EOF
}

IMPLS="netwire slirp4netns pasta"
MTU=65520
RUNS=3
SECONDS_PER_RUN=5
CONNECTIONS=500
OUT=""
NETWIRE_DLL=""
COMMAND_LINE="tools/bench/podman.sh $*"
while [ $# -gt 0 ]; do
    case "$1" in
        --impls) IMPLS="$2"; shift 2 ;;
        --mtu) MTU="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --netwire) NETWIRE_DLL="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "podman.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

BENCH_NAME=podman.sh
. "$(dirname "$0")/benchlib.sh"

[ "$(id -u)" = 0 ] || fail "needs root (rootful Podman, nsenter)"
for tool in podman runc busybox iperf3 python3 nsenter ss tar; do
    command -v "$tool" > /dev/null || fail "$tool is not installed"
done

REPO=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$REPO/tools/bench${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-$REPO/artifacts/bench/podman-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT" || fail "cannot create $OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
WORK=$(mktemp -d /tmp/nwpodbench.XXXXXX)
chmod 755 "$WORK"
IMAGE="localhost/nwbench-bb-$$"
STARTED=()      # pids this script started; ended by pid on exit
CONTAINERS=()   # containers this script started

cleanup() {
    local pid c
    trap - EXIT INT TERM
    for c in "${CONTAINERS[@]}"; do podman rm -f -t 0 "$c" > /dev/null 2>&1; ip netns del "$c" 2> /dev/null; done
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    podman rmi -f "$IMAGE" > /dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat > "$WORK/pb.py" <<'PY'
import json, statistics, sys
from benchnet import *

def record(results, round_, impl, workload, value, unit, **extra):
    extra.update(round=int(round_), impl=impl, workload=workload, value=value, unit=unit)
    with open(results, 'a') as f:
        f.write(json.dumps(extra) + '\n')

def iperf(results, round_, impl, direction, path, cpu0, cpu1):
    try:
        received, d = iperf_received(path)
    except (OSError, ValueError, KeyError) as e:
        record(results, round_, impl, 'throughput_' + direction, None, 'Gbit/s', error=str(e)[:200])
        print('%s %s: error %s' % (impl, direction, e))
        return
    gbps = received['bits_per_second'] / 1e9
    used = float(cpu1) - float(cpu0)
    record(results, round_, impl, 'throughput_' + direction, round(gbps, 3), 'Gbit/s', bytes=received['bytes'])
    record(results, round_, impl, 'cpu_' + direction, round(used / (received['bytes'] / 1e9), 3) if received['bytes'] else None,
           'CPU s/GB', cpu_seconds=round(used, 3))
    print('%s %s: %.3f Gbit/s, gateway %.2f CPU s' % (impl, direction, gbps, used))

def connections(results, round_, impl, text):
    try:
        d = json.loads(text)
        rate = d['ok'] / d['seconds'] if d['ok'] and not d['failed'] else None
    except (ValueError, KeyError) as e:
        d, rate = {'error': str(e)}, None
    record(results, round_, impl, 'connect_rate', rate and round(rate, 1), 'conn/s', **d)
    print('%s connect_rate: %s' % (impl, rate and '%.0f conn/s' % rate or d))

LABELS = [('throughput_up', 'TCP container -> host (Gbit/s)'), ('throughput_down', 'TCP host -> container (Gbit/s)'),
          ('connect_rate', 'connection setup (conn/s)'), ('cpu_up', 'gateway CPU s/GB, container -> host'),
          ('cpu_down', 'gateway CPU s/GB, host -> container')]

def report(results):
    rows = [json.loads(l) for l in open(results) if l.strip()]
    impls = list(dict.fromkeys(r['impl'] for r in rows))
    values = {}
    for r in rows:
        values.setdefault((r['impl'], r['workload']), []).append(r['value'])
    med = {k: statistics.median([v for v in vs if v is not None]) if any(v is not None for v in vs) else None for k, vs in values.items()}
    print('Median of %d round(s).\n' % len({r['round'] for r in rows}))
    print('| workload | ' + ' | '.join(impls) + ' |')
    print('| --- |' + ' --- |' * len(impls))
    for workload, label in LABELS:
        cells = []
        for i in impls:
            v = med.get((i, workload))
            cells.append('-' if v is None else ('%.0f' if workload == 'connect_rate' else '%.2f') % v)
        print('| %s | %s |' % (label, ' | '.join(cells)))
    others = [i for i in impls if i != 'netwire']
    if 'netwire' in impls and others:
        print('\n| workload | ' + ' | '.join('netwire / %s' % o for o in others) + ' |')
        print('| --- |' + ' --- |' * len(others))
        for workload, label in LABELS:
            mine = med.get(('netwire', workload))
            print('| %s | %s |' % (label, ' | '.join('%.2fx' % (mine / med[(o, workload)]) if mine and med.get((o, workload)) else '-' for o in others)))

if __name__ == '__main__':
    run(globals())
PY
py() { python3 "$WORK/pb.py" "$@"; }

if [[ " $IMPLS " == *" netwire "* ]] && [ -z "$NETWIRE_DLL" ]; then
    build_netwire "$REPO" "$WORK" "$OUT"
fi

# containers.conf for NetWire (network_cmd_path -> the shim) and an empty one for the others.
printf '#!/bin/sh\nNETWIRE="dotnet %s" exec %s "$@"\n' "$NETWIRE_DLL" "$REPO/tools/podman/slirp4netns" > "$WORK/slirp4netns-shim"
chmod 755 "$WORK/slirp4netns-shim"
printf '[engine]\nnetwork_cmd_path = "%s"\n' "$WORK/slirp4netns-shim" > "$WORK/netwire.conf"
: > "$WORK/default.conf"

say "building the image $IMAGE from $(command -v busybox)"
mkdir -p "$WORK/rootfs/bin"
cp "$(command -v busybox)" "$WORK/rootfs/bin/busybox"
ln -s busybox "$WORK/rootfs/bin/sh"
tar -C "$WORK/rootfs" -cf "$WORK/bb.tar" . && podman import "$WORK/bb.tar" "$IMAGE" > "$OUT/import.log" 2>&1 \
    || fail "podman import failed, see $OUT/import.log"

IPERF_PORT=$(py free_port)
LINE_PORT=$(py free_port)
iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" > "$OUT/iperf3-server.log" 2>&1 &
STARTED+=($!)
python3 "$WORK/pb.py" line_server "$LINE_PORT" > "$OUT/line-server.log" 2>&1 &
STARTED+=($!)
wait_listening "$IPERF_PORT" "$LINE_PORT"

podman_run() {   # conf, network, name: a detached sleeping container
    CONTAINERS_CONF="$1" podman --runtime runc run -d --rm --name "$3" --ulimit nofile=20000:20000 --ulimit nproc=1000:1000 \
        --network "$2" "$IMAGE" /bin/busybox sleep 100000 > /dev/null
}

# start IMPL NAME: sets CPID (the container's process, for nsenter) and GW_PID (the gateway process).
start() {
    local impl=$1 name=$2 conf=$WORK/default.conf network="slirp4netns:allow_host_loopback=true,mtu=$MTU" i sandbox
    GW_PID=""; CPID=""; PASTA_PID=""; PASTA_NS=""
    [ "$impl" = netwire ] && conf=$WORK/netwire.conf
    [ "$impl" = pasta ] && network=none
    CONTAINERS+=("$name")
    podman_run "$conf" "$network" "$name" >> "$OUT/podman.log" 2>&1 || { WHY="podman run failed (see podman.log)"; return 1; }
    CPID=$(podman inspect -f '{{.State.Pid}}' "$name")
    if [ "$impl" = pasta ]; then
        # A name for the container's namespace: pasta opens /run/netns paths (not /proc/PID/ns/net).
        ip netns attach "$name" "$CPID" || { WHY="ip netns attach failed"; return 1; }
        PASTA_NS=$name
        pasta --runas 0 -f -q -4 -a 10.0.2.100 -n 24 -g 10.0.2.2 --config-net -m "$MTU" -I tap0 \
            -t none -u none -T none -U none --netns "/run/netns/$name" > "$OUT/pasta.log" 2>&1 &
        GW_PID=$!
        PASTA_PID=$GW_PID
        STARTED+=("$GW_PID")
        return 0
    fi
    sandbox=$(podman inspect -f '{{.NetworkSettings.SandboxKey}}' "$name")
    for i in $(seq 100); do
        GW_PID=$(pgrep -f -- "slirp4netns .*$sandbox" | head -1)
        [ -n "$GW_PID" ] && return 0
        sleep 0.1
    done
    WHY="no slirp4netns process for $sandbox"
    return 1
}

stop() {   # NAME
    podman rm -f -t 0 "$1" > /dev/null 2>&1
    [ -n "${PASTA_PID:-}" ] && stop_pid "$PASTA_PID"
    [ -n "${PASTA_NS:-}" ] && ip netns del "$PASTA_NS" 2> /dev/null
    PASTA_PID=""; PASTA_NS=""
}

innet() { nsenter -t "$CPID" -n "$@"; }

measure() {   # round impl
    local round=$1 impl=$2 name="nwbench-$$-$2-$1" direction c0 c1 reverse
    say "round $round: $impl"
    if ! start "$impl" "$name"; then
        say "$impl: not measured: $WHY"
        stop "$name"
        return
    fi
    if ! innet python3 "$WORK/pb.py" wait_up 10.0.2.2 "$LINE_PORT" 60 > /dev/null; then
        say "$impl: no traffic through the gateway within 60 s"
        stop "$name"
        return
    fi
    for direction in up down; do
        reverse=""
        [ "$direction" = down ] && reverse=-R
        c0=$(py cpu "$GW_PID")
        innet iperf3 -c 10.0.2.2 -p "$IPERF_PORT" -t "$SECONDS_PER_RUN" -J $reverse > "$WORK/iperf.json" 2> "$OUT/iperf3-client.log"
        c1=$(py cpu "$GW_PID")
        py iperf "$RESULTS" "$round" "$impl" "$direction" "$WORK/iperf.json" "$c0" "$c1"
    done
    py connections "$RESULTS" "$round" "$impl" "$(innet python3 "$WORK/pb.py" connect_rate 10.0.2.2 "$LINE_PORT" "$CONNECTIONS")"
    stop "$name"
}

{
    echo "command: $COMMAND_LINE"
    echo "date: $(date -u +%FT%TZ)"
    echo "kernel: $(uname -r)"
    echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-))"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "podman: $(podman --version)"
    echo "slirp4netns: $(slirp4netns --version 2> /dev/null | head -1)"
    echo "pasta: $(pasta --version 2> /dev/null | head -1)"
    echo "netwire: $NETWIRE_DLL"
} > "$OUT/machine.txt"

for round in $(seq "$RUNS"); do
    for impl in $IMPLS; do
        measure "$round" "$impl"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
py report "$RESULTS" > "$OUT/summary.md"
cat "$OUT/summary.md"
say "results in $OUT"
