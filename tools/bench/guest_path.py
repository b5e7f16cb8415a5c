#!/usr/bin/env python3
"""The guest path beside its peers (docs/performance.md, "Guest path").

One QEMU 7.2 guest (the test image of tools/guest: TCG, virtio-net, DHCP) runs the same
workload on each backend, the backends interleaved round by round:

  netwire  -netdev stream to `netwire serve --guest stream:unix:SOCK --allow-host-loopback`
  passt    -netdev stream to `passt -f -1 -s SOCK` (passt's QEMU mode, Debian's passt)
  user     -netdev user (QEMU's libslirp)

The workload, from the guest to servers on the host's 127.0.0.1 through its default gateway
(10.0.2.2 for netwire and user; for passt the host's own gateway address, which passt maps to
the host's loopback): a download of MB MiB, an upload of MB MiB, then CONNECTIONS short
connections one after another (each reads one line), after an unmeasured warm-up of 2 MiB each
way and one connection. Timed inside the guest; the CPU time of
QEMU and of the gateway process (netwire or passt; libslirp runs inside QEMU) is read from
/proc at the guest's markers. TCG emulates the guest's CPU, so the guest bounds every figure:
read the ratios between backends, not the absolute rates.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUEST = os.path.join(REPO, ".build", "guest")
MIB = 1024 * 1024

GUEST_SCRIPT = r"""
. /lib/nw.sh
gw=$(ip route | awk '/^default/ { print $3; exit }')
port=$(nw_arg t.port)
mb=$(nw_arg t.mb 32)
conns=$(nw_arg t.conns 100)
# A FIFO opened read-write is a stdin that never ends: nc does not half-close, and ends when the
# server closes (tools/guest/README.md, nc).
mkfifo /tmp/hold
# Warm-up, not measured: the gateway's first bulk transfer each way (a fresh netwire compiles its
# paths then) and a first connection.
nc "$gw" $((port + 3)) <> /tmp/hold > /dev/null
head -c 2097152 /dev/zero | nc "$gw" $((port + 4)) > /dev/null
nc "$gw" $((port + 2)) <> /tmp/hold > /dev/null
mark GO down
t0=$(nw_uptime)
n=$(nc "$gw" "$port" <> /tmp/hold | wc -c)
t1=$(nw_uptime)
mark DOWN bytes=$n start=$t0 end=$t1
mark GO up
t0=$(nw_uptime)
head -c $((mb * 1048576)) /dev/zero | nc "$gw" $((port + 1)) > /dev/null
t1=$(nw_uptime)
mark UP start=$t0 end=$t1
mark GO conn
t0=$(nw_uptime)
i=0
ok=0
while [ $i -lt "$conns" ]; do
    r=$(nc "$gw" $((port + 2)) <> /tmp/hold)
    [ "$r" = ok ] && ok=$((ok + 1))
    i=$((i + 1))
done
t1=$(nw_uptime)
mark CONN ok=$ok start=$t0 end=$t1
"""


def cpu_seconds(pid):
    """User and system time of a process and its threads, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Servers:
    """The host side on 127.0.0.1, on five consecutive ports: a source (MB MiB, then close), a
    sink (reads MB MiB, then closes), a line server ("ok", then close), and a source and a sink
    of WARM bytes for the warm-up."""

    WARM = 2 * MIB

    def __init__(self, mb):
        self.size = mb * MIB
        self.received = []
        for _ in range(50):
            listeners = []
            try:
                first = socket.socket()
                first.bind(("127.0.0.1", 0))
                base = first.getsockname()[1]
                listeners.append(first)
                for offset in (1, 2, 3, 4):
                    s = socket.socket()
                    s.bind(("127.0.0.1", base + offset))
                    listeners.append(s)
            except OSError:
                for s in listeners:
                    s.close()
                continue
            self.port = base
            self.listeners = listeners
            break
        else:
            sys.exit("guest_path.py: no five free consecutive ports on 127.0.0.1")
        serves = (lambda c: self._source(c, self.size), lambda c: self.received.append(self._sink(c, self.size)), self._line,
                  lambda c: self._source(c, self.WARM), lambda c: self._sink(c, self.WARM))
        for s, serve in zip(self.listeners, serves):
            s.listen(64)
            threading.Thread(target=self._accept, args=(s, serve), daemon=True).start()

    @staticmethod
    def _accept(listener, serve):
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    @staticmethod
    def _source(connection, size):
        chunk = bytes(256 * 1024)
        left = size
        try:
            while left > 0:
                n = min(left, len(chunk))
                connection.sendall(chunk[:n])
                left -= n
        except OSError:
            pass
        connection.close()

    @staticmethod
    def _sink(connection, size):
        total = 0
        try:
            while total < size:
                data = connection.recv(256 * 1024)
                if not data:
                    break
                total += len(data)
        except OSError:
            pass
        connection.close()
        return total

    @staticmethod
    def _line(connection):
        try:
            connection.sendall(b"ok\n")
        except OSError:
            pass
        connection.close()

    def close(self):
        for s in self.listeners:
            s.close()


