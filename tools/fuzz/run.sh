#!/usr/bin/env bash
# Coverage-guided fuzzing of NetWire's input parsers with afl++ and SharpFuzz (docs/reliability.md).
#
#   tools/fuzz/run.sh TARGET SECONDS     one target (framing, gateway, pcap, spice-link, spice-main,
#                                        spice-tunnel, qmp, state), or `all` for each in turn
#   tools/fuzz/run.sh --check [TARGET]   no fuzzing: the corpus and the regressions of TARGET (or of
#                                        all) through the uninstrumented build; exit 1 on a failure
#
# Publishes tools/fuzz/NetWire.Fuzz (Release, so after the suite's build only the fuzz project itself
# compiles; the referenced projects' outputs are left as they are), instruments the NetWire
# assemblies in the published copy with the sharpfuzz tool (.config/dotnet-tools.json),
# and runs afl-fuzz from tools/fuzz/corpus/TARGET for SECONDS. Findings land in
# .build/fuzz/findings/TARGET/default/{crashes,hangs}; each one is replayed uninstrumented, and the
# script exits 1 when a crash reproduces or a hang still takes over 5 s. A finding that is fixed
# goes into tools/fuzz/regressions/TARGET/ (and a unit test beside the code it hit).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
targets=(framing gateway pcap spice-link spice-main spice-tunnel qmp state)
work=$root/.build/fuzz

publish() {
    local out=$1
    rm -rf "$out"
    dotnet publish tools/fuzz/NetWire.Fuzz/NetWire.Fuzz.csproj -c Release -o "$out" --nologo -v quiet -clp:ErrorsOnly > "$work/publish.log" 2>&1 \
        || { cat "$work/publish.log" >&2; echo "fuzz: publish failed" >&2; exit 2; }
}

check() {
    local bin=$1 target=$2
    local dirs=("tools/fuzz/corpus/$target")
    [[ -d tools/fuzz/regressions/$target ]] && dirs+=("tools/fuzz/regressions/$target")
    dotnet "$bin/NetWire.Fuzz.dll" "$target" --run "${dirs[@]}"
}

mkdir -p "$work"
if [[ ${1:-} == --check ]]; then
    publish "$work/plain"
    status=0
    for t in ${2:-${targets[@]}}; do
        check "$work/plain" "$t" || status=1
    done
    exit $status
fi

if [[ $# -ne 2 ]]; then
    echo "usage: tools/fuzz/run.sh TARGET|all SECONDS | --check [TARGET]" >&2
    exit 2
fi
if ! command -v afl-fuzz > /dev/null; then
    echo "fuzz: afl-fuzz is not installed (Debian: apt-get install afl++)" >&2
    exit 2
fi
selected=("$1")
[[ $1 == all ]] && selected=("${targets[@]}")
seconds=$2

dotnet tool restore > /dev/null
publish "$work/plain"
rm -rf "$work/instrumented"
cp -r "$work/plain" "$work/instrumented"
for dll in "$work"/instrumented/NetWire.*.dll; do
    [[ $(basename "$dll") == NetWire.Fuzz.dll ]] && continue
    dotnet tool run sharpfuzz "$dll" > /dev/null
done

export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
status=0
for t in "${selected[@]}"; do
    if [[ ! -d tools/fuzz/corpus/$t ]]; then
        echo "fuzz: no target '$t' (tools/fuzz/corpus/$t is missing)" >&2
        exit 2
    fi
    out=$work/findings/$t
    mkdir -p "$work/findings"
    rm -rf "$out"
    echo "== fuzz $t: ${seconds} s"
    # -t: per input, in ms, generous for a shared machine; -m none: the .NET runtime maps a lot.
    afl-fuzz -i "tools/fuzz/corpus/$t" -o "$out" -t 3000 -m none -V "$seconds" -- dotnet "$work/instrumented/NetWire.Fuzz.dll" "$t" > "$work/$t.log" 2>&1 || {
        tail -20 "$work/$t.log" >&2
        echo "fuzz $t: afl-fuzz failed" >&2
        status=1
        continue
    }
    stats=$out/default/fuzzer_stats
    execs=$(awk -F' *: *' '$1=="execs_done"{print $2}' "$stats")
    paths=$(awk -F' *: *' '$1=="corpus_count"{print $2}' "$stats")
    crashes=$(find "$out/default/crashes" -type f -name 'id:*' | wc -l)
    hangs=$(find "$out/default/hangs" -type f -name 'id:*' | wc -l)
    echo "fuzz $t: $execs executions, $paths inputs in the queue, $crashes crashes, $hangs hangs"
    if (( crashes + hangs > 0 )); then
        # Replayed uninstrumented: a crash that reproduces, or a hang that still takes over 5 s, fails.
        if ! dotnet "$work/plain/NetWire.Fuzz.dll" "$t" --run "$out/default/crashes" "$out/default/hangs"; then
            echo "fuzz $t: findings reproduce; inputs in $out/default/{crashes,hangs}" >&2
            status=1
        fi
    fi
    check "$work/plain" "$t" || status=1
done
exit $status
