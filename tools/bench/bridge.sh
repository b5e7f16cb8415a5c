#!/usr/bin/env bash
# Frames per second through `netwire bridge` (guest stream unix socket <-> TAP), each way,
# side by side with a raw TAP fd loop (the ceiling) and SharpPcap's TunnelDevice, plus the
# load generator alone. Everything runs in a network namespace this script creates and
# deletes; see tools/bench/README.md for what each scenario does and how to read the output.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tools/bench/bridge.sh [options]

Measures netwire bridge throughput in both directions against a raw TAP loop and SharpPcap's
TunnelDevice, in a throw-away network namespace. Needs root (netns, TAP, AF_PACKET).

options:
  --runs N            repetitions of every measurement (default 3)
  --sizes "A B"       frame sizes in bytes, 14..1514 (default "64 1514")
  --directions "D"    g2h (guest socket -> TAP) and/or h2g (TAP -> guest socket) (default "g2h h2g")
  --scenarios "S"     any of raw sharppcap bridge generator (default: all four)
  --warmup S          seconds of load before the window opens (default 3)
  --seconds S         length of the measuring window (default 5)
  --queue-frames N    passed to netwire bridge --queue-frames (default: netwire's own)
  --out DIR           where results go (default artifacts/bench/bridge-<timestamp>)
  --netwire DLL       the netwire.dll to measure (default: this checkout's Release build);
                      for before/after comparisons against another checkout's build
  --max-others C      retry a measurement when other processes kept more than C cores busy
                      during its window (default 0.15)
  --tries N           tries per measurement under --max-others (default 3)
  --quiet-timeout S   longest wait for an idle machine before each measurement (default 120)
  --no-build          use the existing Release builds
  -h, --help          this text

output: DIR/results.jsonl (one JSON line per measurement), DIR/summary.md (the tables for
docs/performance.md), DIR/machine.txt, DIR/command.txt, DIR/netwire-*.log.
EOF
}

RUNS=3
SIZES="64 1514"
DIRECTIONS="g2h h2g"
SCENARIOS="raw sharppcap bridge generator"
WARMUP=3
WINDOW=5
QUEUE_FRAMES=""
OUT=""
NETWIRE=""
MAX_OTHERS=0.15
TRIES=3
QUIET_TIMEOUT=120
BUILD=1
COMMAND_LINE="tools/bench/bridge.sh $*"

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --sizes) SIZES="$2"; shift 2 ;;
        --directions) DIRECTIONS="$2"; shift 2 ;;
        --scenarios) SCENARIOS="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --seconds) WINDOW="$2"; shift 2 ;;
        --queue-frames) QUEUE_FRAMES="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --netwire) NETWIRE="$2"; shift 2 ;;
        --max-others) MAX_OTHERS="$2"; shift 2 ;;
        --tries) TRIES="$2"; shift 2 ;;
        --quiet-timeout) QUIET_TIMEOUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bridge.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "bridge.sh: needs root (network namespace, TAP device, AF_PACKET socket)" >&2
    exit 2
fi
for tool in ip dotnet; do
    command -v "$tool" >/dev/null || { echo "bridge.sh: $tool not found" >&2; exit 2; }
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NETWIRE="${NETWIRE:-$REPO/src/NetWire.Cli/bin/Release/net10.0/netwire.dll}"
BENCH="$REPO/tools/bench/NetWire.Bench/bin/Release/net10.0/netwire-bench.dll"
OUT="${OUT:-$REPO/artifacts/bench/bridge-$(date +%Y%m%d-%H%M%S)}"
NS="nwbench-$$"
TAP="nwb0"
WORK=""
NETWIRE_PID=""

log() { echo "bridge.sh: $*" >&2; }

stop_netwire() {
    # Only the process this script started, by its pid.
    local pid="$NETWIRE_PID"
    [ -n "$pid" ] || return 0
    NETWIRE_PID=""
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "netwire ($pid) ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_netwire
    if ip netns list 2>/dev/null | grep -qw "^$NS"; then
        ip netns del "$NS" || log "could not delete namespace $NS"
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$BUILD" -eq 1 ]; then
    log "building netwire and netwire-bench (Release)"
    dotnet build -c Release "$REPO/src/NetWire.Cli" -v q -nologo >/dev/null
    dotnet build -c Release "$REPO/tools/bench/NetWire.Bench" -v q -nologo >/dev/null
fi
[ -f "$NETWIRE" ] || { log "missing $NETWIRE (run without --no-build)"; exit 2; }
[ -f "$BENCH" ] || { log "missing $BENCH (run without --no-build)"; exit 2; }

mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/nwbench.XXXXXX)"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