def marker(line):
    """("DOWN", {"bytes": "...", ...}) for an NW: line, else None."""
    if not line.startswith("NW:"):
        return None
    words = line[3:].split()
    if not words:
        return None
    return words[0], dict(w.split("=", 1) for w in words[1:] if "=" in w)


def run_once(impl, args, initrd, servers, work, log_path):
    """One guest on IMPL; returns the figures of its three phases."""
    gateway = None
    sock = os.path.join(work, "sockets", "%s.sock" % impl)
    if os.path.exists(sock):
        os.unlink(sock)
    log = open(log_path, "w")
    try:
        if impl == "netwire":
            gateway = subprocess.Popen(["dotnet", args.netwire, "serve", "--guest", "stream:unix:" + sock, "--spice-port", "0",
                                        "--disable-ticketing", "--allow-host-loopback", "--no-ipv6", "--mtu", str(args.mtu),
                                        "--log-level", "Warning"], stdout=log, stderr=subprocess.STDOUT)
        elif impl == "passt":
            gateway = subprocess.Popen(["passt", "-f", "-e", "-1", "-s", sock, "-m", str(args.mtu)],
                                       stdout=log, stderr=subprocess.STDOUT)
        if gateway is not None:
            deadline = time.monotonic() + 60
            while not os.path.exists(sock):
                if gateway.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("%s did not listen on %s (log: %s)" % (impl, sock, log_path))
                time.sleep(0.05)
            netdev = "stream,id=n0,server=off,addr.type=unix,addr.path=" + sock
        else:
            netdev = "user,id=n0"

        kernel = os.path.join(GUEST, "vmlinux")
        if not os.path.exists(kernel):
            kernel = os.path.join(GUEST, "vmlinuz")
        append = "console=ttyS0 panic=-1 quiet no_timer_check nw.ip=dhcp ipv6.disable=1 t.port=%d t.mb=%d t.conns=%d" % (
            servers.port, args.mb, args.connections)
        qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", "256M", "-nodefaults",
                                 "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
                                 "-kernel", kernel, "-initrd", initrd, "-append", append,
                                 "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile="],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        samples, marks = {}, {}
        deadline = time.monotonic() + args.timeout
        # A guest that stops printing still ends: QEMU is killed at the deadline.
        watchdog = threading.Timer(args.timeout, qemu.kill)
        watchdog.start()
        received_before = len(servers.received)
        for raw in qemu.stdout:
            line = raw.decode(errors="replace").rstrip()
            log.write(line + "\n")
            log.flush()
            found = marker(line)
            if found is None:
                if time.monotonic() > deadline:
                    break
                continue
            name, fields = found
            sample = (cpu_seconds(qemu.pid), cpu_seconds(gateway.pid) if gateway is not None else None)
            if name == "GO":
                samples[line.split()[-1]] = sample
            elif name in ("DOWN", "UP", "CONN"):
                marks[name] = (fields, sample)
            if name in ("DONE", "NET_FAIL") or time.monotonic() > deadline:
                break
        watchdog.cancel()
        qemu.kill()
        qemu.wait()
        qemu.stdout.close()
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.terminate()
            try:
                gateway.wait(10)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait()
        log.close()

    missing = [m for m in ("DOWN", "UP", "CONN") if m not in marks]
    if missing:
        raise RuntimeError("%s: the guest did not report %s (log: %s)" % (impl, ", ".join(missing), log_path))

    def phase(name, start):
        fields, end = marks[name]
        seconds = float(fields["end"]) - float(fields["start"])
        begin = samples[start]
        qemu_cpu = end[0] - begin[0]
        gateway_cpu = None if end[1] is None else end[1] - begin[1]
        return fields, max(seconds, 0.01), qemu_cpu, gateway_cpu

    figures = {}
    fields, seconds, qemu_cpu, gateway_cpu = phase("DOWN", "down")
    got = int(fields["bytes"])
    if got != servers.size:
        raise RuntimeError("%s: the guest downloaded %d bytes of %d (log: %s)" % (impl, got, servers.size, log_path))
    figures["download"] = dict(mb_per_s=got / seconds / 1e6, qemu_cpu_s_per_gb=qemu_cpu / (got / 1e9),
                               gateway_cpu_s_per_gb=None if gateway_cpu is None else gateway_cpu / (got / 1e9))
    fields, seconds, qemu_cpu, gateway_cpu = phase("UP", "up")
    uploaded = servers.received[received_before:]
    if uploaded != [servers.size]:
        raise RuntimeError("%s: the host received %s bytes of %d (log: %s)" % (impl, uploaded, servers.size, log_path))
    figures["upload"] = dict(mb_per_s=servers.size / seconds / 1e6, qemu_cpu_s_per_gb=qemu_cpu / (servers.size / 1e9),
                             gateway_cpu_s_per_gb=None if gateway_cpu is None else gateway_cpu / (servers.size / 1e9))
    fields, seconds, qemu_cpu, gateway_cpu = phase("CONN", "conn")
    ok = int(fields["ok"])
    if ok != args.connections:
        raise RuntimeError("%s: %d of %d connections answered (log: %s)" % (impl, ok, args.connections, log_path))
    figures["connections"] = dict(per_s=ok / seconds, qemu_cpu_ms_each=qemu_cpu * 1000 / ok,
                                  gateway_cpu_ms_each=None if gateway_cpu is None else gateway_cpu * 1000 / ok)
    return figures


