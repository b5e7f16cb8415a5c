# Shell pieces shared by the gateway benchmarks (gateway.sh, podman.sh). Source it after setting
# BENCH_NAME (the script's name in messages); the caller keeps its pids in STARTED.

say() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date -u +%T)" "$*" >&2; }
fail() { say "error: $*"; exit 1; }

stop_pid() {    # TERM, then KILL after 5 s; only pids the script started
    local pid=$1 i
    kill -TERM "$pid" 2> /dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    return 0
}

wait_listening() {    # PORT...: until each has a listening TCP socket (10 s each at most)
    local port i
    for port in "$@"; do
        for i in $(seq 100); do
            [ -n "$(ss -Hltn "sport = :$port")" ] && break
            sleep 0.1
        done
    done
}

build_netwire() {    # REPO WORK OUT: builds netwire Release into WORK/netwire; sets NETWIRE_DLL
    command -v dotnet > /dev/null || fail "dotnet is not on PATH (needed to build netwire)"
    say "building netwire (Release)"
    dotnet build "$1/src/NetWire.Cli" -c Release -o "$2/netwire" --nologo -v quiet -clp:ErrorsOnly \
        -nodeReuse:false -p:UseSharedCompilation=false > "$3/build.log" 2>&1 \
        || fail "netwire build failed, see $3/build.log"
    NETWIRE_DLL="$2/netwire/netwire.dll"
}
