"""Namespace-side load for tools/bench/tunnel.sh (run with ip netns exec).

  client.py get HOST PORT BYTES PARALLEL   -> {"mbytes_per_s": ..., "bytes": ...}
  client.py connect HOST PORT COUNT        -> {"median_us": ..., "p99_us": ...}
"""
import json
import socket
import sys
import threading
import time


def get(host, port, size, parallel):
    totals = [0] * parallel
    errors = []

    def one(i):
        try:
            s = socket.create_connection((host, port), 30)
            s.sendall(("GET /%d HTTP/1.0\r\n\r\n" % size).encode())
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            n = 0
            while True:
                r = s.recv_into(view)
                if r == 0:
                    break
                n += r
            s.close()
            totals[i] = n
        except OSError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(parallel)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    total = sum(totals)
    print(json.dumps({"mbytes_per_s": round(total / elapsed / 1e6, 1), "bytes": total, "errors": errors}))


def connect(host, port, count):
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        s = socket.create_connection((host, port), 30)
        samples.append((time.perf_counter() - start) * 1e6)
        s.sendall(b"GET /0 HTTP/1.0\r\n\r\n")
        while s.recv(4096):
            pass
        s.close()
    samples.sort()
    print(json.dumps({"median_us": round(samples[len(samples) // 2]), "p99_us": round(samples[int(len(samples) * 0.99) - 1])}))


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "get":
        get(host, port, int(sys.argv[4]), int(sys.argv[5]))
    else:
        connect(host, port, int(sys.argv[4]))
