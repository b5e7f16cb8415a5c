#!/usr/bin/python3
"""spice_bench: SPICE link handshakes per second and main-channel round trips, for any server.

  spice_bench.py --port P [--password X] [--seconds S] [--connections C] [--tls --ca-file F]
                 [--server-pid PID]

Measures, against whatever listens on 127.0.0.1:P (netwire serve or QEMU's spice-server):
  * link handshakes per second: C client threads each do, in a loop, a full main-channel link
    (header + link message, reply with RSA key, auth mechanism, RSA-OAEP ticket, result) and
    wait for MAIN_INIT, then close; for S seconds;
  * main-channel round trip: on one linked main channel, ATTACH_CHANNELS -> CHANNELS_LIST,
    repeated for S seconds (a client-driven request/answer on the main channel, which both
    servers answer the same way; server PINGs are answered on the way).
With --tls every connection is TLS from its first byte (the server's TLS port), verified
against the CA file and the address 127.0.0.1; a handshake then counts the TLS handshake too (a
full one each time: no session resumption, as spice-gtk makes a new TLS connection per channel).
With --server-pid the server process's CPU time (user + system, /proc/PID/stat) over the
handshake phase is reported per handshake (server_cpu_ms_per_handshake), a figure that means
something on a busy machine where the rate does not.
Prints one JSON object. Needs python3-cryptography (Debian) for the ticket.
"""
import argparse
import json
import os
import socket
import ssl
import statistics
import struct
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def recv_exact(s, n):
    data = bytearray()
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("server closed")
        data += chunk
    return bytes(data)


TLS = None


def tls_context(ca_file):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(ca_file)
    return context


def link(port, password):
    """One full main link; returns the socket positioned after the link result (mini headers)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if TLS is not None:
        s = TLS.wrap_socket(s, server_hostname="127.0.0.1")
    # spice-gtk's main link: caps AUTH_SELECTION|AUTH_SPICE|MINI_HEADER, main caps NAME_AND_UUID.
    mess = struct.pack("<IBBIII", 0, 1, 0, 1, 1, 18) + struct.pack("<II", 0x0B, 0x02)
    s.sendall(b"REDQ" + struct.pack("<III", 2, 2, len(mess)) + mess)
    head = recv_exact(s, 16)
    size = struct.unpack("<I", head[12:16])[0]
    reply = recv_exact(s, size)
    if struct.unpack("<I", reply[:4])[0] != 0:
        raise RuntimeError("link error %d" % struct.unpack("<I", reply[:4])[0])
    key = serialization.load_der_public_key(reply[4:166])
    ticket = key.encrypt((password or "").encode() + b"\0", OAEP)
    s.sendall(struct.pack("<I", 1) + ticket)
    result = struct.unpack("<I", recv_exact(s, 4))[0]
    if result != 0:
        raise RuntimeError("link result %d" % result)
    return s


def read_msg(s):
    t, n = struct.unpack("<HI", recv_exact(s, 6))
    return t, recv_exact(s, n) if n else b""


def read_until(s, want):
    while True:
        t, body = read_msg(s)
        if t == want:
            return body
        if t == 4:  # PING -> PONG
            s.sendall(struct.pack("<HI", 3, 12) + body[:12])


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    if pid is None:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def handshakes(port, password, seconds, connections, server_pid=None):
    counts = [0] * connections
    errors = []
    stop = time.monotonic() + seconds

    def worker(i):
        while time.monotonic() < stop:
            try:
                s = link(port, password)
                read_until(s, 103)
                s.close()
                counts[i] += 1
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                errors.append(repr(e))
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    cpu0 = cpu_seconds(server_pid)
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(server_pid) - cpu0
    total = sum(counts)
    result = {"handshakes": total, "per_second": round(total / elapsed, 1), "errors": errors[:3]}
    if server_pid is not None and total:
        result["server_cpu_ms_per_handshake"] = round(cpu * 1000 / total, 3)
    return result


def round_trips(port, password, seconds):
    s = link(port, password)
    read_until(s, 103)
    samples = []
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        s.sendall(struct.pack("<HI", 104, 0))
        read_until(s, 104)
        samples.append((time.perf_counter() - t0) * 1e6)
    s.close()
    samples.sort()
    return {"count": len(samples), "median_us": round(statistics.median(samples), 1),
            "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--password")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--tls", action="store_true", help="connect with TLS (the server's TLS port)")
    ap.add_argument("--ca-file", help="with --tls: the CA the server's certificate must chain to")
    ap.add_argument("--server-pid", type=int, help="report this process's CPU time per handshake")
    a = ap.parse_args()
    if a.tls:
        global TLS
        TLS = tls_context(a.ca_file)
    out = {"handshakes": handshakes(a.port, a.password, a.seconds, a.connections, a.server_pid),
           "main_round_trip": round_trips(a.port, a.password, a.seconds)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
