#!/usr/bin/python3
"""soak: runs NetWire under churn for MINUTES and reports its RSS, open fds and threads over time.

  tools/soak.sh MINUTES [--out DIR] [--no-fail]

What runs (all on this machine: loopback and a namespace this script makes through netwire run):
  * netwire serve: a QEMU test guest (tools/guest) on the user-mode gateway, the SPICE server
    and the control socket. The guest opens short TCP connections to a host echo server
    through the gateway and pings the gateway, in a loop.
  * netwire run: a network namespace on its own gateway, where tools/soak_ns.py opens thousands
    of short TCP connections, UDP flows and pings towards host loopback servers.
  * spice-gtk clients (tools/spice/gtk_client.py) linking to serve and leaving, one after another.
  * QMP polling of serve's control socket (query-spice, query-wire, query-status).

Every SAMPLE seconds the RSS, open fds and thread count of both netwire processes go to
DIR/samples.csv. At the end: the slope of each over the second half of the run (the first
half is warm-up: JIT, pools, GC heap sizing, flows living out their idle time), the medians of
the floors (minimum) of the third and last quarters, the drops by reason from serve's status
file and run's summary, and DIR/soak.png (gnuplot) when gnuplot is installed. Exit 1 when a
floor rises between the third and the last quarter beyond LIMITS (unless --no-fail), 2 on a
setup failure.
"""
import argparse
import csv
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# NETWIRE_DLL: a copy of the build to run, so a rebuild during a long soak cannot replace it.
NETWIRE = os.environ.get("NETWIRE_DLL") or os.path.join(ROOT, "src", "NetWire.Cli", "bin", "Release", "net10.0", "netwire.dll")
GUEST = os.path.join(ROOT, ".build", "guest")
SAMPLE = 5.0
CHILDREN = []

# Growth that fails the run: the floor (minimum) of the last quarter over the floor of the third
# quarter (the first half is warm-up: JIT, pools, the GC heap, the gateway's UDP flows living
# out their 60 s idle time). A leak raises the floor; the number of live flows, which follows
# the traffic rate, moves the peaks more than the floor. A leak of one fd or thread per
# connection or flow shows as hundreds; a steady process moves by a handful.
LIMITS = {"rss": 32 * 1024, "fds": 32, "threads": 12}

GUEST_SCRIPT = r"""
. /lib/nw.sh
mark SOAK_START
n=0
while true; do
  echo "soak $n" | nc -w 2 10.0.2.2 PORT > /dev/null 2>&1
  n=$((n + 1))
  if [ $((n % 10)) -eq 0 ]; then ping -c 1 -W 1 10.0.2.2 > /dev/null 2>&1; fi
  if [ $((n % 100)) -eq 0 ]; then mark SOAK_TCP $n; fi
done
"""


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            data = self.request.recv(4096)
            if data:
                self.request.sendall(data)
        except OSError:
            pass


class TcpEcho(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def udp_echo(sock, stop):
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(2048)
            sock.sendto(data, peer)
        except socket.timeout:
            continue
        except OSError:
            return


def proc_stats(pid):
    """(rss_kib, fds, threads) of a process, or None when it is gone."""
    try:
        rss = threads = 0
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
        return rss, fds, threads
    except (FileNotFoundError, ProcessLookupError):
        return None


def slope(points):
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)
    return 0.0 if den == 0 else sum((p[0] - mx) * (p[1] - my) for p in points) / den


