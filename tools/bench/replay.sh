#!/usr/bin/env bash
# netwire replay --topspeed against tcpreplay --topspeed (with and without --preload-pcap), on
# the same veth pair in a network namespace this script creates, same run, same files: 64 B and
# 1514 B frames. Also netwire replay --into null (the file read and handed to an end that
# discards, no I/O). Prints a Markdown table: frames/s and Gbit/s (median of ROUNDS), and each
# rate as a ratio of tcpreplay --preload-pcap's. The receiving veth's rx_packets is checked
# against the frames sent, so a tool cannot report frames that never arrived.
#
#   sudo tools/bench/replay.sh [ROUNDS]          # default 3 rounds
#   FRAMES64=1000000 FRAMES1514=200000 NETWIRE="dotnet /path/netwire.dll" sudo -E tools/bench/replay.sh
#   NETWIRE_BEFORE="dotnet /other/build/netwire.dll" sudo -E tools/bench/replay.sh   # also that build,
#                                                  # interleaved, as netwire-before and netwire-before-null
#
# Needs root, tcpreplay (apt-get install tcpreplay), python3 (to write the captures).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-3}
frames64=${FRAMES64:-1000000}
frames1514=${FRAMES1514:-200000}
netwire=${NETWIRE:-$repo/tools/netwire}
netwire_before=${NETWIRE_BEFORE:-}
command -v tcpreplay > /dev/null || { echo "replay.sh: install tcpreplay (apt-get install tcpreplay)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "replay.sh: needs root (namespace, veth)" >&2; exit 2; }

ns=nwrb$$
tmp=$(mktemp -d /tmp/nwrb.XXXXXX)
cleanup() {
    ip netns del "$ns" 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add rb0 type veth peer name rb1
ip -n "$ns" link set rb0 up
ip -n "$ns" link set rb1 up
ip -n "$ns" link set lo up

# Frames of EtherType 0x88b5 (local experimental) between two locally administered MACs:
# rb1's kernel takes and drops them, nothing answers.
python3 - "$tmp" "$frames64" "$frames1514" << 'EOF'
import struct, sys
out, n64, n1514 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for size, count in ((64, n64), (1514, n1514)):
    with open(f"{out}/f{size}.pcap", "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        pad = bytes(size - 18)
        for i in range(count):
            f.write(struct.pack("<IIII", i // 1000000, i % 1000000, size, size))
            f.write(b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x88\xb5" + struct.pack(">I", i) + pad)
EOF

rx() { ip netns exec "$ns" cat /sys/class/net/rb1/statistics/rx_packets; }

# One run: prints "frames_per_second" or fails if rb1 did not get every frame.
run() { # TOOL SIZE FRAMES
    local tool=$1 file=$tmp/f$2.pcap frames=$3 before after out fps
    before=$(rx)
    case $tool in
        tcpreplay) out=$(ip netns exec "$ns" tcpreplay --topspeed -q -i rb0 "$file" 2>&1) ;;
        tcpreplay-preload) out=$(ip netns exec "$ns" tcpreplay --topspeed --preload-pcap -q -i rb0 "$file" 2>&1) ;;
        netwire) out=$(ip netns exec "$ns" $netwire replay "$file" --into pcap:rb0 --topspeed --log-level Warning 2>&1 < /dev/null) ;;
        netwire-null) out=$($netwire replay "$file" --into null --topspeed --log-level Warning 2>&1 < /dev/null) ;;
        netwire-before) out=$(ip netns exec "$ns" $netwire_before replay "$file" --into pcap:rb0 --topspeed --log-level Warning 2>&1 < /dev/null) ;;
        netwire-before-null) out=$($netwire_before replay "$file" --into null --topspeed --log-level Warning 2>&1 < /dev/null) ;;
    esac
    if [[ $tool == tcpreplay* ]]; then
        fps=$(sed -n 's/.*Rated: .* Mbps, \([0-9.]*\) pps.*/\1/p' <<< "$out")
    else
        fps=$(sed -n 's/^ *rate *\([0-9]*\) frames\/s.*/\1/p' <<< "$out")
    fi
    if [[ $tool != *-null ]]; then
        sleep 0.2
        after=$(rx)
        if ((after - before < frames)); then
            echo "replay.sh: $tool sent $frames frames of $2 B but rb1 received $((after - before))" >&2
            echo "$out" >&2
            exit 1
        fi
    fi
    [[ -n $fps ]] || { echo "replay.sh: no rate in the output of $tool:" >&2; echo "$out" >&2; exit 1; }
    echo "$fps"
}

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

tools=(tcpreplay tcpreplay-preload netwire netwire-null)
[[ -z $netwire_before ]] || tools+=(netwire-before netwire-before-null)
declare -A result
for size in 64 1514; do
    frames=$([[ $size == 64 ]] && echo "$frames64" || echo "$frames1514")
    # Warm the page cache and the JIT's disk cache once; not measured.
    run netwire-null "$size" "$frames" > /dev/null
    for tool in "${tools[@]}"; do
        : > "$tmp/$tool.$size"
    done
    # Rounds interleave the tools, so a change in the machine's load hits all of them.
    for ((r = 0; r < rounds; r++)); do
        for tool in "${tools[@]}"; do
            run "$tool" "$size" "$frames" >> "$tmp/$tool.$size"
        done
    done
    for tool in "${tools[@]}"; do
        result[$tool.$size]=$(median < "$tmp/$tool.$size")
    done
done

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); kernel $(uname -r); $(nproc) CPUs; load average at end: $(cut -d' ' -f1-3 /proc/loadavg); median of $rounds rounds"
echo
echo "| tool | 64 B frames/s | 64 B Gbit/s | vs tcpreplay --preload-pcap | 1514 B frames/s | 1514 B Gbit/s | vs tcpreplay --preload-pcap |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for tool in "${tools[@]}"; do
    line="| $tool"
    for size in 64 1514; do
        fps=${result[$tool.$size]}
        ref=${result[tcpreplay-preload.$size]}
        line+=$(awk -v f="$fps" -v s="$size" -v r="$ref" 'BEGIN { printf " | %.3f M | %.2f | %.2f", f / 1e6, f * s * 8 / 1e9, f / r }')
    done
    echo "$line |"
done
