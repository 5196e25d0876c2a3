#!/usr/bin/env bash
# test/harness/with-services.sh — runs one command with a throw-away PostgreSQL 15 and Redis 7
# on free loopback ports in a temp folder, then stops both (also on timeout or failure).
# Exports PGHOST PGPORT PGUSER PGDATABASE PG_CONNINFO STF_DB_URL REDIS_HOST REDIS_PORT
# REDIS_SOCKET STF_REDIS_URL SVC_TMPDIR SVC_PGBIN SVC_PGDATA to the command.
# Usage: with-services.sh CMD [ARGS...]
set -euo pipefail
. "$(dirname "$0")/../../scripts/services.sh"

base=${SVC_BASE:-}
if [ -z "$base" ]; then
    free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')
    if [ -n "$free_kb" ] && [ "$free_kb" -ge 524288 ]; then base=/dev/shm; else base=${TMPDIR:-/tmp}; fi
fi
T=$(mktemp -d "$base/stf.XXXXXX")

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    svc_stop "$T"
    if [ "$rc" != 0 ]; then
        echo "--- with-services: last PostgreSQL/Redis log lines ---" >&2
        tail -n 15 "$T/pgdata/pg.log" "$T/redis/redis.log" >&2 2>/dev/null || true
    fi
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export SVC_PG_EXTRA="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
started=0
for _ in 1 2 3 4 5; do
    PGPORT=$(svc_free_port)
    if svc_pg_start "$T" "$PGPORT"; then started=1; break; fi
done
[ "$started" = 1 ] || { echo "with-services: PostgreSQL did not start" >&2; exit 1; }
"$(svc_pgbin)/createdb" -h "$T/pgsock" -p "$PGPORT" -U postgres testdb
started=0
for _ in 1 2 3 4 5; do
    REDIS_PORT=$(svc_free_port)
    if svc_redis_start "$T" "$REDIS_PORT"; then started=1; break; fi
done
[ "$started" = 1 ] || { echo "with-services: Redis did not start" >&2; exit 1; }

export PGHOST="$T/pgsock" PGPORT PGUSER=postgres PGDATABASE=testdb
export PG_CONNINFO="host=127.0.0.1 port=$PGPORT user=postgres dbname=testdb"
export STF_DB_URL="postgresql://postgres@127.0.0.1:$PGPORT/testdb"
export REDIS_HOST=127.0.0.1 REDIS_PORT REDIS_SOCKET="$T/redis/redis.sock"
export STF_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export SVC_TMPDIR="$T" SVC_PGBIN="$(svc_pgbin)" SVC_PGDATA="$T/pgdata" SVC_PGUSER
"$@"