{
    echo "date: $(date)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "kernel: $(uname -srm)"
    echo "dotnet: $(dotnet --version)"
    echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
    echo "netwire: $NETWIRE"
} >"$OUT/machine.txt"
echo "$COMMAND_LINE" >"$OUT/command.txt"

log "namespace $NS, TAP $TAP, results in $OUT"
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" ip tuntap add dev "$TAP" mode tap
ip -n "$NS" link set "$TAP" address 02:00:00:00:00:01
# No IPv6 autoconfiguration chatter on the TAP while counting frames.
ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$TAP.disable_ipv6=1"
ip -n "$NS" link set "$TAP" up

start_netwire() {
    local log_file="$1"
    rm -f "$WORK/guest.sock" "$WORK/status.json"
    local args=(bridge --guest "stream:unix:$WORK/guest.sock" --host "tap:$TAP"
        --status-file "$WORK/status.json" --log-level Warning)
    [ -n "$QUEUE_FRAMES" ] && args+=(--queue-frames "$QUEUE_FRAMES")
    # ip netns exec replaces itself with the command, so $! is netwire's pid.
    ip netns exec "$NS" dotnet "$NETWIRE" "${args[@]}" >"$log_file" 2>&1 &
    NETWIRE_PID=$!
    for _ in $(seq 200); do
        [ -S "$WORK/guest.sock" ] && [ -f "$WORK/status.json" ] && return 0
        kill -0 "$NETWIRE_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "netwire did not come up; see $log_file"
    return 1
}

FAILED=0
NOISY=0
measure_once() {
    local run="$1" size="$2" direction="$3" scenario="$4"
    local args=(measure --scenario "$scenario" --direction "$direction" --size "$size" --tap "$TAP"
        --warmup "$WARMUP" --seconds "$WINDOW" --run "$run" --quiet-timeout "$QUIET_TIMEOUT")
    if [ "$scenario" = bridge ]; then
        start_netwire "$OUT/netwire-$direction-$size-$run.log" || return 1
        args+=(--socket "$WORK/guest.sock" --status-file "$WORK/status.json")
    fi
    local status=0
    LINE="$(ip netns exec "$NS" dotnet "$BENCH" "${args[@]}")" || status=1
    stop_netwire
    return "$status"
}

measure() {
    local run="$1" size="$2" direction="$3" scenario="$4" try others
    for try in $(seq "$TRIES"); do
        if ! measure_once "$run" "$size" "$direction" "$scenario"; then
            log "run $run, $size B, $direction, $scenario: FAILED"
            FAILED=$((FAILED + 1))
            return 0
        fi
        others="$(echo "$LINE" | sed -n 's/.*"others_busy_cores":\([0-9.]*\).*/\1/p')"
        # Another process (a build, a test run) shared the machine: measure again.
        if awk -v o="${others:-0}" -v m="$MAX_OTHERS" 'BEGIN { exit !(o > m) }' && [ "$try" -lt "$TRIES" ]; then
            log "run $run, $size B, $direction, $scenario: other processes used $others cores; again"
            continue
        fi
        break
    done
    if awk -v o="${others:-0}" -v m="$MAX_OTHERS" 'BEGIN { exit !(o > m) }'; then
        NOISY=$((NOISY + 1))
    fi
    echo "$LINE" >>"$RESULTS"
    log "run $run, $size B, $direction, $scenario: $(echo "$LINE" | grep -o '"fps":[0-9.]*'), others ${others:-?} cores"
}

for run in $(seq "$RUNS"); do
    for size in $SIZES; do
        for direction in $DIRECTIONS; do
            for scenario in $SCENARIOS; do
                measure "$run" "$size" "$direction" "$scenario"
            done
        done
    done
done

dotnet "$BENCH" summarize "$RESULTS" >"$OUT/summary.md"
cat "$OUT/machine.txt"
echo
cat "$OUT/summary.md"
if [ "$NOISY" -gt 0 ]; then
    log "$NOISY measurement(s) kept despite other processes using more than $MAX_OTHERS cores (see others_busy_cores)"
fi
if [ "$FAILED" -gt 0 ]; then
    log "$FAILED measurement(s) failed"
    exit 1
fi
