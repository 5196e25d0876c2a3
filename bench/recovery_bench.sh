#!/usr/bin/env bash
# bench/recovery_bench.sh — whole-disk recovery (clusterctl repair: librsync copy + narrow
# recovery) against `rsync -a` of the same tree, a stale disk with 1 % of its files changed, and
# a per-object logical recovery (one repair_object job per object) of the same data.
#
# Usage: bench/recovery_bench.sh BUILD_DIR [FILES] [BYTES]      (default 20000 files, 2 GiB)
# Runs real PostgreSQL and Redis (test/harness/with-services.sh), two storaged (the peer and the
# disk being recovered, fsync on), repaird (4 workers, no throttle) and clusterctl. Every copy
# (rsync's too) lands on a freshly made ext4 file system, as on a replaced disk: an image on a
# loop device when the machine allows it (root; BENCH_FRESH_FS=0: plain directories, whose
# figures then depend on the file system's history). Data lives under $BENCH_DIR (default
# $TMPDIR or /var/tmp): it needs about 3x BYTES free. BENCH_KEEP=1
# keeps it. BENCH_SKIP_LOGICAL=1 skips the (slow) per-object recovery; BENCH_STORAGED_THREADS=N
# passes --threads N to both storaged; BENCH_PERF=FILE records
# a system-wide perf profile of the fresh copy. repaird's STF_RECOVER_* variables pass through
# (STF_RECOVER_PULLS=0: every fetch relayed through repaird as a librsync delta, as before
# the batched pulls). Prints one result line per measurement and a summary table at the end.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || { sed -n '2,11p' "$0" >&2; exit 2; }
BUILD=$(cd "$1" && pwd)
FILES=${2:-20000}
BYTES=${3:-2147483648}
if [ -z "${STF_DB_URL:-}" ]; then # PostgreSQL and Redis for this run
    exec "$here/../test/harness/with-services.sh" "$0" "$BUILD" "$FILES" "$BYTES"
fi
. "$here/bench_lib.sh"
bench_init recovery_bench
bench_need rsync curl python3 psql redis-cli

# --- file systems: a fresh one for every copy ------------------------------------------------
fresh_fs=0
if [ "$(id -u)" = 0 ] && [ "${BENCH_FRESH_FS:-1}" = 1 ] && command -v mkfs.ext4 >/dev/null; then
    fresh_fs=1
