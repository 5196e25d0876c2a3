# scripts/services.sh — start/stop a private PostgreSQL 15 and Redis 7 in a folder, on loopback.
# Sourced by scripts/up and test/harness/with-services.sh. PostgreSQL refuses to run as root, so
# as root its binaries run as the `postgres` user (or `nobody`) through runuser.

svc_pgbin() {
    local b
    b=$(pg_config --bindir 2>/dev/null || true)
    [ -x "$b/initdb" ] || b=/usr/lib/postgresql/15/bin
    echo "$b"
}

svc_free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

svc_port_free() { # PORT -> 0 if nothing listens on 127.0.0.1:PORT
    python3 -c 'import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null
}

svc_as_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u "$SVC_PGUSER" -- "$@")
    else
        "$@"
    fi
}

# svc_pg_start DIR PORT: initdb DIR/pgdata (when new) and start it; socket in DIR/pgsock.
svc_pg_start() {
    local dir=$1 port=$2 bin
    bin=$(svc_pgbin)
    SVC_PGUSER=postgres
    id -u postgres >/dev/null 2>&1 || SVC_PGUSER=nobody
    mkdir -p "$dir/pgsock"
    chmod 711 "$dir"
    if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
        rm -rf "$dir/pgdata"
        mkdir -m 700 "$dir/pgdata"
        [ "$(id -u)" = 0 ] && chown "$SVC_PGUSER" "$dir/pgdata"
        svc_as_pg "$bin/initdb" -D "$dir/pgdata" -U postgres --auth=trust -E UTF8 --locale=C \
            --no-sync --no-instructions >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    fi
    [ "$(id -u)" = 0 ] && chown "$SVC_PGUSER" "$dir/pgsock" "$dir/pgdata"
    svc_as_pg "$bin/pg_ctl" -D "$dir/pgdata" -l "$dir/pgdata/pg.log" -w -t 30 start -o \
        "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir/pgsock \
         ${SVC_PG_EXTRA:-} -c max_connections=200 -c shared_buffers=64MB" >/dev/null 2>&1
}

# svc_redis_start DIR PORT: a Redis without persistence, socket DIR/redis/redis.sock.
svc_redis_start() {
    local dir=$1 port=$2 i
    mkdir -p "$dir/redis"
    redis-server --bind 127.0.0.1 --port "$port" --unixsocket "$dir/redis/redis.sock" \
        --unixsocketperm 700 --save "" --appendonly no --dir "$dir/redis" --daemonize yes \
        --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" >/dev/null || return 1
    for i in $(seq 1 250); do
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.02
    done
    return 1
}

# svc_stop DIR: immediate stop of both; waits for the pid files to go (not kill -0: zombies).
svc_stop() {
    local dir=$1 i
    [ -f "$dir/pgdata/postmaster.pid" ] && kill -QUIT "$(head -1 "$dir/pgdata/postmaster.pid")" 2>/dev/null
    [ -f "$dir/redis/redis.pid" ] && kill -TERM "$(cat "$dir/redis/redis.pid")" 2>/dev/null
    for i in $(seq 1 500); do
        [ -e "$dir/pgdata/postmaster.pid" ] || [ -e "$dir/redis/redis.pid" ] || return 0
        sleep 0.02
    done
    return 0
}
