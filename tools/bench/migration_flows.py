#!/usr/bin/python3
"""Gateway flow migration: what moving the appliance adds, with 1, 100 and 1,000 live connections.

  sudo tools/bench/migration-flows.sh [--flows 1,100,1000] [--rounds 10] [--rate-kbs 1024]
                                     [--netwire DLL[,DLL...]]

A network namespace plays the guest (`netwire run`-style: its kernel talks through a TAP to the
gateway of `netwire serve`), and its loopback holds the host servers. The guest opens FLOWS
connections through the gateway: one carries a steady stream (RATE KiB/s in 4 KiB writes, server
to guest), the others stay open and idle. Then the gateway migrates ROUNDS times in a chain
(A to B, B to C, ...): each target is started with --incoming and waits for the TAP, the source
gets QMP `migrate`, and once it reports `completed` the source quits.

Per round: the appliance's pause, from `migrate` sent to the MIGRATION `completed` event (what a
whole-VM migration adds to QEMU's own pause before `cont`, docs/migration.md), and the stall the
guest sees on the stream: the longest gap between two reads of the guest's receiving socket from
just before `migrate` until the stream has run for a second on the target. Medians over the
rounds, with the worst. The stream's own gap without a migration (the same window, no migrate)
is measured first as a baseline. The source's `phases` (query-migrate) are printed per round,
and their medians per series, with the target's (its query-migrate `incoming.phases`).

--netwire takes one netwire.dll or several (another build, e.g. a checkout of main): for each
flow count the series run once per build, one after the other, so builds compared share the
machine's load; the table then has a row per build and flow count.
"""
import argparse
import json
import os
import re
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from qmp import Qmp  # noqa: E402

NETWIRE = os.path.join(ROOT, "src", "NetWire.Cli", "bin", "Release", "net10.0", "netwire.dll")
TAP = "nwfm0"
PORT = 7001
CHUNK = 4096


# ---- the namespace side: servers on its loopback, the guest's connections through the TAP ----

