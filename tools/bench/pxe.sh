#!/usr/bin/env bash
# Network boot and TFTP, NetWire beside QEMU's -netdev user (libslirp) in the same run:
#
#   1. PXE boot time: a diskless QEMU 7.2 guest (TCG, -boot n, virtio-net with QEMU's iPXE ROM)
#      boots through an iPXE script, the test guest's kernel and initramfs over TFTP, from
#      `netwire serve --tftp DIR --bootfile boot.ipxe` and from `-netdev user,tftp=DIR,bootfile=`;
#      the figure is QEMU's start to the guest's first marker (NW:BOOT), the runs interleaved.
#   2. TFTP throughput: `netwire run --tftp DIR -- curl --tftp-blksize B tftp://10.0.2.2/FILE`
#      (the namespace kernel's UDP as the client) for each block size, with netwire's own CPU
#      seconds per GB from /proc/PID/stat. A block size needs an MTU that carries it unfragmented
#      (the gateway never fragments): 1432 at MTU 1500, 8192 at MTU 9000.
set -uo pipefail

usage() {
    cat <<'EOF'
usage: tools/bench/pxe.sh [options]

Needs root (netwire run's namespace), qemu-system-x86, ipxe-qemu, curl, python3, the guest
image (tools/guest/build-image.sh) and the .NET SDK.

options:
  --runs N            PXE boots per implementation, interleaved (default 3)
  --blksizes "B ..."  TFTP block sizes (default "1432 8192")
  --tftp-mb M         size of the TFTP throughput file in MiB (default 64)
  --transfers N       TFTP transfers per block size; the median is reported (default 3)
  --skip-boot         only the TFTP throughput
  --skip-tftp         only the PXE boot times
  --out DIR           where results go (default artifacts/bench/pxe-<timestamp>)
  --netwire DLL       the netwire.dll to measure (default: this checkout, built Release)
  -h, --help          this text

output: DIR/results.jsonl (one JSON line per figure), DIR/summary.md, DIR/*.log
EOF
}

RUNS=3
BLKSIZES="1432 8192"
TFTP_MB=64
TRANSFERS=3
SKIP_BOOT=0
SKIP_TFTP=0
OUT=""
NETWIRE_DLL=""
COMMAND_LINE="tools/bench/pxe.sh $*"
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --blksizes) BLKSIZES="$2"; shift 2 ;;
        --tftp-mb) TFTP_MB="$2"; shift 2 ;;
        --transfers) TRANSFERS="$2"; shift 2 ;;
        --skip-boot) SKIP_BOOT=1; shift ;;
        --skip-tftp) SKIP_TFTP=1; shift ;;
        --out) OUT="$2"; shift 2 ;;
        --netwire) NETWIRE_DLL="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "pxe.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '[pxe.sh %s] %s\n' "$(date -u +%T)" "$*" >&2; }
fail() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (netwire run makes a network namespace)"
for tool in qemu-system-x86_64 curl python3 cpio gzip; do
    command -v "$tool" > /dev/null || fail "$tool is not installed"
done
[ -f /usr/lib/ipxe/qemu/efi-virtio.rom ] || fail "QEMU's iPXE ROMs are missing (apt-get install ipxe-qemu)"

REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$REPO/artifacts/bench/pxe-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT" || fail "cannot create $OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
WORK=$(mktemp -d /tmp/nwpxebench.XXXXXX)
STARTED=()

cleanup() {
    local pid
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do
        kill -TERM "$pid" 2> /dev/null
        wait "$pid" 2> /dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "$NETWIRE_DLL" ]; then
    say "building netwire (Release)"
    dotnet build "$REPO/src/NetWire.Cli" -c Release --nologo -v quiet > "$OUT/build.log" 2>&1 || fail "build failed (log: $OUT/build.log)"
    NETWIRE_DLL=$REPO/src/NetWire.Cli/bin/Release/net10.0/netwire.dll
fi
NETWIRE=(dotnet "$NETWIRE_DLL")
"$REPO/tools/guest/build-image.sh" > /dev/null || fail "tools/guest/build-image.sh failed"
GUEST=$REPO/.build/guest
KERNEL=$GUEST/vmlinuz
[ -f "$KERNEL" ] || fail "no $KERNEL (the iPXE script loads a bzImage)"

# The TFTP folder: the iPXE script, the kernel, the initramfs with a test script that ends the VM.
TFTP=$WORK/tftp
mkdir -p "$TFTP" "$WORK/t"
cp "$KERNEL" "$TFTP/vmlinuz"
printf '. /lib/nw.sh\nmark DONE\n' > "$WORK/t/test.sh"
(cd "$WORK/t" && echo test.sh | cpio -o -H newc -R 0:0 --quiet) > "$WORK/t.cpio"
cat "$GUEST/initramfs.cpio.gz" "$WORK/t.cpio" > "$TFTP/initrd.img"
cat > "$TFTP/boot.ipxe" <<'EOF'
#!ipxe
kernel vmlinuz console=ttyS0 panic=-1 quiet no_timer_check nw.ip=dhcp ipv6.disable=1
initrd initrd.img
boot
EOF

# Boots once on NETDEV; prints the seconds from QEMU's start to NW:BOOT on the serial console.
boot_once() { # NETDEV LOG
    python3 - "$1" "$2" <<'PY'
import subprocess, sys, time
netdev, log = sys.argv[1], sys.argv[2]
args = ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", "256M", "-nodefaults", "-no-user-config",
        "-display", "none", "-vga", "std", "-serial", "stdio", "-no-reboot", "-boot", "n",
        "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"]
start = time.monotonic()
qemu = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
booted = None
with open(log, "wb") as out:
    deadline = start + 600
    for line in qemu.stdout:
        out.write(line)
        if booted is None and line.startswith(b"NW:BOOT"):
            booted = time.monotonic() - start
        if line.startswith(b"NW:DONE") or time.monotonic() > deadline:
            break
qemu.kill()
qemu.wait()
if booted is None:
    sys.exit("no NW:BOOT (log: %s)" % log)
print("%.3f" % booted)
PY
}

record() { echo "$1" >> "$RESULTS"; }

if [ "$SKIP_BOOT" = 0 ]; then
    for run in $(seq "$RUNS"); do
        for impl in netwire user; do
            log=$OUT/boot-$impl-$run.log
            if [ "$impl" = netwire ]; then
                sock=$WORK/g.sock
                rm -f "$sock"
                "${NETWIRE[@]}" serve --guest "stream:unix:$sock" --spice-port 0 --disable-ticketing \
                    --tftp "$TFTP" --bootfile boot.ipxe --log-level Warning > "$OUT/serve-$run.log" 2>&1 &
                serve=$!
                STARTED+=("$serve")
                for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
                [ -S "$sock" ] || fail "netwire serve did not listen (log: $OUT/serve-$run.log)"
                seconds=$(boot_once "stream,id=n0,server=off,addr.type=unix,addr.path=$sock" "$log") || fail "netwire boot $run failed"
                kill -TERM "$serve"
                wait "$serve" 2> /dev/null
            else
                seconds=$(boot_once "user,id=n0,tftp=$TFTP,bootfile=boot.ipxe" "$log") || fail "-netdev user boot $run failed"
            fi
            say "PXE boot $impl run $run: $seconds s"
            record "{\"bench\":\"pxe_boot\",\"impl\":\"$impl\",\"run\":$run,\"seconds\":$seconds}"
        done
    done
fi

if [ "$SKIP_TFTP" = 0 ]; then
    head -c $((TFTP_MB * 1024 * 1024)) /dev/urandom > "$TFTP/big.bin"
    for blksize in $BLKSIZES; do
        mtu=1500
        [ "$blksize" -gt 1468 ] && mtu=9000
        for transfer in $(seq "$TRANSFERS"); do
            # The command's parent is netwire run itself: its CPU before and after the transfer.
            "${NETWIRE[@]}" run --tftp "$TFTP" --mtu "$mtu" -- sh -c '
                cpu() { awk "{print \$14 + \$15}" /proc/$PPID/stat; }
                before=$(cpu); start=$(date +%s.%N)
                curl -s --tftp-blksize '"$blksize"' -o /dev/null -w "%{size_download}" tftp://10.0.2.2/big.bin > '"$WORK"'/size || exit 1
                end=$(date +%s.%N); after=$(cpu)
                echo "$before $after $start $end" > '"$WORK"'/cpu' > "$OUT/tftp-$blksize-$transfer.log" 2>&1 \
                || fail "the TFTP transfer failed (log: $OUT/tftp-$blksize-$transfer.log)"
            read -r before after start end < "$WORK/cpu"
            size=$(cat "$WORK/size")
            [ "$size" = $((TFTP_MB * 1024 * 1024)) ] || fail "curl got $size bytes"
            line=$(python3 -c '
import os, sys
before, after, start, end, size, blksize, mtu = sys.argv[1:]
ticks = os.sysconf("SC_CLK_TCK")
seconds = float(end) - float(start)
cpu = (int(after) - int(before)) / ticks
print("{\"bench\":\"tftp\",\"blksize\":%s,\"mtu\":%s,\"bytes\":%s,\"seconds\":%.3f,\"mb_per_s\":%.2f,\"netwire_cpu_s_per_gb\":%.2f}"
      % (blksize, mtu, size, seconds, int(size) / seconds / 1e6, cpu / (int(size) / 1e9)))' "$before" "$after" "$start" "$end" "$size" "$blksize" "$mtu")
            say "TFTP blksize $blksize (MTU $mtu) transfer $transfer: $line"
            record "$line"
        done
    done
fi

python3 - "$RESULTS" "$COMMAND_LINE" > "$OUT/summary.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out = ["# PXE boot and TFTP", "", "`%s`, load average at the end: %s" % (sys.argv[2], open("/proc/loadavg").read().split()[0]), ""]
boots = {}
for r in rows:
    if r["bench"] == "pxe_boot":
        boots.setdefault(r["impl"], []).append(r["seconds"])
if boots:
    out += ["| PXE boot to NW:BOOT | median s | runs |", "| --- | --- | --- |"]
    for impl in ("netwire", "user"):
        if impl in boots:
            out.append("| %s | %.2f | %s |" % ("netwire serve" if impl == "netwire" else "-netdev user", statistics.median(boots[impl]), ", ".join("%.2f" % s for s in boots[impl])))
    if "netwire" in boots and "user" in boots:
        out.append("")
        out.append("netwire / -netdev user: %.2f" % (statistics.median(boots["netwire"]) / statistics.median(boots["user"])))
    out.append("")
tftp = {}
for r in rows:
    if r["bench"] == "tftp":
        tftp.setdefault((r["blksize"], r["mtu"]), []).append(r)
if tftp:
    out += ["| TFTP blksize | MTU | median MB/s | netwire CPU s/GB |", "| --- | --- | --- | --- |"]
    for (blksize, mtu), rs in sorted(tftp.items()):
        out.append("| %d | %d | %.1f | %.2f |" % (blksize, mtu, statistics.median(r["mb_per_s"] for r in rs), statistics.median(r["netwire_cpu_s_per_gb"] for r in rs)))
print("\n".join(out))
PY
cat "$OUT/summary.md"
