#!/usr/bin/python3
"""soak_ns: the namespace side of tools/soak.py, run by `netwire run` (so as root in the namespace).

  soak_ns.py --tcp PORT --udp PORT --seconds S [--gateway 10.0.2.2]

Until S seconds pass: short TCP connections (connect, 16 bytes each way, close) to the gateway's
address, which `--allow-host-loopback` maps to the host's echo server; a UDP exchange from a new
socket (a new flow) each time; an ICMP echo to the gateway every second. Every 30 s, and at the
end, one line: SOAK_NS tcp=N tcp_failed=N udp=N udp_lost=N ping=N ping_lost=N.
"""
import argparse
import os
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(raw, gateway, seq):
    body = b"netwire-soak"
    header = struct.pack("!BBHHH", 8, 0, 0, os.getpid() & 0xFFFF, seq & 0xFFFF)
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + body), os.getpid() & 0xFFFF, seq & 0xFFFF) + body
    raw.sendto(packet, (gateway, 0))
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        raw.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, _ = raw.recvfrom(2048)
        except socket.timeout:
            return False
        ihl = (data[0] & 0x0F) * 4
        kind, _, _, ident, got = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if kind == 0 and ident == os.getpid() & 0xFFFF and got == seq & 0xFFFF:
            return True
    return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp", type=int, required=True)
    parser.add_argument("--udp", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--gateway", default="10.0.2.2")
    args = parser.parse_args()
    counts = dict(tcp=0, tcp_failed=0, udp=0, udp_lost=0, ping=0, ping_lost=0)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    start = time.monotonic()
    next_ping = next_report = start
    seq = 0
    payload = b"0123456789abcdef"

    def report():
        print("SOAK_NS " + " ".join("%s=%d" % kv for kv in counts.items()), flush=True)

    while time.monotonic() - start < args.seconds:
        try:
            with socket.create_connection((args.gateway, args.tcp), timeout=5) as s:
                s.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    got += chunk
                counts["tcp" if got == payload else "tcp_failed"] += 1
        except OSError:
            counts["tcp_failed"] += 1

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(1)
            try:
                u.sendto(payload, (args.gateway, args.udp))
                u.recvfrom(64)
                counts["udp"] += 1
            except OSError:
                counts["udp_lost"] += 1

        now = time.monotonic()
        if now >= next_ping:
            seq += 1
            counts["ping" if ping(raw, args.gateway, seq) else "ping_lost"] += 1
            next_ping = now + 1
        if now >= next_report:
            report()
            next_report = now + 30
        # About 40 TCP connections and 40 UDP flows a second: thousands a minute, with CPU to spare.
        time.sleep(0.02)
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
