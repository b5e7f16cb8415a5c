#!/usr/bin/python3
"""migrate-vm: moves a QEMU 7.2 VM and the NetWire appliance its NIC is on, together, so the guest's
connections survive (docs/migration.md, "Whole-VM migration").

  tools/migrate-vm.py --qemu-source A.qmp --qemu-target B.qmp --qemu-uri tcp:HOST:PORT \\
                      --netwire-source NA.qmp --netwire-target NB.qmp --netwire-uri tcp:HOST:PORT \\
                      [--spice HOST:PORT] [--max-bandwidth BYTES] [--downtime-limit MS] \\
                      [--pause-first] [--quit-source] [--json]

Before it runs: the target appliance (`netwire serve --incoming tcp:...`) listens for the guest's
NIC, then the target QEMU starts with the same options as the source plus `-incoming tcp:... -S`
and its `-netdev stream` pointing at the target appliance (QEMU 7.2 connects once, at start, and
the target appliance holds the guest's frames until the state arrives).

The sequence: (1) with --spice, `client_migrate_info` on the source appliance and wait for
SPICE_MIGRATE_CONNECT_DONE (the SPICE clients link to the target first); (2) QEMU `migrate` on the
source and wait for `completed` (the source VM is paused from its STOP event on); (3) NetWire
`migrate` on the source appliance and wait for its `completed`; (4) `cont` on the target QEMU.
When NetWire's migration fails the VM is resumed on the source (`cont`), where its network still
is, and the exit status is 1. Times are measured from the QMP events as they arrive.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import Qmp, QmpError  # noqa: E402

FINAL = ("completed", "failed", "cancelled")


def ms(seconds):
    return round(seconds * 1000, 1)


def migrate(args):
    qemu_a, qemu_b = Qmp(args.qemu_source), Qmp(args.qemu_target)
    nw_a, nw_b = Qmp(args.netwire_source), Qmp(args.netwire_target)
    result = {}
    try:
        status = qemu_b.execute("query-status")["status"]
        if status != "inmigrate":
            raise QmpError("the target QEMU is %s, not waiting for a migration (start it with -incoming ... -S)" % status)
        nw_b.execute("query-migrate")

        if args.spice:
            host, port = args.spice.rsplit(":", 1)
            since = time.monotonic()
            nw_a.execute("client_migrate_info", protocol="spice", hostname=host, port=int(port))
            _, done = nw_a.wait_event("SPICE_MIGRATE_CONNECT_DONE", timeout=30, since=since)
            result["spice-clients"] = done["data"]

        qemu_a.execute("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
        parameters = {}
        if args.max_bandwidth:
            parameters["max-bandwidth"] = args.max_bandwidth
        if args.downtime_limit:
            parameters["downtime-limit"] = args.downtime_limit
        if parameters:
            qemu_a.execute("migrate-set-parameters", **parameters)

        started = time.monotonic()
        if args.pause_first:
            qemu_a.execute("stop")
        qemu_a.execute("migrate", uri=args.qemu_uri)
        at, event = qemu_a.wait_event("MIGRATION", lambda e: e["data"]["status"] in FINAL, timeout=args.timeout, since=started)
        if event["data"]["status"] != "completed":
            info = qemu_a.execute("query-migrate")
            raise QmpError("QEMU's migration ended %s: %s" % (event["data"]["status"], info.get("error-desc", "")))
        qemu_done = at
        paused, _ = qemu_a.wait_event("STOP", timeout=5, since=started)
        info = qemu_a.execute("query-migrate")
        result["qemu"] = {"total-ms": info.get("total-time"), "downtime-ms": info.get("downtime"),
                          "paused-to-completed-ms": ms(qemu_done - paused)}

        netwire_started = time.monotonic()
        nw_a.execute("migrate", uri=args.netwire_uri)
        at, event = nw_a.wait_event("MIGRATION", lambda e: e["data"]["status"] in FINAL, timeout=args.timeout, since=netwire_started)
        info = nw_a.execute("query-migrate")
        result["netwire"] = {"ms": ms(at - netwire_started), "status": info.get("status"), "bytes": info.get("state", {}).get("total"),
                             "flows": info.get("flows", {})}
        if info.get("status") != "completed":
            result["netwire"]["error"] = info.get("error-desc", "")
            qemu_a.execute("cont")
            result["resumed"] = "source"
            return result, 1

        cont = time.monotonic()
        qemu_b.execute("cont")
        running, _ = qemu_b.wait_event("RESUME", timeout=30, since=cont)
        result["resumed"] = "target"
        result["pause"] = {
            "source-paused-to-target-running-ms": ms(running - paused),
            "qemu-ms": ms(qemu_done - paused),
            "netwire-added-ms": ms(running - qemu_done),
        }
        if args.quit_source:
            for q in (qemu_a, nw_a):
                try:
                    q.execute("quit", timeout=10)
                except QmpError:
                    pass  # it quit before it answered
        return result, 0
    finally:
        for q in (qemu_a, qemu_b, nw_a, nw_b):
            q.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qemu-source", required=True, help="the source QEMU's QMP socket path")
    ap.add_argument("--qemu-target", required=True, help="the target QEMU's QMP socket path (started with -incoming ... -S)")
    ap.add_argument("--qemu-uri", required=True, help="the target QEMU's -incoming address, tcp:HOST:PORT")
    ap.add_argument("--netwire-source", required=True, help="the source appliance's --qmp socket path")
    ap.add_argument("--netwire-target", required=True, help="the target appliance's --qmp socket path")
    ap.add_argument("--netwire-uri", required=True, help="the target appliance's --incoming address, tcp:HOST:PORT")
    ap.add_argument("--spice", metavar="HOST:PORT", help="move the SPICE clients too: the target appliance's SPICE port")
    ap.add_argument("--max-bandwidth", type=int, help="QEMU migrate-set-parameters max-bandwidth (bytes/s)")
    ap.add_argument("--downtime-limit", type=int, help="QEMU migrate-set-parameters downtime-limit (ms)")
    ap.add_argument("--pause-first", action="store_true",
                    help="pause the source VM before QEMU copies its memory (stop-and-copy instead of live pre-copy)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds each migration may take")
    ap.add_argument("--quit-source", action="store_true", help="quit the source QEMU and appliance afterwards")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = ap.parse_args()
    try:
        result, status = migrate(args)
    except (QmpError, OSError) as ex:
        print("migrate-vm: %s" % ex, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        if "qemu" in result:
            q = result["qemu"]
            print("qemu: migration %s ms, downtime %s ms (source paused -> completed %s ms)" % (q["total-ms"], q["downtime-ms"], q["paused-to-completed-ms"]))
        n = result.get("netwire", {})
        print("netwire: %s in %s ms, %s bytes of state, flows %s" % (n.get("status"), n.get("ms"), n.get("bytes"), json.dumps(n.get("flows", {}))))
        if "error" in n:
            print("netwire: %s; the VM runs on the source again" % n["error"])
        if "pause" in result:
            p = result["pause"]
            print("pause: source paused -> target running %s ms (qemu %s ms, added by netwire and cont %s ms)" % (
                p["source-paused-to-target-running-ms"], p["qemu-ms"], p["netwire-added-ms"]))
    return status


if __name__ == "__main__":
    sys.exit(main())
