#!/usr/bin/env bash
# Regenerates captures/guest-{dhcp,arp,icmp,tcp}.pcapng from one real session: the test guest
# (tools/guest, QEMU 7.2, virtio-net) on `netwire bridge --host gateway --capture`, taking a
# DHCP lease, pinging the gateway and sending 16 KiB over TCP to a listener on the host's
# loopback (reached at the gateway address with --allow-host-loopback). tshark then cuts the
# session into one file per protocol, and `netwire inspect --json` writes each expected summary.
# A second session, with IPv6 on in the guest, gives captures/guest-ipv6.pcapng: its router
# solicitation and the gateway's advertisement, duplicate address detection and multicast
# listener reports, neighbour discovery, `ping -6 fd00::2`, and 16 KiB over TCP to [fd00::2]
# (the host's ::1).
#
#   sudo tools/captures/make-captures.sh [OUTDIR]     # default: captures/
#   NETWIRE="dotnet /path/netwire.dll" ...            # another netwire build
#
# Needs root (QEMU, a unix socket under a temp dir is enough, but tools/guest needs apt), qemu-system-x86,
# tshark, busybox, python3. Takes about 40 s.
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

# session NAME APPEND: a `netwire bridge --host gateway` recording $tmp/NAME.pcapng, and the
# guest booted on it with $tmp/NAME/test.sh and the kernel arguments APPEND; its console goes to
# $tmp/NAME.console. The bridge is stopped (SIGTERM flushes and closes the capture) once the
# guest has powered off and the last frames had a second to reach the capture.
session() {
    local name=$1 append=$2 bridge
    $netwire bridge --guest "stream:unix:$tmp/$name.sock" --host gateway --allow-host-loopback \
        --capture "$tmp/$name.pcapng" --log-level Warning &
    bridge=$!
    pids+=($bridge)
    for _ in $(seq 300); do
        [[ -S $tmp/$name.sock ]] && break
        sleep 0.1
    done
    [[ -S $tmp/$name.sock ]] || { echo "make-captures: the bridge for $name did not listen" >&2; exit 1; }
    (cd "$tmp/$name" && echo test.sh | cpio -o -H newc -R 0:0 --quiet) > "$tmp/$name.cpio"
    cat "$guest/initramfs.cpio.gz" "$tmp/$name.cpio" > "$tmp/$name.img"
    qemu-system-x86_64 -machine pc -accel tcg -m 128M -nodefaults -no-user-config -display none \
        -serial stdio -no-reboot -kernel "$kernel" -initrd "$tmp/$name.img" \
        -append "console=ttyS0 panic=-1 quiet no_timer_check $append" \
        -netdev "stream,id=n0,server=off,addr.type=unix,addr.path=$tmp/$name.sock" \
        -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile= > "$tmp/$name.console"
    sleep 1
    kill "$bridge"
    wait "$bridge" || true
}

# expect NAME MARKER...: each NW:MARKER is on NAME's console.
expect() {
    local name=$1 marker
    shift
    for marker in "$@"; do
        grep -q "NW:$marker" "$tmp/$name.console" \
            || { cat "$tmp/$name.console" >&2; echo "make-captures: no NW:$marker from the $name guest" >&2; exit 1; }
    done
}

mkdir -p "$out"
cut_out() { # NAME FILTER SESSION
    tshark -r "$tmp/$3.pcapng" -Y "$2" -F pcapng -w "$out/$1.pcapng" 2> /dev/null
    (cd "$out" && $netwire inspect "$1.pcapng" --json) > "$out/$1.inspect.json"
    echo "$1.pcapng: $(tshark -r "$out/$1.pcapng" 2> /dev/null | wc -l) frames"
}

# --- the IPv4 session ---------------------------------------------------------------------------
# The TCP peer: busybox nc on 127.0.0.1:5001, stdin a FIFO held open (see tools/guest/README.md).
mkfifo "$tmp/hold"
busybox nc -l -p 5001 127.0.0.1 <> "$tmp/hold" > "$tmp/received" &
pids+=($!)
mkdir "$tmp/ipv4"
cat > "$tmp/ipv4/test.sh" << 'EOF'
. /lib/nw.sh
ping -c 3 10.0.2.2 > /dev/null && mark PING ok
head -c 16384 /dev/zero | tr '\0' 'N' > /tmp/f
nc 10.0.2.2 5001 < /tmp/f
mark "SENT rc=$?"
EOF
session ipv4 "ipv6.disable=1 nw.ip=dhcp"
expect ipv4 "PING ok" "SENT rc=0"
[[ $(stat -c %s "$tmp/received") == 16384 ]] || { echo "make-captures: the host received $(stat -c %s "$tmp/received") bytes" >&2; exit 1; }
cut_out guest-dhcp dhcp ipv4
cut_out guest-arp arp ipv4
cut_out guest-icmp icmp ipv4
cut_out guest-tcp tcp ipv4

# --- the IPv6 session ---------------------------------------------------------------------------
# The TCP peer on [::1]:5002 is python, which counts what it reads to EOF and then closes.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6)
s.bind(("::1", 5002))
s.listen(1)
c, _ = s.accept()
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    n += len(b)
c.close()
open(sys.argv[1], "w").write(str(n))
' "$tmp/received6" &
pids+=($!)
mkdir "$tmp/ipv6"
cat > "$tmp/ipv6/test.sh" << 'EOF'
. /lib/nw.sh
ping -6 -c 3 fd00::2 > /dev/null && mark PING6 ok
head -c 16384 /dev/zero | tr '\0' 'S' > /tmp/f
nc fd00::2 5002 < /tmp/f
mark "SENT6 rc=$?"
EOF
session ipv6 "nw.ip=dhcp nw.ip6=slaac"
expect ipv6 "PING6 ok" "SENT6 rc=0"
[[ $(cat "$tmp/received6" 2> /dev/null) == 16384 ]] \
    || { echo "make-captures: the host received $(cat "$tmp/received6" 2> /dev/null) bytes over IPv6" >&2; exit 1; }
cut_out guest-ipv6 ipv6 ipv6
