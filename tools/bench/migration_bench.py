#!/usr/bin/python3
"""migration_bench: client switch time of a semi-seamless SPICE migration, NetWire and QEMU.

  migration_bench.py [--rounds N] [--qemu-rounds M] [--out DIR]

NetWire: one spice-gtk 0.42 client (tools/spice/gtk_client.py) is connected to `netwire
serve` A; each round starts a fresh `netwire serve --incoming` B, runs client_migrate_info +
migrate on A over QMP, waits until A has no client left, quits A, and B becomes the next
source. QEMU: M rounds of the same with two QEMUs (`-spice` on 5930, the target on 5931 with
`-incoming`, 64 MiB TCG, no guest), a fresh spice-gtk client on the source each round. tshark records loopback the whole time; the switch time of a round is the time
from the source's MIGRATE_END to the target's INIT on the wire. Prints median and worst per
peer, and NetWire's state stream size.
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DLL = os.path.join(ROOT, "src", "NetWire.Cli", "bin", "Release", "net10.0", "netwire.dll")
PASSWORD = "bench"
CLIENT_PART = []  # ms from the source's MIGRATE_END to the client's MIGRATE_END at the target


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.events = []
        self._read()
        self.run("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise EOFError("QMP closed")
        return json.loads(line)

    def run(self, name, **args):
        self.file.write((json.dumps({"execute": name, "arguments": args}) + "\n").encode())
        self.file.flush()
        while True:
            msg = self._read()
            if "event" in msg:
                self.events.append(msg)
                continue
            if "error" in msg:
                raise RuntimeError("%s: %s" % (name, msg["error"]))
            return msg["return"]

    def wait_event(self, name, timeout=30):
        self.sock.settimeout(timeout)
        try:
            while True:
                for e in self.events:
                    if e["event"] == name:
                        self.events.remove(e)
                        return e
                self.events.append(self._read())
        finally:
            self.sock.settimeout(None)


def serve(tmp, i, spice_port, incoming_port=None):
    qmp = os.path.join(tmp, "q%d.sock" % i)
    args = ["dotnet", DLL, "serve", "--guest", "none", "--spice-port", str(spice_port), "--password", PASSWORD, "--qmp", "unix:" + qmp]
    if incoming_port:
        args += ["--incoming", "tcp:127.0.0.1:%d" % incoming_port]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if os.path.exists(qmp):
            try:
                return proc, Qmp(qmp)
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError("netwire serve did not start")


def switch_times(pcap, pairs):
    """pairs: [(source port, target port)]; the time from MIGRATE_END (source) to INIT (target) per pair."""
    ports = sorted({p for pair in pairs for p in pair})
    cmd = ["tshark", "-r", pcap]
    for p in ports:
        cmd += ["-d", "tcp.port==%d,spice" % p]
    cmd += ["-Y", "spice", "-T", "fields", "-E", "separator=|", "-e", "frame.time_epoch", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "_ws.col.Info"]
    rows = []
    for line in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines():
        t, src, dst, info = line.split("|", 3)
        rows.append((float(t), int(src), info, int(dst)))
    out = []
    for s, t in pairs:
        end = next((r[0] for r in rows if r[1] == s and re.search(r"\bMIGRATE_END\b", r[2])), None)
        init = next((r[0] for r in rows if r[1] == t and end is not None and r[0] >= end and re.search(r"\bINIT\b", r[2])), None)
        sent = next((r[0] for r in rows if r[3] == t and end is not None and r[0] >= end and re.search(r"\bMIGRATE_END\b", r[2])), None)
        if end is not None and init is not None:
            out.append((init - end) * 1000)
            if sent is not None:
                CLIENT_PART.append((sent - end) * 1000)
    return out


def warm(port):
    """One short spice-gtk session on a fresh target, so its link and INIT paths are compiled."""
    subprocess.run(["env", "-u", "DISPLAY", "/usr/bin/python3", os.path.join(ROOT, "tools", "spice", "gtk_client.py"),
                    "--port", str(port), "--password", PASSWORD, "--seconds", "0.3"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def netwire(rounds, tmp, warm_target=False):
    pcap = os.path.join(tmp, "netwire.pcapng")
    base = 5940
    cap = subprocess.Popen(["tshark", "-i", "lo", "-f", "tcp portrange %d-%d" % (base, base + rounds), "-w", pcap],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while "Capturing on" not in cap.stderr.readline():
        pass
    src_proc, src = serve(tmp, 0, base)
    client = subprocess.Popen(["env", "-u", "DISPLAY", "/usr/bin/python3", os.path.join(ROOT, "tools", "spice", "gtk_client.py"),
                               "--port", str(base), "--password", PASSWORD, "--seconds", "3600"],
                              stdout=subprocess.PIPE, text=True)
    while "main opened" not in client.stdout.readline():
        pass
    pairs, sizes, totals = [], [], []
    for i in range(1, rounds + 1):
        dst_proc, dst = serve(tmp, i, base + i, 4500 + i)
        if warm_target:
            warm(base + i)
        src.run("client_migrate_info", protocol="spice", hostname="127.0.0.1", port=base + i)
        done = src.wait_event("SPICE_MIGRATE_CONNECT_DONE")["data"]
        if done["connected"] != 1:
            raise RuntimeError("round %d: client did not connect to the target: %s" % (i, done))
        t0 = time.monotonic()
        src.run("migrate", uri="tcp:127.0.0.1:%d" % (4500 + i))
        while True:
            q = src.run("query-migrate")
            if q["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.01)
        if q["status"] != "completed":
            raise RuntimeError("round %d: %s" % (i, q))
        while dst.run("query-spice")["channels"] == [] or src.run("query-spice")["channels"] != []:
            time.sleep(0.01)
        totals.append((time.monotonic() - t0) * 1000)
        sizes.append(q["state"]["total"])
        pairs.append((base + i - 1, base + i))
        src.run("quit")
        src_proc.wait(30)
        src_proc, src = dst_proc, dst
    client.terminate()
    client.wait(30)
    src.run("quit")
    src_proc.wait(30)
    time.sleep(0.5)
    cap.send_signal(2)
    cap.wait(30)
    return switch_times(pcap, pairs), sizes, totals


def qemu_command(port, qmp, incoming=None):
    cmd = ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", "64M", "-nodefaults", "-no-user-config",
           "-display", "none", "-vga", "std", "-spice", "port=%d,addr=127.0.0.1,disable-ticketing=on" % port,
           "-qmp", "unix:%s,server=on,wait=off" % qmp]
    if incoming:
        cmd += ["-incoming", incoming]
    return cmd


def connect_qmp(path, proc):
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("qemu exited (%d)" % proc.returncode)
        if os.path.exists(path):
            try:
                return Qmp(path)
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError("qemu's QMP did not come up")


def qemu_round(tmp, i):
    """One QEMU-to-QEMU SPICE client migration under tshark; the pcap's path, or None."""
    pcap = os.path.join(tmp, "qemu%d.pcapng" % i)
    cap = subprocess.Popen(["tshark", "-i", "lo", "-f", "tcp port 5930 or tcp port 5931", "-w", pcap],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while "Capturing on" not in cap.stderr.readline():
        pass
    qa, qb = os.path.join(tmp, "qa%d.qmp" % i), os.path.join(tmp, "qb%d.qmp" % i)
    procs = [subprocess.Popen(qemu_command(5930, qa), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen(qemu_command(5931, qb, "tcp:127.0.0.1:4444"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    client = None
    try:
        src, dst = connect_qmp(qa, procs[0]), connect_qmp(qb, procs[1])
        client = subprocess.Popen(["env", "-u", "DISPLAY", "/usr/bin/python3", os.path.join(ROOT, "tools", "spice", "gtk_client.py"),
                                   "--port", "5930", "--seconds", "120", "--stop-after-migration", "0.5"],
                                  stdout=subprocess.PIPE, text=True)
        while "main opened" not in client.stdout.readline():
            pass
        time.sleep(1)
        channels = len(src.run("query-spice")["channels"])
        src.run("client_migrate_info", protocol="spice", hostname="127.0.0.1", port=5931)
        # As spice-server's own users do: migrate once the target has every channel of the client.
        for _ in range(channels):
            dst.wait_event("SPICE_INITIALIZED", timeout=10)
        time.sleep(0.1)
        src.run("migrate", uri="tcp:127.0.0.1:4444")
        while True:
            q = src.run("query-migrate")
            if q.get("status") in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.01)
        if q["status"] != "completed":
            raise RuntimeError("qemu round %d: %s" % (i, q))
        dst.run("cont")
        client.wait(60)
        return pcap
    except (RuntimeError, OSError, EOFError, socket.timeout) as ex:
        print("qemu round %d failed: %s" % (i, ex), file=sys.stderr)
        return None
    finally:
        if client is not None and client.poll() is None:
            client.terminate()
            client.wait(30)
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        time.sleep(0.3)
        cap.send_signal(2)
        cap.wait(30)


def qemu(rounds, tmp):
    times = []
    for i in range(rounds):
        pcap = qemu_round(tmp, i)
        if pcap is not None:
            times += switch_times(pcap, [(5930, 5931)])
    return times


def show(name, values):
    if not values:
        print("%-8s no rounds" % name)
        return
    print("%-8s rounds %2d  median %7.2f ms  worst %7.2f ms  best %7.2f ms" % (name, len(values), statistics.median(values), max(values), min(values)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--qemu-rounds", type=int, default=5)
    ap.add_argument("--warm-target", action="store_true",
                    help="run one short client session on each fresh target before migrating to it (JIT warm-up)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nwmigbench-") as tmp:
        os.chmod(tmp, 0o777)
        nw, sizes, totals = netwire(args.rounds, tmp, args.warm_target)
        client_nw = list(CLIENT_PART)
        CLIENT_PART.clear()
        qm = qemu(args.qemu_rounds, tmp) if args.qemu_rounds > 0 else []
        client_qm = list(CLIENT_PART)
    print("switch time: source MIGRATE_END -> target INIT, on the wire (tshark, loopback)")
    show("netwire", nw)
    show("qemu", qm)
    print("of which the client (source MIGRATE_END -> its MIGRATE_END at the target):")
    show("netwire", client_nw)
    show("qemu", client_qm)
    print("netwire state stream: %d bytes (median); migrate -> client on target: median %.1f ms" % (statistics.median(sizes), statistics.median(totals)))
    if nw and qm:
        print("ratio qemu/netwire (median): %.2f" % (statistics.median(qm) / statistics.median(nw)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
