#!/usr/bin/env bash
# test/harness/with-services.sh — runs one command with a throw-away PostgreSQL 15 and Redis 7
# on free loopback ports in a temp folder, then stops both (also on timeout or failure).
# Exports PGHOST PGPORT PGUSER PGDATABASE PG_CONNINFO STF_DB_URL REDIS_HOST REDIS_PORT
# REDIS_SOCKET STF_REDIS_URL SVC_TMPDIR to the command. Usage: with-services.sh CMD [ARGS...]
set -euo pipefail

PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$PGBIN/initdb" ] || PGBIN=/usr/lib/postgresql/15/bin
base=${SVC_BASE:-}
if [ -z "$base" ]; then
    free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')
    if [ -n "$free_kb" ] && [ "$free_kb" -ge 524288 ]; then base=/dev/shm; else base=${TMPDIR:-/tmp}; fi
fi
T=$(mktemp -d "$base/stf.XXXXXX")
chmod 711 "$T"
mkdir "$T/pgsock" "$T/redis"
mkdir -m 700 "$T/pgdata"
if [ "$(id -u)" = 0 ]; then
    pguser=postgres
    id -u postgres >/dev/null 2>&1 || pguser=nobody
    chown "$pguser" "$T/pgsock" "$T/pgdata"
    as_pg() { (cd / && runuser -u "$pguser" -- "$@"); }
else
    as_pg() { "$@"; }
fi
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -f "$T/pgdata/postmaster.pid" ] && kill -QUIT "$(head -1 "$T/pgdata/postmaster.pid")" 2>/dev/null || true
    [ -f "$T/redis/redis.pid" ] && kill -TERM "$(cat "$T/redis/redis.pid")" 2>/dev/null || true
    for _ in $(seq 1 300); do
        [ -e "$T/pgdata/postmaster.pid" ] || [ -e "$T/redis/redis.pid" ] || break
        sleep 0.02
    done
    if [ "$rc" != 0 ] && [ -n "${SVC_SHOW_LOGS:-}" ]; then
        tail -n 30 "$T/pgdata/pg.log" "$T/redis/redis.log" >&2 2>/dev/null || true
    fi
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg "$PGBIN/initdb" -D "$T/pgdata" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
    --no-instructions >"$T/initdb.log" 2>&1 || { cat "$T/initdb.log" >&2; exit 1; }
started=0
for _ in 1 2 3 4 5; do
    PGPORT=$(free_port)
    if as_pg "$PGBIN/pg_ctl" -D "$T/pgdata" -l "$T/pgdata/pg.log" -w -t 30 start -o \
        "-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories=$T/pgsock \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100 \
         -c shared_buffers=32MB" >/dev/null 2>&1; then
        started=1
        break
    fi
done
[ "$started" = 1 ] || { echo "with-services: PostgreSQL did not start" >&2; cat "$T/pgdata/pg.log" >&2; exit 1; }
"$PGBIN/createdb" -h "$T/pgsock" -p "$PGPORT" -U postgres testdb

for _ in 1 2 3 4 5; do
    REDIS_PORT=$(free_port)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --unixsocket "$T/redis/redis.sock" \
        --unixsocketperm 700 --save "" --appendonly no --dir "$T/redis" --daemonize yes \
        --pidfile "$T/redis/redis.pid" --logfile "$T/redis/redis.log" >/dev/null
    for _ in $(seq 1 200); do
        [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
        sleep 0.02
    done
    [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
done

export PGHOST="$T/pgsock" PGPORT PGUSER=postgres PGDATABASE=testdb
export PG_CONNINFO="host=127.0.0.1 port=$PGPORT user=postgres dbname=testdb"
export STF_DB_URL="postgresql://postgres@127.0.0.1:$PGPORT/testdb"
export REDIS_HOST=127.0.0.1 REDIS_PORT REDIS_SOCKET="$T/redis/redis.sock"
export STF_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export SVC_TMPDIR="$T" SVC_PGBIN="$PGBIN" SVC_PGDATA="$T/pgdata"
"$@"