fi
fs_size=$((BYTES * 3 / 2 + (1 << 30)))
mounts=()
recovery_cleanup() { # the daemons first (they hold files open), then the mounts
    local rc=$? i
    for ((i = ${#bench_pids[@]} - 1; i >= 0; i--)); do bench_stop_pid "${bench_pids[$i]}"; done
    for i in "${mounts[@]}"; do umount "$i" 2>/dev/null || umount -l "$i" 2>/dev/null || true; done
    (exit "$rc")
    bench_cleanup
}
trap recovery_cleanup EXIT
newfs() { # NAME: an empty file system on $T/NAME (ext4 on a loop device, else a directory)
    local dir=$T/$1
    if [ "$fresh_fs" = 1 ]; then
        if mountpoint -q "$dir"; then umount "$dir"; fi
        rm -f "$T/$1.img"
        truncate -s "$fs_size" "$T/$1.img"
        mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$T/$1.img"
        mkdir -p "$dir"
        if mount -o loop "$T/$1.img" "$dir" 2>/dev/null; then
            mounts+=("$dir")
            rmdir "$dir/lost+found"
            return 0
        fi
        echo "note: cannot mount a loop device here: plain directories instead" >&2
        fresh_fs=0
        rm -f "$T/$1.img"
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
}

data=$here/recovery_data.py
ctl() { "$BUILD/clusterctl/clusterctl" -c "$T/stf.conf" "$@"; }
sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$STF_DB_URL" -c "$1"; }
now() { date +%s.%N; }
secs() { python3 -c "print('%.2f' % ($2 - $1))"; }
mib_s() { python3 -c "print('%.1f' % ($1 / 1048576 / $2))"; }
tree_bytes() { find "$1" -path "$1/.*" -prune -o -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}'; }
warm() { find "$1" -type f -not -path '*/.*' -exec cat {} + >/dev/null; } # page cache, as for rsync
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system CPU of a process
cpu_start() { c0=("$(ticks "$pid_peer")" "$(ticks "$pid_disk")" "$(ticks "$pid_repaird")"); }
cpu_report() { # CPU seconds spent by each daemon since cpu_start
    python3 -c "import sys; a = [int(x) for x in sys.argv[1:4]]; b = [int(x) for x in sys.argv[4:7]]
print('cpu: peer storaged %.1f s, target storaged %.1f s, repaird %.1f s'
      % tuple((y - x) / $hz for x, y in zip(a, b)))" "${c0[@]}" \
        "$(ticks "$pid_peer")" "$(ticks "$pid_disk")" "$(ticks "$pid_repaird")"
}

cat >"$T/stf.conf" <<CONF
[database]
url = $STF_DB_URL
[redis]
url = $STF_REDIS_URL
[repaird]
workers = 4
health_interval = 1s
down_after = 0
max_bytes_per_sec = 0
CONF
ctl migrate >/dev/null

start_storaged() { # NAME PORT
    bench_spawn "storaged-$1" "$BUILD/storaged/storaged" -c "$T/stf.conf" --init \
        --root "$T/$1" --listen "127.0.0.1:$2" --log-level warn \
        ${BENCH_STORAGED_THREADS:+--threads "$BENCH_STORAGED_THREADS"}
    bench_wait_http "storaged $1" "$bench_last_pid" "http://127.0.0.1:$2/_health" 200
    eval "pid_$1=$bench_last_pid"
}
stop_storaged() { # NAME
    local var="pid_$1"
    bench_stop_pid "${!var}"
}
p1=$(bench_free_port)
p2=$(bench_free_port)
newfs peer
newfs disk
start_storaged peer "$p1"
start_storaged disk "$p2"
ctl cluster add c1 >/dev/null
ctl storage add peer --cluster c1 --uri "http://127.0.0.1:$p1" >/dev/null
ctl storage add disk --cluster c1 --uri "http://127.0.0.1:$p2" >/dev/null
bench_spawn repaird "$BUILD/repaird/repaird" -c "$T/stf.conf" --log-level info
pid_repaird=$bench_last_pid

bench_machine
echo "pids: peer storaged $pid_peer, target storaged $pid_disk, repaird $pid_repaird"
echo "data: $FILES files, $BYTES bytes requested; rsync $(rsync --version | head -1 | awk '{print $3}')"
echo "recovery settings: STF_RECOVER_PULLS=${STF_RECOVER_PULLS:-default}" \
    "STF_RECOVER_PULL_FILES=${STF_RECOVER_PULL_FILES:-default}" \
    "STF_RECOVER_LANES=${STF_RECOVER_LANES:-default}"
[ "$fresh_fs" = 1 ] && echo "file systems: a fresh ext4 ($fs_size bytes, loop device) for the peer and for every copy"
t0=$(now)
python3 "$data" fill "http://127.0.0.1:$p1" "$FILES" "$BYTES" 1
disk_bytes=$(tree_bytes "$T/peer")
echo "filled the peer in $(secs "$t0" "$(now)") s: $disk_bytes bytes"
sql "INSERT INTO buckets (name) VALUES ('bench')" >/dev/null
load_rows() {
    sql "TRUNCATE objects" >/dev/null
    python3 "$data" rows "$T/peer" 1 |
        psql -X -q "$STF_DB_URL" -c "COPY objects (bucket_id, name, internal_name, cluster_id, size, etag) FROM STDIN"
    # written long before the disk died: the narrow recovery has nothing to look at
    sql "UPDATE objects SET created_at = now() - interval '1 day', updated_at = now() - interval '1 day'" >/dev/null
}
load_rows
results=()
record() { results+=("$(printf '%-34s %9s s %9s MiB/s  %s' "$1" "$2" "$3" "$4")"); echo "RESULT $1: $2 s, $3 MiB/s $4"; }

# 1. rsync -a of the same tree, twice (the better run counts), then also with a sync after it
best_rsync=
for run in 1 2; do
    newfs rsync
    sync
    warm "$T/peer"
    t0=$(now)
    /usr/bin/time -f "rsync cpu: %U s user, %S s system" rsync -a --exclude='/.*' "$T/peer/" "$T/rsync/"
    t=$(secs "$t0" "$(now)")
    echo "rsync -a run $run: $t s"
    if [ -z "$best_rsync" ] || python3 -c "exit(0 if $t < $best_rsync else 1)"; then best_rsync=$t; fi
done
record "rsync -a (fresh copy)" "$best_rsync" "$(mib_s "$disk_bytes" "$best_rsync")" ""
newfs rsync
sync
warm "$T/peer"
t0=$(now)
rsync -a --exclude='/.*' "$T/peer/" "$T/rsync/"
sync
t=$(secs "$t0" "$(now)")
record "rsync -a + sync (durable)" "$t" "$(mib_s "$disk_bytes" "$t")" ""
if mountpoint -q "$T/rsync"; then umount "$T/rsync"; fi
rm -rf "$T/rsync" "$T/rsync.img"
sync

# 2. whole-disk recovery of a fresh (wiped) disk
ctl mark-down disk --reason "benchmark: disk replaced" >/dev/null
stop_storaged disk
newfs disk
start_storaged disk "$p2"
sync
warm "$T/peer"
cpu_start
if [ -n "${BENCH_PERF:-}" ]; then # a system-wide profile of the fresh copy into that file
    perf record -F 499 -a -g -o "$BENCH_PERF" >/dev/null 2>&1 &
    perf_pid=$!
fi
t0=$(now)
ctl repair disk --from peer --wait --json >"$T/fresh.jsonl"
t=$(secs "$t0" "$(now)")
[ -z "${BENCH_PERF:-}" ] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
cpu_report
python3 "$data" compare "$T/peer" "$T/disk"
read -r sent copy_ms <<<"$(tail -1 "$T/fresh.jsonl" | python3 -c \
    'import json,sys;d=json.load(sys.stdin);print(d["bytes_sent"],d["copy_ms"])')"
ratio=$(python3 -c "print('%.2f' % ($best_rsync / $t))")
record "repair, fresh disk" "$t" "$(mib_s "$disk_bytes" "$t")" \
    "${ratio}x rsync -a; copy phase $((copy_ms))ms; sent $sent bytes"
fresh_t=$t

# 3. a stale disk: down while 1 % of the files changed on the peer
ctl mark-down disk --reason "benchmark: stale" >/dev/null
python3 "$data" change "http://127.0.0.1:$p1" "$T/peer" 1 2
load_rows # the changes are the new truth (else the rewritten files would count as corrupt)
sync
cpu_start
t0=$(now)
ctl repair disk --from peer --wait --json >"$T/stale.jsonl"
t=$(secs "$t0" "$(now)")
cpu_report
python3 "$data" compare "$T/peer" "$T/disk"
read -r sent total <<<"$(tail -1 "$T/stale.jsonl" | python3 -c \
    'import json,sys;d=json.load(sys.stdin);print(d["bytes_sent"],d["bytes_total"])')"
pct=$(python3 -c "print('%.2f' % (100.0 * $sent / $total))")
record "repair, stale disk (1 % changed)" "$t" "$(mib_s "$total" "$t")" \
    "sent $sent of $total bytes = $pct %"
stale_pct=$pct

# 4. per-object logical recovery of the same data: one repair_object job per objects row
if [ "${BENCH_SKIP_LOGICAL:-0}" = 1 ]; then
    printf '  %s\n' "${results[@]}"
    exit 0
fi
load_rows
ctl mark-down disk --reason "benchmark: logical recovery" >/dev/null
stop_storaged disk
newfs disk
start_storaged disk "$p2"
ctl mark-spare disk >/dev/null # repair_object writes to rw, ro and spare copies
nobj=$(sql "SELECT count(*) FROM objects")
sync
warm "$T/peer"
t0=$(now)
sql "INSERT INTO jobs (kind, payload) SELECT 'repair_object', jsonb_build_object('object_id', id) FROM objects" >/dev/null
sql "SELECT id FROM jobs WHERE kind = 'repair_object' AND state = 'pending'" |
    sed 's/^/XADD stf:jobs * id /' | redis-cli -u "$STF_REDIS_URL" >/dev/null
for _ in $(seq 1 14400); do # 2 h at most
    left=$(sql "SELECT count(*) FROM jobs WHERE kind = 'repair_object' AND state IN ('pending', 'running')")
    [ "$left" = 0 ] && break
    sleep 0.5
done
[ "$left" = 0 ] || bench_die "the per-object recovery did not finish in 2 h"
t=$(secs "$t0" "$(now)")
failed=$(sql "SELECT count(*) FROM jobs WHERE kind = 'repair_object' AND state = 'failed'")
[ "$failed" = 0 ] || bench_die "$failed repair_object jobs failed"
python3 "$data" compare "$T/peer" "$T/disk" >/dev/null ||
    bench_die "the logical recovery did not rebuild the disk"
record "per-object recovery ($nobj jobs)" "$t" "$(mib_s "$disk_bytes" "$t")" \
    "$(python3 -c "print('%.1f' % ($t / $fresh_t))")x the whole-disk copy's time"

echo
echo "summary ($FILES files, $disk_bytes bytes, $(nproc) CPUs):"
printf '  %s\n' "${results[@]}"
echo "  stale disk: $stale_pct % of the disk's bytes crossed the network"
