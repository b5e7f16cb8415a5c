#!/usr/bin/env bash
# Regenerates captures/spice-*.pcapng: real spice-gtk 0.42 (tools/spice/gtk_client.py) following
# a SPICE migration, recorded with tshark on loopback (SPICE ports only), and writes each
# capture's expected summaries (`netwire inspect --json` and `netwire inspect --spice --json`)
# and the client's own log (NAME.client.txt: its event times, the test's measure of the switch).
#
#   sudo tools/captures/make-spice-captures.sh [OUTDIR]     # default: captures/
#   NETWIRE="dotnet /path/netwire.dll" ...                  # another netwire build
#
# The migrations (docs/protocol.md §5):
#   spice-migration-netwire   semi-seamless between two `netwire serve` (the target started with
#                             --incoming), spice-gtk and a `netwire tunnel-client` on the source
#                             (the tunnel channel: SERVICE_ADD, SERVICE_IP_MAP, ...), driven by
#                             `netwire ctl` client_migrate_info and migrate
#   spice-migration-qemu      semi-seamless between two QEMU 7.2 SPICE servers
#                             (qemu-system-x86_64 -machine none, libspice-server), driven through
#                             QMP with `netwire ctl`
#   spice-switch-host-qemu    the same two QEMUs, but the target refuses the client's password at
#                             MIGRATE_BEGIN (MIGRATE_CONNECT_ERROR); its password is then set to the
#                             client's, and at the end the source sends MIGRATE_SWITCH_HOST: the
#                             client opens a new session on the target
#
# Needs root (tshark on lo), qemu-system-x86, tshark, python3-gi with gir1.2-spiceclientglib-2.0.
# Takes about 30 s.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/captures}
netwire=${NETWIRE:-$repo/tools/netwire}
client=$repo/tools/spice/gtk_client.py
tmp=$(mktemp -d /tmp/nwspicecap.XXXXXX)
chmod 777 "$tmp"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2> /dev/null || true
    done
    wait 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# Free TCP ports on 127.0.0.1, one per argument name: `ports a b` sets $port_a and $port_b.
ports() {
    local values
    values=$(python3 -c '
import socket, sys
held = []
for _ in sys.argv[1:]:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))' "$@")
    local names=("$@") i=0
    for value in $values; do
        printf -v "port_${names[i]}" '%s' "$value"
        i=$((i + 1))
    done
}

wait_for() { # WHAT COMMAND...
    local what=$1
    shift
    for _ in $(seq 300); do
        "$@" > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "make-spice-captures: $what did not come up" >&2
    exit 1
}