def wait_for(path_or_fn, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (path_or_fn() if callable(path_or_fn) else os.path.exists(path_or_fn)):
            return
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for " + what)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qmp_poller(path, stop, counts):
    """Polls the control socket; reconnects every 50 commands (QMP clients come and go too)."""
    commands = ["query-spice", "query-wire", "query-status"]
    while not stop.is_set():
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(path)
                f = s.makefile("rwb")
                f.readline()
                f.write(b'{"execute": "qmp_capabilities"}\n')
                f.flush()
                f.readline()
                for i in range(50):
                    if stop.is_set():
                        return
                    f.write(json.dumps({"execute": commands[i % len(commands)]}).encode() + b"\n")
                    f.flush()
                    f.readline()
                    counts["qmp"] += 1
                    stop.wait(0.2)
        except OSError:
            counts["qmp_errors"] += 1
            stop.wait(1)


def spice_churn(port, stop, counts):
    client = os.path.join(ROOT, "tools", "spice", "gtk_client.py")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    while not stop.is_set():
        result = subprocess.run(["/usr/bin/python3", client, "--port", str(port), "--clients", "2", "--seconds", "1"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        counts["spice_ok" if result.returncode == 0 else "spice_failed"] += 1
        if result.returncode != 0:
            # The report keeps why the last few failed: a failure is never only a number.
            lines = result.stdout.decode(errors="replace").strip().splitlines()
            reason = "%s exit %d: %s" % (time.strftime("%H:%M:%S"), result.returncode, lines[-1] if lines else "no output")
            counts["spice_failures"] = (counts.get("spice_failures") or [])[-4:] + [reason]
        stop.wait(0.5)


def main():
    parser = argparse.ArgumentParser(description="NetWire soak: RSS, fds and threads under churn")
    parser.add_argument("minutes", type=float)
    parser.add_argument("--out", default=None, help="where samples.csv, report.json and soak.png go")
    parser.add_argument("--no-fail", action="store_true", help="report growth but exit 0")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("soak: needs root (netwire run makes a namespace)", file=sys.stderr)
        return 2
    for path in (NETWIRE, os.path.join(GUEST, "initramfs.cpio.gz")):
        if not os.path.exists(path):
            print("soak: %s is missing: build first (dotnet build NetWire.sln -c Release; tools/guest/build-image.sh)" % path, file=sys.stderr)
            return 2

    out = args.out or tempfile.mkdtemp(prefix="netwire-soak-")
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="netwire-soak-run-")
    stop = threading.Event()
    counts = {"qmp": 0, "qmp_errors": 0, "spice_ok": 0, "spice_failed": 0}
    procs = CHILDREN

    tcp_port = free_port()
    udp_port = free_port(socket.SOCK_DGRAM)
    tcp = TcpEcho(("127.0.0.1", tcp_port), Echo)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", udp_port))
    threading.Thread(target=udp_echo, args=(udp, stop), daemon=True).start()

    spice_port = free_port()
    serve_log = open(os.path.join(out, "serve.log"), "w")
    run_log = open(os.path.join(out, "run.log"), "w")
    status = os.path.join(work, "serve-status.json")
    guest_sock = os.path.join(work, "guest.sock")
    qmp_sock = os.path.join(work, "qmp.sock")
    try:
        serve = subprocess.Popen(["dotnet", NETWIRE, "serve", "--guest", "stream:unix:" + guest_sock, "--host", "gateway",
                                  "--allow-host-loopback", "--spice-port", str(spice_port), "--disable-ticketing",
                                  "--qmp", "unix:" + qmp_sock, "--status-file", status, "--log-level", "Warning"],
                                 stdout=serve_log, stderr=subprocess.STDOUT)
        procs.append(serve)
        wait_for(qmp_sock, 120, "serve's control socket")

        script = os.path.join(work, "t")
        os.makedirs(script)
        with open(os.path.join(script, "test.sh"), "w") as f:
            f.write(GUEST_SCRIPT.replace("PORT", str(tcp_port)))
        initrd = os.path.join(work, "initrd.img")
        cpio = subprocess.run("cd %s && echo test.sh | cpio -o -H newc -R 0:0 --quiet" % script, shell=True, check=True, stdout=subprocess.PIPE).stdout
        base = open(os.path.join(GUEST, "initramfs.cpio.gz"), "rb").read()
        with open(initrd, "wb") as f:
            f.write(base + b"\0" * (-len(base) % 4) + cpio)
        kernel = os.path.join(GUEST, "vmlinux") if os.path.exists(os.path.join(GUEST, "vmlinux")) else os.path.join(GUEST, "vmlinuz")
        guest_log = open(os.path.join(out, "guest.log"), "w")
        qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", "128M", "-nodefaults", "-no-user-config",
                                 "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
                                 "-append", "console=ttyS0 panic=-1 quiet no_timer_check nw.ip=dhcp ipv6.disable=1",
                                 "-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=" + guest_sock,
                                 "-device", "virtio-net-pci,netdev=n0,romfile="],
                                stdout=guest_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(qemu)

        ns_script = os.path.join(ROOT, "tools", "soak_ns.py")
        run_status = os.path.join(work, "run-status.json")
        run = subprocess.Popen(["dotnet", NETWIRE, "run", "--allow-host-loopback", "--status-file", run_status, "--log-level", "Warning", "--",
                                "python3", ns_script, "--tcp", str(tcp_port), "--udp", str(udp_port), "--seconds", str(int(args.minutes * 60) + 600)],
                               stdout=run_log, stderr=subprocess.STDOUT)
        procs.append(run)

        clients = [threading.Thread(target=qmp_poller, args=(qmp_sock, stop, counts), daemon=True),
                   threading.Thread(target=spice_churn, args=(spice_port, stop, counts), daemon=True)]
        for thread in clients:
            thread.start()

        samples = []
        start = time.monotonic()
        end = start + args.minutes * 60
        with open(os.path.join(out, "samples.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["seconds", "serve_rss_kib", "serve_fds", "serve_threads", "run_rss_kib", "run_fds", "run_threads"])
            while time.monotonic() < end:
                time.sleep(SAMPLE)
                a = proc_stats(serve.pid)
                b = proc_stats(run.pid)
                if a is None or b is None:
                    raise RuntimeError("a netwire process exited during the soak: serve %s, run %s" % (serve.poll(), run.poll()))
                row = [round(time.monotonic() - start, 1), *a, *b]
                samples.append(row)
                writer.writerow(row)
                f.flush()

        with open(status) as f:
            serve_status = json.load(f)
    except (RuntimeError, OSError, subprocess.SubprocessError) as ex:
        print("soak: " + str(ex), file=sys.stderr)
        stop.set()
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        return 2

    stop.set()
    # The clients finish what they are doing first: a spice-gtk client cut off by the stop is
    # not a failure of the soak.
    for thread in clients:
        thread.join(70)
    for p in (run, serve):
        p.send_signal(signal.SIGINT)
    codes = {}
    for name, p in (("run", run), ("serve", serve)):
        try:
            codes[name] = p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            codes[name] = "killed"
    qemu.kill()
    qemu.wait()
    try:
        with open(run_status) as f:
            run_status_json = json.load(f)
    except (OSError, ValueError):
        run_status_json = {}
    tcp.shutdown()
    serve_log.close()
    run_log.close()

    report = summarize(samples, serve_status, run_status_json, counts, codes, out, args.minutes)
    plot(out)
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if report["growth"] and not args.no_fail:
        print("soak: FAILED: " + "; ".join(report["growth"]), file=sys.stderr)
        return 1
    return 0


def drops_of(name, status):
    """Every non-zero drop of a status file, by end and reason (wire ends, then the gateway's)."""
    drops = {}
    for end in status.get("ends", []):
        for reason, n in end.get("drops", {}).items():
            if n:
                drops["%s %s %s" % (name, end["name"], reason)] = n
        for reason, n in end.get("gateway", {}).get("drops", {}).items():
            if n:
                drops["%s gateway %s" % (name, reason)] = n
    return drops


def gateway_of(status):
    gateway = next((e["gateway"] for e in status.get("ends", []) if "gateway" in e), {})
    return {k: gateway.get(k) for k in ("tcp_opened", "tcp_refused", "tcp_retransmits", "udp_flows", "tcp_connections", "dhcp_leases")}


def summarize(samples, serve_status, run_status, counts, codes, out, minutes):
    end = samples[-1][0]
    half = [s for s in samples if s[0] >= end / 2]
    third = [s for s in samples if end / 2 <= s[0] < end * 3 / 4]
    fourth = [s for s in samples if s[0] >= end * 3 / 4]
    names = ["serve_rss_kib", "serve_fds", "serve_threads", "run_rss_kib", "run_fds", "run_threads"]
    series = {}
    growth = []
    for i, name in enumerate(names, start=1):
        kind = "rss" if "rss" in name else ("fds" if "fds" in name else "threads")
        per_min = slope([(s[0] / 60, s[i]) for s in half])
        q3, q4 = min(s[i] for s in third), min(s[i] for s in fourth)
        series[name] = {"first": samples[0][i], "last": samples[-1][i], "min": min(s[i] for s in samples), "max": max(s[i] for s in samples),
                        "floor_third_quarter": q3, "floor_last_quarter": q4,
                        "slope_per_min_second_half": round(per_min / 1024 if kind == "rss" else per_min, 3)}
        if q4 - q3 > LIMITS[kind]:
            growth.append("%s: its floor rose from %d to %d between the third and the last quarter (limit %d)" % (name, q3, q4, LIMITS[kind]))

    drops = drops_of("serve", serve_status)
    drops.update(drops_of("run", run_status))
    run_summary = open(os.path.join(out, "run.log")).read().splitlines()
    ns = [l for l in run_summary if l.startswith("SOAK_NS")]
    report = {"minutes": minutes, "samples": len(samples), "load_average": os.getloadavg(), "series": series,
              "serve_gateway": gateway_of(serve_status), "run_gateway": gateway_of(run_status),
              "serve_spice": serve_status.get("spice"), "drops": drops, "activity": counts,
              "namespace": ns[-1] if ns else None, "run_dropped_lines": [l.strip() for l in run_summary if "dropped" in l],
              "exit_codes": codes, "growth": growth}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def plot(out):
    if shutil.which("gnuplot") is None:
        return
    script = """
set terminal pngcairo size 1000,700 noenhanced
set output '{out}/soak.png'
set datafile separator ','
set key autotitle columnhead
set multiplot layout 3,1 title 'NetWire soak: serve (guest, SPICE, QMP) and run (namespace churn)'
set xlabel 'minutes'
set ylabel 'RSS MiB'
plot '{out}/samples.csv' using ($1/60):($2/1024) with lines title 'serve', '' using ($1/60):($5/1024) with lines title 'run'
set ylabel 'open fds'
plot '{out}/samples.csv' using ($1/60):3 with lines title 'serve', '' using ($1/60):6 with lines title 'run'
set ylabel 'threads'
plot '{out}/samples.csv' using ($1/60):4 with lines title 'serve', '' using ($1/60):7 with lines title 'run'
unset multiplot
""".format(out=out)
    subprocess.run(["gnuplot"], input=script.encode(), check=False, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    # SIGTERM ends the soak like Ctrl-C: every child it started is stopped, by pid.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        for child in reversed(CHILDREN):
            if child.poll() is None:
                child.terminate()
        for child in CHILDREN:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        sys.exit(130)
