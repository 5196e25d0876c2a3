#!/usr/bin/env bash
# test/fuzz/run.sh — runs the libFuzzer targets of a -Dfuzz=true build: one target for a bounded
# time (the meson 'fuzz' suite), or all of them with a kept corpus, and reports exec counts.
#
#   run.sh one NAME FUZZER SECONDS WORKDIR   one target (seeds: corpus/NAME, dict: dict/NAME.dict)
#   run.sh all BUILDDIR SECONDS [NAME...]    every target (or those named), then a summary table
#   run.sh merge NAME FUZZER WORKDIR         add WORKDIR's finds that add coverage to corpus/NAME
#
# New inputs go to WORKDIR/NAME/corpus, crashes to WORKDIR/NAME/artifacts; exits non-zero on
# any crash, leak, timeout or failed invariant, after printing how to reproduce it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# One line per target: "NAME EXECS SECONDS EXECS_PER_SEC COV FT CORPUS STATUS"
run_one() { # NAME FUZZER SECONDS WORKDIR
    local name=$1 fuzzer=$2 secs=$3 work=$4/$1
    local seeds=$here/corpus/$name dict=$here/dict/$name.dict log rc
    local args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$work/artifacts/")

    [ -x "$fuzzer" ] || { echo "run.sh: $fuzzer is not a built fuzzer" >&2; return 2; }
    [ -d "$seeds" ] || { echo "run.sh: no seed corpus $seeds" >&2; return 2; }
    [ -f "$dict" ] && args+=(-dict="$dict")
    mkdir -p "$work/corpus" "$work/artifacts"
    log=$work/last.log
    "$fuzzer" "${args[@]}" "$work/corpus" "$seeds" >"$log" 2>&1
    rc=$?
    summarize "$name" "$log" "$rc"
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log" >&2
        for a in "$work"/artifacts/*; do
            [ -f "$a" ] || continue
            echo "run.sh: failing input $a (reproduce: $fuzzer $a):" >&2
            od -A d -c "$a" | head -n 20 >&2
        done
    fi
    return "$rc"
}

summarize() { # NAME LOG RC
    awk -v name="$1" -v rc="$3" '
        /^stat::number_of_executed_units:/ { execs = $2 }
        /^stat::average_exec_per_sec:/ { eps = $2 }
        /^stat::new_units_added:/ { added = $2 }
        /(INITED|NEW|REDUCE|pulse|DONE) +cov: / {
            for (i = 1; i < NF; i++) {
                if ($i == "cov:") cov = $(i + 1)
                if ($i == "ft:") ft = $(i + 1)
                if ($i == "corp:") { corp = $(i + 1); sub(/\/.*/, "", corp) }
            }
        }
        /Done [0-9]+ runs in [0-9]+ second/ { secs = $(NF - 1) }
        END {
            printf "fuzz %s: %s execs (%s/s), cov %s, ft %s, corpus %s (+%s new), %s\n", name,
                   execs + 0, eps + 0, cov + 0, ft + 0, corp + 0, added + 0,
                   rc == 0 ? "no finding" : "FAILED (exit " rc ")"
        }' "$2"
}

cmd=${1:-}
shift || true
case "$cmd" in
one)
    [ $# -eq 4 ] || { echo "usage: run.sh one NAME FUZZER SECONDS WORKDIR" >&2; exit 2; }
    run_one "$@"
    ;;
all)
    [ $# -ge 2 ] || { echo "usage: run.sh all BUILDDIR SECONDS [NAME...]" >&2; exit 2; }
    build=$(cd "$1" && pwd) secs=$2
    shift 2
    names=("$@")
    if [ ${#names[@]} -eq 0 ]; then
        for f in "$here"/fuzz_*.c; do
            n=${f##*/fuzz_}
            names+=("${n%.c}")
        done
    fi
    failed=0
    for n in "${names[@]}"; do
        run_one "$n" "$build/test/fuzz/fuzz_$n" "$secs" "$build/test/fuzz/work" || failed=$((failed + 1))
    done
    echo "run.sh: ${#names[@]} targets, $failed failed"
    [ "$failed" -eq 0 ]
    ;;
merge)
    [ $# -eq 3 ] || { echo "usage: run.sh merge NAME FUZZER WORKDIR" >&2; exit 2; }
    name=$1 fuzzer=$2 work=$3/$1
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # the hand-written seeds stay; inputs from WORKDIR are added when they add coverage
    cp "$here/corpus/$name"/* "$tmp"/
    "$fuzzer" -merge=1 "$tmp" "$work/corpus" 2>&1 | tail -n 3
    cp -n "$tmp"/* "$here/corpus/$name"/
    echo "run.sh: corpus/$name now holds $(find "$here/corpus/$name" -type f | wc -l) inputs"
    ;;
*)
    sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