def make_initrd(work):
    """The test image's initramfs with the workload as /test.sh (a second, 4-byte aligned archive)."""
    base = os.path.join(GUEST, "initramfs.cpio.gz")
    if not os.path.exists(base):
        sys.exit("guest_path.py: no %s (run tools/guest/build-image.sh as root)" % base)
    script_dir = os.path.join(work, "t")
    os.makedirs(script_dir)
    with open(os.path.join(script_dir, "test.sh"), "w") as f:
        f.write(GUEST_SCRIPT)
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"], input=b"test.sh\n", cwd=script_dir,
                             stdout=subprocess.PIPE, check=True).stdout
    initrd = os.path.join(work, "initrd.img")
    with open(initrd, "wb") as out, open(base, "rb") as f:
        data = f.read()
        out.write(data + bytes(-len(data) % 4) + archive)
    return initrd


def fmt(value, digits=1):
    return "-" if value is None else "%.*f" % (digits, value)


def summary(rows, args, started):
    """Markdown: medians per backend and figure, and the ratios to netwire."""
    impls = [i for i in args.impls if any(r["impl"] == i for r in rows)]
    figures = [("download", "mb_per_s", "download (MB/s)", 1), ("upload", "mb_per_s", "upload (MB/s)", 1),
               ("connections", "per_s", "connections per second", 1),
               ("download", "gateway_cpu_s_per_gb", "gateway CPU s/GB, download", 2),
               ("upload", "gateway_cpu_s_per_gb", "gateway CPU s/GB, upload", 2),
               ("download", "qemu_cpu_s_per_gb", "QEMU CPU s/GB, download", 1),
               ("upload", "qemu_cpu_s_per_gb", "QEMU CPU s/GB, upload", 1),
               ("connections", "gateway_cpu_ms_each", "gateway CPU ms per connection", 3),
               ("connections", "qemu_cpu_ms_each", "QEMU CPU ms per connection", 2)]
    out = ["# Guest path: %s" % " vs ".join(impls), "",
           "`tools/bench/guest-path.sh %s`, %s UTC, %s, load average at the start %s. %d MiB each way, %d connections,"
           " MTU %d; medians of %d rounds." % (" ".join(sys.argv[1:]), started, platform.node() or "this machine",
                                               args.load, args.mb, args.connections, args.mtu, args.runs), "",
           "| figure | " + " | ".join(impls) + " |", "| --- |" + " ---: |" * len(impls)]
    medians = {}
    for phase, key, label, digits in figures:
        cells = []
        for impl in impls:
            values = [r[phase][key] for r in rows if r["impl"] == impl and r[phase][key] is not None]
            medians[(impl, phase, key)] = statistics.median(values) if values else None
            cells.append(fmt(medians[(impl, phase, key)], digits))
        out.append("| %s | %s |" % (label, " | ".join(cells)))
    if "netwire" in impls:
        out += ["", "| netwire / peer | " + " | ".join(i for i in impls if i != "netwire") + " |",
                "| --- |" + " ---: |" * (len(impls) - 1)]
        for phase, key, label, _ in figures[:3]:
            ours = medians[("netwire", phase, key)]
            cells = [fmt(ours / medians[(i, phase, key)], 2) + "x" if ours and medians[(i, phase, key)] else "-"
                     for i in impls if i != "netwire"]
            out.append("| %s | %s |" % (label, " | ".join(cells)))
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(prog="tools/bench/guest-path.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="rounds; each runs every backend once (default 3)")
    parser.add_argument("--mb", type=int, default=64, help="MiB downloaded and uploaded per run (default 64)")
    parser.add_argument("--connections", type=int, default=100, help="short connections per run (default 100)")
    parser.add_argument("--mtu", type=int, default=1500, help="link MTU for netwire and passt (-netdev user has 1500; default 1500)")
    parser.add_argument("--impls", default="netwire passt user", help='backends, in order (default "netwire passt user")')
    parser.add_argument("--timeout", type=float, default=600, help="seconds one guest may take (default 600)")
    parser.add_argument("--out", help="results folder (default artifacts/bench/guest-path-<timestamp>)")
    parser.add_argument("--netwire", default=os.path.join(REPO, "src", "NetWire.Cli", "bin", "Release", "net10.0", "netwire.dll"),
                        help="the netwire.dll to measure (default: this checkout's Release build)")
    args = parser.parse_args()
    args.impls = args.impls.split()
    unknown = [i for i in args.impls if i not in ("netwire", "passt", "user")]
    if unknown or not args.impls:
        parser.error("--impls takes netwire, passt and user, not %s" % " ".join(unknown))
    if args.runs < 1 or args.mb < 1 or args.connections < 1 or not 576 <= args.mtu <= 65520:
        parser.error("--runs, --mb and --connections must be at least 1, --mtu 576 to 65520")
    needed = ["qemu-system-x86_64", "cpio"] + (["passt"] if "passt" in args.impls else []) + (["dotnet"] if "netwire" in args.impls else [])
    for tool in needed:
        if shutil.which(tool) is None:
            sys.exit("guest_path.py: %s is not installed" % tool)
    if "netwire" in args.impls and not os.path.exists(args.netwire):
        sys.exit("guest_path.py: no %s (build src/NetWire.Cli in Release, or give --netwire)" % args.netwire)

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    args.load = open("/proc/loadavg").read().split()[0]
    out = args.out or os.path.join(REPO, "artifacts", "bench", "guest-path-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="nwguestpath.")
    # passt started as root runs as nobody before it binds its socket: a folder it can write.
    os.chmod(work, 0o755)
    os.mkdir(os.path.join(work, "sockets"))
    os.chmod(os.path.join(work, "sockets"), 0o1777)
    servers = Servers(args.mb)
    rows = []
    try:
        initrd = make_initrd(work)
        with open(os.path.join(out, "results.jsonl"), "w") as results:
            for round_ in range(1, args.runs + 1):
                for impl in args.impls:
                    print("[guest-path %s] round %d/%d: %s" % (time.strftime("%H:%M:%S"), round_, args.runs, impl), file=sys.stderr, flush=True)
                    figures = run_once(impl, args, initrd, servers, work, os.path.join(out, "%s-%d.log" % (impl, round_)))
                    row = dict(impl=impl, round=round_, **figures)
                    rows.append(row)
                    results.write(json.dumps(row) + "\n")
                    results.flush()
                    print("  download %.1f MB/s, upload %.1f MB/s, %.1f connections/s" % (
                        figures["download"]["mb_per_s"], figures["upload"]["mb_per_s"], figures["connections"]["per_s"]),
                        file=sys.stderr, flush=True)
    except RuntimeError as e:
        sys.exit("guest_path.py: %s" % e)
    finally:
        servers.close()
        shutil.rmtree(work, ignore_errors=True)
    text = summary(rows, args, started)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