listening() { python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"; }

ctl() { # QMP-SOCKET COMMAND ARGS...
    $netwire ctl --qmp "unix:$1" --timeout 30 "${@:2}"
}

# Starts tshark on lo for the given ports and waits until it captures.
start_capture() { # FILE PORT...
    local file=$1 filter="" port
    shift
    for port in "$@"; do
        filter+="${filter:+ or }tcp port $port"
    done
    tshark -i lo -f "$filter" -w "$file" > "$tmp/tshark.log" 2>&1 &
    capture=$!
    pids+=($capture)
    wait_for tshark grep -q 'Capturing on' "$tmp/tshark.log"
}

stop_capture() {
    sleep 0.5
    kill -INT "$capture"
    wait "$capture" || true
}

# The client follows the migration and stops 1 s after it is back in state none.
start_client() { # PORT LOG [PASSWORD]
    env -u DISPLAY /usr/bin/python3 "$client" --port "$1" ${3:+--password "$3"} --seconds 60 --stop-after-move 1 > "$2" 2>&1 &
    gtk=$!
    pids+=($gtk)
    wait_for "spice-gtk's main channel" grep -q 'main opened' "$2"
    sleep 0.5
}

finish_client() { # LOG
    wait "$gtk" || { cat "$1" >&2; echo "make-spice-captures: spice-gtk did not follow the migration" >&2; exit 1; }
}

summaries() { # NAME
    mv "$tmp/$1.pcapng" "$out/$1.pcapng"
    (cd "$out" && $netwire inspect "$1.pcapng" --json) > "$out/$1.inspect.json"
    (cd "$out" && $netwire inspect "$1.pcapng" --spice --json) > "$out/$1.spice.json"
    echo "$1.pcapng: $(tshark -r "$out/$1.pcapng" 2> /dev/null | wc -l) frames"
}

mkdir -p "$out"

# 1. Two netwire serve: A the source, B the target waiting on --incoming.
ports a b inc
$netwire serve --guest "stream:unix:$tmp/a.sock" --tunnel --spice-port "$port_a" --password s3cret \
    --qmp "unix:$tmp/a.qmp" --log-level Warning > "$tmp/a.log" 2>&1 &
pids+=($!)
$netwire serve --guest "stream:unix:$tmp/b.sock" --tunnel --spice-port "$port_b" --password s3cret \
    --qmp "unix:$tmp/b.qmp" --incoming "tcp:127.0.0.1:$port_inc" --log-level Warning > "$tmp/b.log" 2>&1 &
pids+=($!)
wait_for "netwire serve A" listening "$port_a"
wait_for "netwire serve B" listening "$port_b"
start_capture "$tmp/spice-migration-netwire.pcapng" "$port_a" "$port_b"
$netwire tunnel-client --server "127.0.0.1:$port_a" --password s3cret --service "web=127.0.0.1:80,port=8080" \
    --log-level Warning > "$tmp/tunnel.log" 2>&1 &
tunnel=$!
pids+=($tunnel)
name=spice-migration-netwire
start_client "$port_a" "$out/$name.client.txt" s3cret
ctl "$tmp/a.qmp" client_migrate_info protocol=spice hostname=127.0.0.1 "port=$port_b" > /dev/null
sleep 1
ctl "$tmp/a.qmp" migrate "uri=tcp:127.0.0.1:$port_inc" > /dev/null
finish_client "$out/$name.client.txt"
sleep 1
kill "$tunnel"
wait "$tunnel" || true
stop_capture
summaries "$name"

# 2 and 3. Two QEMU SPICE servers (libspice-server): S the source, T the target (-incoming).
qemu_pair() { # NAME SOURCE-PASSWORD TARGET-PASSWORD
    ports s t inc
    local common=(-machine none -nodefaults -no-user-config -display none -monitor none -serial none)
    qemu-system-x86_64 "${common[@]}" -object "secret,id=pw,data=$2" \
        -spice "port=$port_s,addr=127.0.0.1,password-secret=pw" -qmp "unix:$tmp/s.qmp,server=on,wait=off" > "$tmp/s.log" 2>&1 &
    source=$!
    pids+=($source)
    qemu-system-x86_64 "${common[@]}" -object "secret,id=pw,data=$3" \
        -spice "port=$port_t,addr=127.0.0.1,password-secret=pw" -qmp "unix:$tmp/t.qmp,server=on,wait=off" \
        -incoming "tcp:127.0.0.1:$port_inc" > "$tmp/t.log" 2>&1 &
    target=$!
    pids+=($target)
    wait_for "QEMU S" listening "$port_s"
    wait_for "QEMU T" listening "$port_t"
    start_capture "$tmp/$1.pcapng" "$port_s" "$port_t"
    start_client "$port_s" "$out/$1.client.txt" "$2"
    ctl "$tmp/s.qmp" client_migrate_info protocol=spice hostname=127.0.0.1 "port=$port_t" > /dev/null
    sleep 1
    if [[ $2 != "$3" ]]; then
        # The client was refused on T (MIGRATE_CONNECT_ERROR): now let it in, for the new session.
        ctl "$tmp/t.qmp" set_password protocol=spice "password=$2" > /dev/null
    fi
    ctl "$tmp/s.qmp" migrate "uri=tcp:127.0.0.1:$port_inc" > /dev/null
    finish_client "$out/$1.client.txt"
    stop_capture
    kill "$source" "$target" 2> /dev/null || true
    wait "$source" "$target" 2> /dev/null || true
    summaries "$1"
}

qemu_pair spice-migration-qemu s3cret s3cret
qemu_pair spice-switch-host-qemu s3cret other
