"""Host-side pieces shared by the gateway benchmarks (gateway.sh, podman.sh): servers on host
loopback, clients that run inside the measured namespace, and /proc accounting.

The scripts write their own report code beside this module and call functions by name:
`python3 SCRIPT.py FUNCTION ARGS...` (every argument arrives as a string).
"""
import json, os, socket, sys, time


def family_of(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def free_port(host='127.0.0.1'):
    """Prints a TCP port that is free on HOST now."""
    s = socket.socket(family_of(host))
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    print(port)


def listener(host, port, backlog):
    ls = socket.socket(family_of(host))
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(backlog)
    return ls


def line_server(port, host='127.0.0.1'):
    """Each accepted connection gets one line (the client's address as the server sees it), then EOF."""
    ls = listener(host, port, 512)
    while True:
        c, peer = ls.accept()
        try:
            c.sendall(('%s\n' % peer[0]).encode())
        except OSError:
            pass
        c.close()


def hold_server(port, host='127.0.0.1'):
    """Accepts and keeps every connection open, silent (the idle-connection memory figure)."""
    ls = listener(host, port, 4096)
    held = []
    while True:
        c, _ = ls.accept()
        held.append(c)


def fetch_line(host, port, timeout):
    """One connection: everything the server sends until EOF."""
    s = socket.create_connection((host, int(port)), timeout=timeout)
    data = b''
    while True:
        chunk = s.recv(256)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def wait_up(host, port, seconds):
    """Until one connection through the gateway returns the server's line; prints that line."""
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        try:
            line = fetch_line(host, port, 2)
            if line.endswith(b'\n'):
                print(line.decode().strip())
                return
        except OSError:
            time.sleep(0.2)
    sys.exit('no answer from %s:%s through the gateway' % (host, port))


def connect_rate(host, port, count, limit=120):
    """COUNT connections one after another (or until LIMIT seconds): a JSON line with ok, failed,
    errors by kind and seconds."""
    count, limit = int(count), float(limit)
    ok = failed = 0
    errors = {}
    start = time.monotonic()
    while ok + failed < count and time.monotonic() - start < limit:
        try:
            if fetch_line(host, port, 5).endswith(b'\n'):
                ok += 1
                continue
            errors['short reply'] = errors.get('short reply', 0) + 1
        except OSError as e:
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        failed += 1
    print(json.dumps({'ok': ok, 'failed': failed, 'errors': errors,
                      'seconds': time.monotonic() - start}))


def cpu_seconds(pid):
    """User and system time of PID and its waited-for children, from /proc/PID/stat."""
    with open('/proc/%s/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    return sum(int(x) for x in fields[11:15]) / os.sysconf('SC_CLK_TCK')


def cpu(pid):
    print('%.3f' % cpu_seconds(pid))


def rss_kib(pid):
    with open('/proc/%s/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise ValueError('no VmRSS for pid %s' % pid)


def idle_rss(host, port, count, pid):
    """Opens COUNT connections through the gateway (pid PID) and keeps them idle: a JSON line with
    its RSS before and after."""
    count = int(count)
    time.sleep(1)
    before = rss_kib(pid)
    held, errors = [], {}
    start = time.monotonic()
    for _ in range(count):
        try:
            held.append(socket.create_connection((host, int(port)), timeout=10))
        except OSError as e:
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    opened = time.monotonic() - start
    time.sleep(2)
    after = rss_kib(pid)
    for s in held:
        s.close()
    print(json.dumps({'ok': len(held), 'failed': count - len(held), 'errors': errors, 'rss_before_kib': before,
                      'rss_after_kib': after, 'open_seconds': round(opened, 3)}))


def iperf_received(path):
    """The receiver's totals of an iperf3 -J file and the whole document; ValueError on an iperf3 error."""
    with open(path) as f:
        d = json.load(f)
    if d.get('error'):
        raise ValueError(d['error'])
    return d['end']['sum_received'], d


def run(namespace):
    """Calls the function named by argv[1] in NAMESPACE (a script's globals) with the rest of argv."""
    namespace[sys.argv[1]](*sys.argv[2:])
