#!/usr/bin/env bash
# Regenerates captures/guest-{dhcp,arp,icmp,tcp}.pcapng from one real session: the test guest
# (tools/guest, QEMU 7.2, virtio-net) on `netwire bridge --host gateway --capture`, taking a
# DHCP lease, pinging the gateway and sending 16 KiB over TCP to a listener on the host's
# loopback (reached at the gateway address with --allow-host-loopback). tshark then cuts the
# session into one file per protocol, and `netwire inspect --json` writes each expected summary.
#
#   sudo tools/captures/make-captures.sh [OUTDIR]     # default: captures/
#   NETWIRE="dotnet /path/netwire.dll" ...            # another netwire build
#
# Needs root (QEMU, a unix socket under a temp dir is enough, but tools/guest needs apt), qemu-system-x86,
# tshark, busybox. Takes about 20 s.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/captures}
netwire=${NETWIRE:-$repo/tools/netwire}
tmp=$(mktemp -d /tmp/nwcap.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2> /dev/null || true
    done
    wait 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

"$repo/tools/guest/build-image.sh" > /dev/null
guest=$repo/.build/guest
kernel=$guest/vmlinux
[[ -f $kernel ]] || kernel=$guest/vmlinuz

# The TCP peer: busybox nc on 127.0.0.1:5001, stdin a FIFO held open (see tools/guest/README.md).
mkfifo "$tmp/hold"
busybox nc -l -p 5001 127.0.0.1 <> "$tmp/hold" > "$tmp/received" &
pids+=($!)

$netwire bridge --guest "stream:unix:$tmp/g.sock" --host gateway --allow-host-loopback \
    --capture "$tmp/session.pcapng" --status-file "$tmp/status.json" --log-level Warning &
bridge=$!
pids+=($bridge)
for _ in $(seq 300); do
    [[ -S $tmp/g.sock ]] && break
    sleep 0.1
done
[[ -S $tmp/g.sock ]] || { echo "make-captures: the bridge did not listen" >&2; exit 1; }

mkdir "$tmp/t"
cat > "$tmp/t/test.sh" << 'EOF'
. /lib/nw.sh
ping -c 3 10.0.2.2 > /dev/null && mark PING ok
head -c 16384 /dev/zero | tr '\0' 'N' > /tmp/f
nc 10.0.2.2 5001 < /tmp/f
mark "SENT rc=$?"
EOF
(cd "$tmp/t" && echo test.sh | cpio -o -H newc -R 0:0 --quiet) > "$tmp/t.cpio"
cat "$guest/initramfs.cpio.gz" "$tmp/t.cpio" > "$tmp/initrd.img"

qemu-system-x86_64 -machine pc -accel tcg -m 128M -nodefaults -no-user-config -display none \
    -serial stdio -no-reboot -kernel "$kernel" -initrd "$tmp/initrd.img" \
    -append "console=ttyS0 panic=-1 quiet ipv6.disable=1 nw.ip=dhcp" \
    -netdev "stream,id=n0,server=off,addr.type=unix,addr.path=$tmp/g.sock" \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile= > "$tmp/console.txt"
grep -q 'NW:PING ok' "$tmp/console.txt" && grep -q 'NW:SENT rc=0' "$tmp/console.txt" \
    || { cat "$tmp/console.txt" >&2; echo "make-captures: the guest's test failed" >&2; exit 1; }
[[ $(stat -c %s "$tmp/received") == 16384 ]] || { echo "make-captures: the host received $(stat -c %s "$tmp/received") bytes" >&2; exit 1; }

# Let the last frames reach the capture, then stop the bridge (SIGTERM flushes and closes it).
sleep 1
kill "$bridge"
wait "$bridge" || true

mkdir -p "$out"
cut_out() { # NAME FILTER
    tshark -r "$tmp/session.pcapng" -Y "$2" -F pcapng -w "$out/$1.pcapng" 2> /dev/null
    (cd "$out" && $netwire inspect "$1.pcapng" --json) > "$out/$1.inspect.json"
    echo "$1.pcapng: $(tshark -r "$out/$1.pcapng" 2> /dev/null | wc -l) frames"
}
cut_out guest-dhcp dhcp
cut_out guest-arp arp
cut_out guest-icmp icmp
cut_out guest-tcp tcp
