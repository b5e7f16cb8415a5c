#!/usr/bin/env bash
# The user-mode gateway next to slirp4netns and pasta, in one run, on one topology:
#
#   namespace made for the run: client -> tap0 -> gateway process -> server on host 127.0.0.1 (::1)
#
# For each implementation, IP version and MTU: iperf3 TCP throughput namespace->host and host->namespace,
# the TCP connection setup rate (sequential connect, read the server's line to EOF, close),
# the gateway's CPU seconds per GB (1e9 bytes) moved and per connection, from /proc/PID/stat, and its
# RSS growth per idle connection (1,000 held open), from /proc/PID/status. See
# tools/bench/README.md for how to read the output.
set -uo pipefail

usage() {
    cat <<'EOF'
usage: tools/bench/gateway.sh [options]

Measures netwire run (this checkout), slirp4netns and pasta side by side, over IPv4 and
IPv6 (slirp4netns --enable-ipv6, pasta -6; each reaches the host's ::1 at fd00::2). Needs root
(network namespaces), iproute2, iperf3, python3, and the slirp4netns and passt packages
(--install gets them with apt-get).

options:
  --impls "I ..."     any of netwire slirp4netns pasta (default: all three)
  --mtus "M ..."      link MTUs (default "1500 65520")
  --families "F ..."  IP versions, 4 and/or 6 (default "4 6")
  --runs N            rounds; each round measures every implementation, version and MTU once, and the
                      tables show the median of the rounds (default 3)
  --seconds S         length of each iperf3 run (default 5)
  --connections N     connections per setup-rate measurement (default 500)
  --idle-connections N  connections held open idle for the memory figure: the gateway's RSS growth per
                      connection (default 1000; 0 skips it)
  --out DIR           where results go (default artifacts/bench/gateway-<timestamp>)
  --netwire DLL       the netwire.dll to measure (default: this checkout, built Release)
  --install           apt-get install slirp4netns passt iperf3 first
  -h, --help          this text

output: DIR/results.jsonl (one JSON line per figure), DIR/summary.md (tables and ratios for
docs/performance.md), DIR/machine.txt, DIR/*.log.
EOF
}

IMPLS="netwire slirp4netns pasta"
MTUS="1500 65520"
FAMILIES="4 6"
RUNS=3
SECONDS_PER_RUN=5
CONNECTIONS=500
IDLE_CONNECTIONS=1000
OUT=""
NETWIRE_DLL=""
INSTALL=0
COMMAND_LINE="tools/bench/gateway.sh $*"
while [ $# -gt 0 ]; do
    case "$1" in
        --impls) IMPLS="$2"; shift 2 ;;
        --mtus) MTUS="$2"; shift 2 ;;
        --families) FAMILIES="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --idle-connections) IDLE_CONNECTIONS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --netwire) NETWIRE_DLL="$2"; shift 2 ;;
        --install) INSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gateway.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

BENCH_NAME=gateway.sh
. "$(dirname "$0")/benchlib.sh"

[ "$(id -u)" = 0 ] || fail "needs root (it creates network namespaces)"
# Room for the idle connections: each gateway holds a host socket per connection.
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$INSTALL" = 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slirp4netns passt iperf3 > /dev/null \
        || fail "apt-get install slirp4netns passt iperf3 failed"
fi
for tool in ip iperf3 python3 nsenter ss; do
    command -v "$tool" > /dev/null || fail "$tool is not installed"
done

REPO=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$REPO/tools/bench${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-$REPO/artifacts/bench/gateway-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT" || fail "cannot create $OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
WORK=$(mktemp -d /tmp/nwgwbench.XXXXXX)
STARTED=()      # pids this script started; ended by pid on exit
NAMESPACES=()   # namespaces this script added

cleanup() {
    local pid ns
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2> /dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the python side: host server, connection client, /proc accounting, the report -------------
cat > "$WORK/gw.py" <<'PY'
import json, statistics, sys
from benchnet import *

def record(results, round_, impl, family, mtu, workload, value, unit, **extra):
    extra.update(round=int(round_), impl=impl, family=int(family), mtu=int(mtu), workload=workload, value=value, unit=unit)
    with open(results, 'a') as f:
        f.write(json.dumps(extra) + '\n')

def iperf(results, round_, impl, family, mtu, direction, path, cpu0, cpu1):
    workload = 'throughput_' + direction
    try:
        received, d = iperf_received(path)
    except (OSError, ValueError, KeyError) as e:
        record(results, round_, impl, family, mtu, workload, None, 'Gbit/s', error=str(e)[:200])
        print('%s IPv%s %s %s: error %s' % (impl, family, mtu, workload, e))
        return
    gbps = received['bits_per_second'] / 1e9
    retransmits = d['end'].get('sum_sent', {}).get('retransmits')
    record(results, round_, impl, family, mtu, workload, round(gbps, 3), 'Gbit/s', bytes=received['bytes'],
           retransmits=retransmits)
    used = float(cpu1) - float(cpu0)
    per_gb = used / (received['bytes'] / 1e9) if received['bytes'] else None
    record(results, round_, impl, family, mtu, 'cpu_' + direction, per_gb and round(per_gb, 3), 'CPU s/GB',
           cpu_seconds=round(used, 3))
    print('%s IPv%s mtu %s %s: %.3f Gbit/s, %s retransmits, gateway %.2f CPU s' % (
        impl, family, mtu, workload, gbps, retransmits, used))

def connections(results, round_, impl, family, mtu, text, cpu0, cpu1):
    try:
        d = json.loads(text)
        rate = d['ok'] / d['seconds'] if d['ok'] and not d['failed'] else None
    except (ValueError, KeyError) as e:
        d, rate = {'error': '%s: %s' % (e, text[-200:])}, None
    record(results, round_, impl, family, mtu, 'connect_rate', rate and round(rate, 1), 'conn/s', **d)
    # The gateway's CPU per connection: unlike the rate, it holds on a busy machine.
    used = float(cpu1) - float(cpu0)
    per_conn = used * 1e3 / d['ok'] if rate else None
    record(results, round_, impl, family, mtu, 'cpu_connect', per_conn and round(per_conn, 3), 'CPU ms/conn',
           cpu_seconds=round(used, 3))
    print('%s IPv%s mtu %s connect_rate: %s, gateway %.2f CPU s' % (
        impl, family, mtu, rate and '%.0f conn/s' % rate or 'error %s' % d, used))

def idle(results, round_, impl, family, mtu, text):
    try:
        d = json.loads(text)
        per_conn = (d['rss_after_kib'] - d['rss_before_kib']) / d['ok'] if d['ok'] and not d['failed'] else None
    except (ValueError, KeyError) as e:
        d, per_conn = {'error': '%s: %s' % (e, text[-200:])}, None
    record(results, round_, impl, family, mtu, 'rss_idle_conn', per_conn and round(per_conn, 2), 'KiB/conn', **d)
    print('%s IPv%s mtu %s idle connections: %s' % (
        impl, family, mtu, per_conn is not None and '%.2f KiB RSS each (%d open)' % (per_conn, d['ok']) or 'error %s' % d))

LABELS = [('throughput_up', 'TCP ns -> host (Gbit/s)'),
          ('throughput_down', 'TCP host -> ns (Gbit/s)'),
          ('connect_rate', 'connection setup (conn/s)'),
          ('cpu_connect', 'gateway CPU ms per connection'),
          ('cpu_up', 'gateway CPU s/GB, ns -> host'),
          ('cpu_down', 'gateway CPU s/GB, host -> ns'),
          ('rss_idle_conn', 'gateway RSS KiB per idle connection')]

def report(results):
    rows = [json.loads(l) for l in open(results) if l.strip()]
    impls = list(dict.fromkeys(r['impl'] for r in rows))
    # Lines from before the IPv6 column have no family: IPv4.
    links = sorted({(r.get('family', 4), r['mtu']) for r in rows})
    med, spread = {}, {}
    for r in rows:
        med.setdefault((r['impl'], (r.get('family', 4), r['mtu']), r['workload']), []).append(r['value'])
    for k, values in list(med.items()):
        good = [v for v in values if v is not None]
        med[k] = statistics.median(good) if good else None
        spread[k] = (min(good), max(good), len(values) - len(good)) if good else (None, None, len(values))
    def cell(k):
        v = med.get(k)
        if v is None:
            return 'error' if k in med else '-'
        lo, hi, errors = spread[k]
        text = ('%.0f' if k[2] == 'connect_rate' else '%.2f') % v
        if hi != lo:
            text += (' (%.0f-%.0f)' if k[2] == 'connect_rate' else ' (%.2f-%.2f)') % (lo, hi)
        return text + (' +%d failed' % errors if errors else '')
    print('Median of %d round(s), min-max in brackets.\n' % len({r['round'] for r in rows}))
    print('| IP | MTU | workload | ' + ' | '.join(impls) + ' |')
    print('| --- | --- | --- |' + ' --- |' * len(impls))
    for link in links:
        for workload, label in LABELS:
            print('| IPv%d | %d | %s | %s |' % (link[0], link[1], label, ' | '.join(cell((i, link, workload)) for i in impls)))
    others = [i for i in impls if i != 'netwire']
    if 'netwire' not in impls or not others:
        return
    print('\nnetwire against the others (throughput and setup rate: higher is better; CPU: '
          'lower is better):\n')
    print('| IP | MTU | workload | ' + ' | '.join('netwire / %s' % o for o in others) + ' |')
    print('| --- | --- | --- |' + ' --- |' * len(others))
    for link in links:
        for workload, label in LABELS:
            mine = med.get(('netwire', link, workload))
            ratios = []
            for o in others:
                theirs = med.get((o, link, workload))
                ratios.append(('%.3fx' if mine < 0.1 * theirs else '%.2fx') % (mine / theirs) if mine and theirs else '-')
            print('| IPv%d | %d | %s | %s |' % (link[0], link[1], label, ' | '.join(ratios)))

if __name__ == '__main__':
    run(globals())
PY
py() { python3 "$WORK/gw.py" "$@"; }

# --- netwire: this checkout's build ---------------------------------------------------------------
if [[ " $IMPLS " == *" netwire "* ]] && [ -z "$NETWIRE_DLL" ]; then
    build_netwire "$REPO" "$WORK" "$OUT"
fi

# --- host servers, on 127.0.0.1 and ::1 only ------------------------------------------------------
IPERF_PORT=$(py free_port)
LINE_PORT=$(py free_port)
HOLD_PORT=$(py free_port)
iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" > "$OUT/iperf3-server.log" 2>&1 &
STARTED+=($!)
python3 "$WORK/gw.py" line_server "$LINE_PORT" > "$OUT/line-server.log" 2>&1 &
STARTED+=($!)
python3 "$WORK/gw.py" hold_server "$HOLD_PORT" > "$OUT/hold-server.log" 2>&1 &
STARTED+=($!)
if [[ " $FAMILIES " == *" 6 "* ]]; then
    IPERF6_PORT=$(py free_port ::1)
    LINE6_PORT=$(py free_port ::1)
    HOLD6_PORT=$(py free_port ::1)
    iperf3 -s -B ::1 -p "$IPERF6_PORT" > "$OUT/iperf3-server6.log" 2>&1 &
    STARTED+=($!)
    python3 "$WORK/gw.py" line_server "$LINE6_PORT" ::1 > "$OUT/line-server6.log" 2>&1 &
    STARTED+=($!)
    python3 "$WORK/gw.py" hold_server "$HOLD6_PORT" ::1 > "$OUT/hold-server6.log" 2>&1 &
    STARTED+=($!)
fi
wait_listening "$IPERF_PORT" "$LINE_PORT" "$HOLD_PORT" ${IPERF6_PORT:-} ${LINE6_PORT:-} ${HOLD6_PORT:-}

# --- starting and stopping one gateway ---------------------------------------------------------------
# start_IMPL MTU FAMILY sets GW_PID (the process whose CPU is counted), NS (namespace name) and
# HOST_ADDR (the address in the namespace that reaches host loopback: 10.0.2.2, or fd00::2 for
# IPv6, where each of the three maps the gateway's IPv6 address to the host's ::1).
start_slirp4netns() {
    command -v slirp4netns > /dev/null || { WHY="slirp4netns is not installed"; return 1; }
    NS="nwgw-$$-slirp-$1-$2"
    ip netns add "$NS" && NAMESPACES+=("$NS") || { WHY="ip netns add failed"; return 1; }
    # --configure: tap0 10.0.2.100/24, default route via 10.0.2.2, which reaches host loopback
    # (no --disable-host-loopback). For IPv6, --enable-ipv6 (what Podman passes): fd00::/64 by
    # SLAAC, and fd00::2 reaches the host's ::1.
    local ipv6=""
    [ "$2" = 6 ] && ipv6=--enable-ipv6
    slirp4netns --configure $ipv6 --mtu="$1" --netns-type=path "/run/netns/$NS" tap0 > "$OUT/slirp4netns-$1-$2.log" 2>&1 &
    GW_PID=$!
    HOST_ADDR=10.0.2.2
    [ "$2" = 6 ] && HOST_ADDR=fd00::2
    return 0
}

start_pasta() {
    command -v pasta > /dev/null || { WHY="pasta is not installed (package passt)"; return 1; }
    NS="nwgw-$$-pasta-$1-$2"
    ip netns add "$NS" && NAMESPACES+=("$NS") || { WHY="ip netns add failed"; return 1; }
    # Addressing as slirp's (and slirp4netns's for IPv6); pasta maps the gateway address to host
    # loopback (map-gw, its default). No port forwards (-t/-u/-T/-U none), so every byte crosses
    # tap0. --runas 0: as root, pasta would otherwise drop to nobody and fail to enter a namespace
    # it did not make.
    local addressing=(-4 -a 10.0.2.100 -n 24 -g 10.0.2.2)
    HOST_ADDR=10.0.2.2
    if [ "$2" = 6 ]; then
        addressing=(-6 -a fd00::100 -g fd00::2)
        HOST_ADDR=fd00::2
    fi
    pasta --runas 0 -f -q "${addressing[@]}" --config-net -m "$1" -I tap0 \
        -t none -u none -T none -U none --netns "$NS" > "$OUT/pasta-$1-$2.log" 2>&1 &
    GW_PID=$!
}

start_netwire() {
    [ -f "$NETWIRE_DLL" ] || { WHY="no $NETWIRE_DLL"; return 1; }
    # netwire run makes the namespace netwire-<its pid>; the command it runs there only waits.
    # IPv6 is on in both cases (its default); the family only picks the address the clients use.
    dotnet "$NETWIRE_DLL" run --mtu "$1" --allow-host-loopback -- sleep 100000 > "$OUT/netwire-$1-$2.log" 2>&1 &
    GW_PID=$!
    NS="netwire-$GW_PID"
    HOST_ADDR=10.0.2.2
    [ "$2" = 6 ] && HOST_ADDR=fd00::2
    local i
    for i in $(seq 300); do
        ip netns list | grep -qw "$NS" && ip -n "$NS" "-$2" route show default | grep -q tap0 && return 0
        kill -0 "$GW_PID" 2> /dev/null || break
        sleep 0.1
    done
    WHY="netwire run did not set up $NS: $(tail -3 "$OUT/netwire-$1-$2.log" | tr '\n' ' ')"
    return 1
}

stop_gateway() {
    local i
    if [ -n "${GW_PID:-}" ]; then stop_pid "$GW_PID"; fi
    if [[ "$NS" == nwgw-* ]]; then
        ip netns del "$NS" 2> /dev/null
        for i in "${!NAMESPACES[@]}"; do [ "${NAMESPACES[i]}" = "$NS" ] && unset 'NAMESPACES[i]'; done
    fi
    GW_PID=""
}

inns() { ip netns exec "$NS" "$@"; }

measure() {   # round impl family mtu
    local round=$1 impl=$2 family=$3 mtu=$4 direction flag c0 c1 seen iperf_port=$IPERF_PORT line_port=$LINE_PORT hold_port=$HOLD_PORT
    GW_PID=""; NS=""; WHY=""
    if [ "$family" = 6 ]; then
        iperf_port=$IPERF6_PORT
        line_port=$LINE6_PORT
        hold_port=$HOLD6_PORT
    fi
    say "round $round: $impl, IPv$family, MTU $mtu"
    if ! "start_$impl" "$mtu" "$family"; then
        say "$impl: not measured: $WHY"
        stop_gateway
        return
    fi
    STARTED+=("$GW_PID")
    if ! seen=$(inns python3 "$WORK/gw.py" wait_up "$HOST_ADDR" "$line_port" 30); then
        say "$impl: no traffic through the gateway within 30 s"
        stop_gateway
        return
    fi
    say "$impl: up; the host server sees the namespace as $seen; tap0 mtu $(inns cat /sys/class/net/tap0/mtu)"
    for direction in up down; do
        flag=""; [ "$direction" = down ] && flag=-R
        c0=$(py cpu "$GW_PID")
        inns timeout $((SECONDS_PER_RUN + 30)) iperf3 -c "$HOST_ADDR" -p "$iperf_port" -t "$SECONDS_PER_RUN" \
            -J $flag > "$WORK/iperf.json" 2> "$WORK/iperf.err"
        c1=$(py cpu "$GW_PID")
        py iperf "$RESULTS" "$round" "$impl" "$family" "$mtu" "$direction" "$WORK/iperf.json" "$c0" "$c1" >&2
        sleep 0.5
    done
    c0=$(py cpu "$GW_PID")
    seen=$(inns timeout 120 python3 "$WORK/gw.py" connect_rate "$HOST_ADDR" "$line_port" "$CONNECTIONS" 60 | tail -1)
    c1=$(py cpu "$GW_PID")
    py connections "$RESULTS" "$round" "$impl" "$family" "$mtu" "$seen" "$c0" "$c1" >&2
    if [ "$IDLE_CONNECTIONS" -gt 0 ]; then
        seen=$(inns timeout 180 python3 "$WORK/gw.py" idle_rss "$HOST_ADDR" "$hold_port" "$IDLE_CONNECTIONS" "$GW_PID" | tail -1)
        py idle "$RESULTS" "$round" "$impl" "$family" "$mtu" "$seen" >&2
    fi
    stop_gateway
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "command: $COMMAND_LINE"
    echo "kernel: $(uname -r)"
    echo "cpus: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "slirp4netns: $(dpkg-query -W -f='${Version}' slirp4netns 2> /dev/null || echo none)"
    echo "passt: $(dpkg-query -W -f='${Version}' passt 2> /dev/null || echo none)"
    echo "iperf3: $(iperf3 --version | head -1)"
    echo "netwire: $(git -C "$REPO" rev-parse --short HEAD 2> /dev/null)"
} > "$OUT/machine.txt"

for round in $(seq "$RUNS"); do
    for impl in $IMPLS; do
        for family in $FAMILIES; do
            for mtu in $MTUS; do
                measure "$round" "$impl" "$family" "$mtu"
            done
        done
    done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

{
    cat "$OUT/machine.txt"
    echo
    py report "$RESULTS"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
say "results in $OUT"
