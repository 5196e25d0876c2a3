#!/usr/bin/env bash
# test/fuzz/run.sh — runs the libFuzzer targets of a -Dfuzz=true build: one target for a bounded
# time (the meson 'fuzz' suite), or all of them with a kept corpus, and reports exec counts.
#
#   run.sh one NAME FUZZER SECONDS WORKDIR   one target (seeds: corpus/NAME, dict: dict/NAME.dict)
#   run.sh all BUILDDIR SECONDS [NAME...]    every target (or those named) in turn
#   run.sh merge NAME FUZZER WORKDIR         add WORKDIR's finds that add coverage to corpus/NAME
#   run.sh cover COVBUILD WORKDIR [NAME...]  line/branch coverage of each target's code reached
#                                            by corpus/NAME plus WORKDIR/NAME/corpus, where
#                                            COVBUILD is a clang build (no -Dfuzz) with
#                                            -Dc_args=-fprofile-instr-generate -fcoverage-mapping
#
# New inputs go to WORKDIR/NAME/corpus, crashes to WORKDIR/NAME/artifacts; exits non-zero on
# any crash, leak, timeout or failed invariant, after printing how to reproduce it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# Runs one target, then prints "fuzz NAME: N execs (N/s), cov N, ft N, corpus N (+N new), RESULT"
# (cov: coverage points reached, ft: libFuzzer features); the full log is WORKDIR/NAME/last.log.
run_one() { # NAME FUZZER SECONDS WORKDIR
    local name=$1 fuzzer=$2 secs=$3 work=$4/$1
    local seeds=$here/corpus/$name dict=$here/dict/$name.dict log rc
    local args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$work/artifacts/")

    [ -x "$fuzzer" ] || { echo "run.sh: $fuzzer is not a built fuzzer" >&2; return 2; }
    [ -d "$seeds" ] || { echo "run.sh: no seed corpus $seeds" >&2; return 2; }
    [ -f "$dict" ] && args+=(-dict="$dict")
    mkdir -p "$work/corpus" "$work/artifacts"
    rm -f "$work"/artifacts/*
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
        return 1 # not libFuzzer's 77, which meson would count as a skipped test
    fi
}

# The source files a target is about (for `cover`).
sources() { # NAME
    local top
    top=$(cd "$here/../.." && pwd)
    case "$1" in
    addr | blob_path | config | http_date | names | range) echo "$top/common/$1.c" ;;
    disp_cond) echo "$top/dispatcher/object_get.c" ;;
    disp_move) echo "$top/dispatcher/request.c $top/dispatcher/object_move.c" ;;
    disp_path) echo "$top/dispatcher/router.c" ;;
    sd_path) echo "$top/storaged/router.c $top/common/blob_path.c" ;;
    esac
}

# Reads lcov on stdin; for each wanted file prints lines, branches and functions reached, and
# the functions never reached.
cover_report() { # "FILE..."
    local sf keep=0 line
    while IFS= read -r line; do
        case "$line" in
        SF:*)
            sf=${line#SF:}
            keep=0
            for w in $1; do
                [ "$(realpath -m "$sf")" = "$w" ] && keep=1 && echo "SF:$w"
            done
            ;;
        *) [ "$keep" = 1 ] && echo "$line" ;;
        esac
    done | awk '
        function flush() {
            if (sf == "") return
            printf "%s: lines %d/%d (%.1f%%), branches %d/%d (%.1f%%), functions %d/%d\n", sf,
                   lh, lf, lf ? 100 * lh / lf : 0, bh, bf, bf ? 100 * bh / bf : 0, fh, ff
            if (missed != "") printf "  never reached: %s\n", missed
        }
        {
            tag = $0; sub(/:.*/, "", tag)
            rest = $0; sub(/^[A-Z]+:/, "", rest)
            split(rest, f, ",")
        }
        tag == "SF" { flush(); sf = rest; lh = lf = bh = bf = fh = ff = 0; missed = "" }
        tag == "FNDA" {
            name = substr(rest, index(rest, ",") + 1)
            sub(/^.*:/, "", name) # static functions are FILE:NAME
            ff++
            if (f[1] > 0) fh++; else missed = missed (missed == "" ? "" : ", ") name
        }
        tag == "DA" { lf++; if (f[2] > 0) lh++ }
        tag == "BRDA" { bf++; if (f[4] != "-" && f[4] > 0) bh++ }
        END { flush() }'
}

all_names() {
    for f in "$here"/fuzz_*.c; do
        n=${f##*/fuzz_}
        echo "${n%.c}"
    done
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
    [ ${#names[@]} -gt 0 ] || mapfile -t names < <(all_names)
    failed=0
    for n in "${names[@]}"; do
        run_one "$n" "$build/test/fuzz/fuzz_$n" "$secs" "$build/test/fuzz/work" ||
            failed=$((failed + 1))
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
cover)
    [ $# -ge 2 ] || { echo "usage: run.sh cover COVBUILD WORKDIR [NAME...]" >&2; exit 2; }
    build=$(cd "$1" && pwd) work=$2
    shift 2
    names=("$@")
    [ ${#names[@]} -gt 0 ] || mapfile -t names < <(all_names)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    for n in "${names[@]}"; do
        exe=$build/test/fuzz/fuzz_$n
        dirs=("$here/corpus/$n")
        [ -d "$work/$n/corpus" ] && dirs+=("$work/$n/corpus")
        LLVM_PROFILE_FILE=$tmp/$n.profraw "$exe" "${dirs[@]}" || exit 1
        llvm-profdata merge -o "$tmp/$n.profdata" "$tmp/$n.profraw" || exit 1
        # the coverage map names files as the compiler saw them (BUILD/../common/x.c)
        echo "== $n"
        llvm-cov export -format=lcov "$exe" -instr-profile="$tmp/$n.profdata" |
            cover_report "$(sources "$n")"
    done
    ;;
*)
    sed -n '4,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