def peer(flows, rate_kbs):
    """Runs inside the namespace. Commands on stdin: `mark`, `report`; answers on stdout."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", PORT))
    listener.listen(2048)
    accepted = []

    def accept():
        while len(accepted) < flows:
            conn, _ = listener.accept()
            accepted.append(conn)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    guest = []
    for _ in range(flows):
        s = socket.create_connection(("10.0.2.2", PORT), timeout=30)
        guest.append(s)
    acceptor.join(60)
    if len(accepted) < flows:
        print("error only %d of %d connections accepted" % (len(accepted), flows), flush=True)
        return 1

    # The first connection the server accepted streams to whichever guest socket it belongs to:
    # find it by a first byte.
    sender = accepted[0]
    sender.sendall(b"x")
    sel = selectors.DefaultSelector()
    for s in guest:
        sel.register(s, selectors.EVENT_READ)
    receiver = None
    while receiver is None:
        for key, _ in sel.select(10):
            receiver = key.fileobj
    receiver.recv(1)
    state = {"last": time.monotonic(), "gap": 0.0, "bytes": 0, "stop": False}
    lock = threading.Lock()

    def send():
        interval = CHUNK / (rate_kbs * 1024.0)
        payload = b"\0" * CHUNK
        due = time.monotonic()
        while not state["stop"]:
            sender.sendall(payload)
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def receive():
        while not state["stop"]:
            data = receiver.recv(65536)
            if not data:
                break
            now = time.monotonic()
            with lock:
                state["gap"] = max(state["gap"], now - state["last"])
                state["last"] = now
                state["bytes"] += len(data)

    threading.Thread(target=send, daemon=True).start()
    threading.Thread(target=receive, daemon=True).start()
    print("ready %d" % flows, flush=True)
    for line in sys.stdin:
        command = line.strip()
        with lock:
            if command == "mark":
                state["gap"] = 0.0
                state["bytes"] = 0
                print("marked", flush=True)
            elif command == "report":
                print("report gap_ms=%.1f bytes=%d" % (state["gap"] * 1000, state["bytes"]), flush=True)
            elif command == "quit":
                break
    state["stop"] = True
    return 0


# ---- the bench: namespace, appliances, rounds ----

def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class Appliance:
    def __init__(self, ns, tmp, name, incoming, netwire=NETWIRE):
        self.qmp_path = os.path.join(tmp, name + ".qmp")
        args = ["ip", "netns", "exec", ns, "dotnet", netwire, "serve", "--guest", "tap:" + TAP, "--spice-port", "0",
                "--disable-ticketing", "--qmp", "unix:" + self.qmp_path, "--allow-host-loopback", "--log-level", "Information"]
        if incoming:
            args += ["--incoming", "tcp:127.0.0.1:0"]
        self.log = open(os.path.join(tmp, name + ".log"), "w+")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        self.incoming = None

    def wait_ready(self, incoming, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("netwire serve exited: " + self.text())
            text = self.text()
            m = re.search(r"Waiting for incoming migration on 127\.0\.0\.1:(\d+)", text)
            if "Control socket (QMP) on" in text and (not incoming or m):
                self.incoming = int(m.group(1)) if m else None
                return
            time.sleep(0.05)
        raise RuntimeError("netwire serve not ready: " + self.text())

    def text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def quit(self):
        try:
            q = Qmp(self.qmp_path)
            q.execute("quit", timeout=10)
            q.close()
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(20)


def migrate(source, target):
    q = Qmp(source.qmp_path)
    started = time.monotonic()
    q.execute("migrate", uri="tcp:127.0.0.1:%d" % target.incoming)
    at, event = q.wait_event("MIGRATION", lambda e: e["data"]["status"] in ("completed", "failed", "cancelled"), timeout=120, since=started)
    info = q.execute("query-migrate")
    q.close()
    try:
        t = Qmp(target.qmp_path)
        info["target-phases"] = t.execute("query-migrate").get("incoming", {}).get("phases", {})
        t.close()
    except Exception:  # noqa: BLE001 - an older build has no target phases
        info["target-phases"] = {}
    return (at - started) * 1000, info


def ask(peer_proc, command, expect):
    peer_proc.stdin.write(command + "\n")
    peer_proc.stdin.flush()
    while True:
        line = peer_proc.stdout.readline()
        if not line:
            raise RuntimeError("the namespace peer ended")
        if line.startswith(expect):
            return line.strip()


def series(flows, rounds, rate_kbs, tmp, netwire=NETWIRE):
    ns = "nwfm-%d" % os.getpid()
    run(["ip", "netns", "add", ns])
    appliances = []
    peer_proc = None
    try:
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "tuntap", "add", TAP, "mode", "tap"],
                    ["ip", "addr", "add", "10.0.2.100/24", "dev", TAP], ["ip", "link", "set", TAP, "up"],
                    ["ip", "route", "add", "default", "via", "10.0.2.2", "dev", TAP]):
            run(["ip", "netns", "exec", ns] + cmd)
        source = Appliance(ns, tmp, "f%d-0" % flows, incoming=False, netwire=netwire)
        appliances.append(source)
        source.wait_ready(False)
        peer_proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--peer", str(flows), "--rate-kbs", str(rate_kbs)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = peer_proc.stdout.readline()
        if not ready.startswith("ready"):
            raise RuntimeError("namespace peer: " + ready)

        ask(peer_proc, "mark", "marked")
        time.sleep(1.5)
        baseline = float(re.search(r"gap_ms=([\d.]+)", ask(peer_proc, "report", "report")).group(1))
        pauses, stalls, moved, phases, target_phases = [], [], [], [], []
        for r in range(1, rounds + 1):
            target = Appliance(ns, tmp, "f%d-%d" % (flows, r), incoming=True, netwire=netwire)
            appliances.append(target)
            target.wait_ready(True)
            ask(peer_proc, "mark", "marked")
            pause, info = migrate(source, target)
            if info.get("status") != "completed":
                raise RuntimeError("round %d: %s\n%s\n%s" % (r, json.dumps(info), source.text(), target.text()))
            time.sleep(1.0)
            report = ask(peer_proc, "report", "report")
            stall = float(re.search(r"gap_ms=([\d.]+)", report).group(1))
            got = int(re.search(r"bytes=(\d+)", report).group(1))
            if got == 0:
                raise RuntimeError("round %d: the stream did not continue on the target\n%s" % (r, target.text()))
            pauses.append(pause)
            stalls.append(stall)
            moved.append(info.get("flows", {}))
            phases.append(info.get("phases", {}))
            target_phases.append(info.get("target-phases", {}))
            print("  flows %4d round %2d: pause %7.1f ms (query-migrate total-time %s ms), stall %7.1f ms, moved %s" % (
                flows, r, pause, info.get("total-time"), stall, json.dumps(info.get("flows", {}))), flush=True)
            print("    phases (ms): %s" % ", ".join("%s %s" % (k, v) for k, v in info.get("phases", {}).items()), flush=True)
            if info.get("target-phases"):
                print("    target phases (ms): %s" % ", ".join("%s %s" % (k, v) for k, v in info["target-phases"].items()), flush=True)
            # The log lines of both sides' steps, with the just-in-time compiling each step did.
            for side, appliance, marker in (("source", source, "Migration steps (ms)"), ("target", target, "Incoming migration from")):
                for line in appliance.text().splitlines():
                    if marker in line and "steps (ms)" in line:
                        print("    %s log: %s" % (side, line.split("steps (ms):", 1)[1].strip()), flush=True)
            source.quit()
            source = target
        return baseline, pauses, stalls, moved, (phases, target_phases)
    finally:
        if peer_proc is not None:
            try:
                peer_proc.stdin.write("quit\n")
                peer_proc.stdin.flush()
            except OSError:
                pass
            try:
                peer_proc.wait(10)
            except subprocess.TimeoutExpired:
                peer_proc.terminate()
        for a in appliances:
            if a.proc.poll() is None:
                a.proc.terminate()
                try:
                    a.proc.wait(20)
                except subprocess.TimeoutExpired:
                    a.proc.kill()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", default="1,100,1000", help="comma-separated connection counts")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--rate-kbs", type=int, default=1024, help="the stream's rate, KiB/s")
    ap.add_argument("--netwire", default=NETWIRE, help="netwire.dll to run, or several, comma-separated (builds compared)")
    ap.add_argument("--logs", help="a folder to copy every appliance's log into (kept after the run)")
    ap.add_argument("--peer", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer is not None:
        return peer(args.peer, args.rate_kbs)
    if os.geteuid() != 0:
        print("migration_flows: needs root (namespace, TAP, TCP_REPAIR, nft)", file=sys.stderr)
        return 2
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print("gateway flow migration, %d rounds each, stream %d KiB/s; load average %s%s" % (
        args.rounds, args.rate_kbs, load, " (under load)" if float(load) > 1.5 else ""))
    builds = [os.path.abspath(b) for b in args.netwire.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="nwflowbench-") as tmp:
        os.chmod(tmp, 0o755)
        for flows in [int(f) for f in args.flows.split(",")]:
            for build in builds:
                if len(builds) > 1:
                    print("build %s" % build, flush=True)
                baseline, pauses, stalls, moved, phases = series(flows, args.rounds, args.rate_kbs, tmp, build)
                rows.append((build, flows, baseline, pauses, stalls, moved, phases))
                if args.logs:
                    os.makedirs(args.logs, exist_ok=True)
                    for name in os.listdir(tmp):
                        if name.endswith(".log"):
                            shutil.copy(os.path.join(tmp, name), os.path.join(args.logs, "%d-%s" % (builds.index(build), name)))
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print()
    print("load average at the end %s" % load)
    print("| %sflows | appliance pause median (worst) | guest-visible stall median (worst) | stream gap without migration | moved per round |" % ("build | " if len(builds) > 1 else ""))
    print("| %s---: | ---: | ---: | ---: | --- |" % ("--- | " if len(builds) > 1 else ""))
    for build, flows, baseline, pauses, stalls, moved, _ in rows:
        print("| %s%d | %.1f ms (%.1f) | %.1f ms (%.1f) | %.1f ms | tcp %s, reset %s |" % (
            (build + " | ") if len(builds) > 1 else "", flows, statistics.median(pauses), max(pauses), statistics.median(stalls), max(stalls), baseline,
            moved[-1].get("tcp"), moved[-1].get("reset")))
    for side, index in (("the source's query-migrate phases", 0), ("the target's incoming.phases", 1)):
        print()
        print("medians (ms), %s:" % side)
        for build, flows, _, _, _, _, both in rows:
            phases = [p for p in both[index] if p]
            names = []
            for p in phases:
                names += [n for n in p if n not in names]
            print("  %s%d flows: %s" % ((build + ", ") if len(builds) > 1 else "", flows, ", ".join(
                "%s %.1f" % (n, statistics.median([p[n] for p in phases if n in p])) for n in names) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
