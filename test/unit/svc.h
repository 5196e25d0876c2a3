/* test/unit/svc.h — for C tests run under harness/with-services.sh: environment lookups, shell
 * commands, and stopping/starting the test's own PostgreSQL and Redis (to test reconnects). */
#ifndef STF_TEST_SVC_H
#define STF_TEST_SVC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline const char *svc_env(const char *name)
{
    const char *v = getenv(name);

    if (!v || !*v) {
        printf("Bail out! %s is not set: run under test/harness/with-services.sh\n", name);
        exit(1);
    }
    return v;
}

/* Runs a shell command built from fmt; returns its exit status (or -1). */
static inline int svc_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int svc_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    int r;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    fflush(stdout);
    r = system(cmd);
    return r == -1 ? -1 : WEXITSTATUS(r);
}

/* PostgreSQL binaries refuse to run as root: run them as the harness's postgres user. */
static inline const char *svc_as_pg(void)
{
    static char prefix[128];

    if (geteuid() != 0)
        return "";
    snprintf(prefix, sizeof(prefix), "cd / && runuser -u %s -- ", svc_env("SVC_PGUSER"));
    return prefix;
}

static inline int svc_pg_stop(void)
{
    return svc_sh("%s'%s/pg_ctl' -D '%s' -m fast -w -t 30 stop >/dev/null", svc_as_pg(),
                  svc_env("SVC_PGBIN"), svc_env("SVC_PGDATA"));
}

static inline int svc_pg_start(void)
{
    return svc_sh("%s'%s/pg_ctl' -D '%s' -l '%s/pg.log' -w -t 30 start -o \"-c listen_addresses="
                  "127.0.0.1 -c port=%s -c unix_socket_directories=%s -c fsync=off\" >/dev/null",
                  svc_as_pg(), svc_env("SVC_PGBIN"), svc_env("SVC_PGDATA"), svc_env("SVC_PGDATA"),
                  svc_env("PGPORT"), svc_env("PGHOST"));
}

static inline void svc_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Stops Redis and waits (bounded) for its pid file to go. */
static inline int svc_redis_stop(void)
{
    char pidfile[512];

    snprintf(pidfile, sizeof(pidfile), "%s/redis/redis.pid", svc_env("SVC_TMPDIR"));
    if (svc_sh("redis-cli -p %s shutdown nosave >/dev/null 2>&1", svc_env("REDIS_PORT")) < 0)
        return -1;
    for (int i = 0; i < 500; i++) {
        if (access(pidfile, F_OK) != 0)
            return 0;
        svc_sleep_ms(20);
    }
    return -1;
}

/* Starts Redis as the harness does (same port, socket and pid file) and waits for PONG. */
static inline int svc_redis_start(void)
{
    const char *t = svc_env("SVC_TMPDIR");

    if (svc_sh("redis-server --bind 127.0.0.1 --port %s --unixsocket '%s' --unixsocketperm 700 "
               "--save '' --appendonly no --dir '%s/redis' --daemonize yes "
               "--pidfile '%s/redis/redis.pid' --logfile '%s/redis/redis.log' >/dev/null",
               svc_env("REDIS_PORT"), svc_env("REDIS_SOCKET"), t, t, t) != 0)
        return -1;
    for (int i = 0; i < 500; i++) {
        if (svc_sh("[ \"$(redis-cli -p %s ping 2>/dev/null)\" = PONG ]", svc_env("REDIS_PORT")) ==
            0)
            return 0;
        svc_sleep_ms(20);
    }
    return -1;
}

/* A TCP port on 127.0.0.1 where nothing listens (bound then closed). */
static inline int svc_dead_port(void)
{
    FILE *p = popen("python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",0));"
                    "print(s.getsockname()[1])'",
                    "r");
    int port = 0;

    if (p) {
        if (fscanf(p, "%d", &port) != 1)
            port = 0;
        pclose(p);
    }
    return port;
}

#endif
