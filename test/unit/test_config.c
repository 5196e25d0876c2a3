/* test/unit/test_config.c — stf.conf and the daemon command line: defaults, every value type
 * with its boundaries, every error kind (exact file:line and key), all-or-nothing loading,
 * path resolution ($STF_CONFIG, -c, the default), overrides and daemon_parse_args. */
#include "check.h"
#include "config.h"
#include "daemon.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/stf-test-config-XXXXXX";
static char path[256];

static void write_file(const char *p, const char *text, size_t len)
{
    FILE *f = fopen(p, "w");

    if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        printf("Bail out! cannot write %s\n", p);
        exit(1);
    }
}

static void write_conf(const char *text)
{
    write_file(path, text, strlen(text));
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool limits_equal(const struct cfg_limits *a, const struct cfg_limits *b)
{
    return a->max_connections == b->max_connections &&
           a->max_connections_per_ip == b->max_connections_per_ip &&
           a->idle_timeout_s == b->idle_timeout_s && a->connection_memory == b->connection_memory &&
           a->listen_backlog == b->listen_backlog;
}

static bool limits_are(const struct cfg_limits *l, unsigned max, unsigned per_ip, unsigned idle_s,
                       uint64_t memory, unsigned backlog)
{
    const struct cfg_limits want = {max, per_ip, idle_s, memory, backlog};

    return limits_equal(l, &want);
}

static bool cfg_equal(const struct cfg *a, const struct cfg *b)
{
    return str_eq(a->database.url, b->database.url) && str_eq(a->redis.url, b->redis.url) &&
           str_eq(a->dispatcher.listen, b->dispatcher.listen) &&
           a->dispatcher.threads == b->dispatcher.threads &&
           a->dispatcher.max_object_size == b->dispatcher.max_object_size &&
           a->dispatcher.reproxy == b->dispatcher.reproxy &&
           limits_equal(&a->dispatcher.limits, &b->dispatcher.limits) &&
           limits_equal(&a->storaged.limits, &b->storaged.limits) &&
           str_eq(a->storaged.listen, b->storaged.listen) &&
           str_eq(a->storaged.root, b->storaged.root) && a->storaged.fsync == b->storaged.fsync &&
           a->repaird.workers == b->repaird.workers &&
           a->repaird.health_interval_ms == b->repaird.health_interval_ms &&
           a->repaird.down_after == b->repaird.down_after &&
           a->repaird.max_bytes_per_sec == b->repaird.max_bytes_per_sec &&
           str_eq(a->repaird.rebalance_window, b->repaird.rebalance_window) &&
           a->repaird.rebalance_delete_delay_ms == b->repaird.rebalance_delete_delay_ms &&
           a->repaird.scrub_bytes_per_sec == b->repaird.scrub_bytes_per_sec;
}

/* A cfg that differs from the defaults, so "unchanged" means something. */
static void base_cfg(struct cfg *cfg)
{
    char err[256];

    cfg_init(cfg);
    cfg_set(cfg, "dispatcher.threads", "7", err, sizeof(err));
    cfg_set(cfg, "storaged.root", "/base/root", err, sizeof(err));
    cfg_set(cfg, "repaird.rebalance_window", "02:00-03:00", err, sizeof(err));
    cfg_set(cfg, "storaged.idle_timeout", "7s", err, sizeof(err));
    cfg_set(cfg, "dispatcher.max_connections", "77", err, sizeof(err));
}

/* Loads text; checks the return code, the exact message ("PATH:LINE: msg", or "PATH: msg"
 * when line is 0) and that the cfg did not change. */
static void expect_error(const char *text, int want_r, unsigned line, const char *want_msg)
{
    struct cfg cfg, before;
    char err[1024], want[1024];
    int r;

    write_conf(text);
    base_cfg(&cfg);
    base_cfg(&before);
    err[0] = '\0';
    r = cfg_load(&cfg, path, err, sizeof(err));
    if (line > 0)
        snprintf(want, sizeof(want), "%s:%u: %s", path, line, want_msg);
    else
        snprintf(want, sizeof(want), "%s: %s", path, want_msg);
    CHECK(r == want_r, "return %d (want %d) for: %s", r, want_r, want_msg);
    CHECK_STR(err, want, "message");
    CHECK(cfg_equal(&cfg, &before), "cfg unchanged after: %s", want_msg);
    cfg_release(&cfg);
    cfg_release(&before);
}

static void test_defaults(void)
{
    struct cfg cfg;

    cfg_init(&cfg);
    CHECK_STR(cfg.database.url, "postgresql://stf@127.0.0.1:5432/stf", "default database.url");
    CHECK_STR(cfg.redis.url, "redis://127.0.0.1:6379/0", "default redis.url");
    CHECK_STR(cfg.dispatcher.listen, "127.0.0.1:8080", "default dispatcher.listen");
    CHECK(cfg.dispatcher.threads == 4, "default dispatcher.threads");
    CHECK(cfg.dispatcher.max_object_size == 5ULL << 30, "default max_object_size 5G");
    CHECK(cfg.dispatcher.reproxy == REPROXY_OFF, "default reproxy off");
    CHECK_STR(cfg.storaged.listen, "127.0.0.1:9001", "default storaged.listen");
    CHECK_STR(cfg.storaged.root, "/var/lib/stf/disk1", "default storaged.root");
    CHECK(cfg.storaged.fsync, "default fsync on");
    CHECK(limits_are(&cfg.dispatcher.limits, 20000, 0, 60, 64 << 10, 4096),
          "default dispatcher limits 20000, 0, 60s, 64K, 4096");
    CHECK(limits_are(&cfg.storaged.limits, 0, 0, 60, 32 << 10, 1024),
          "default storaged limits 0 (from RLIMIT_NOFILE), 0, 60s, 32K, 1024");
    CHECK(cfg.repaird.workers == 4, "default workers");
    CHECK(cfg.repaird.health_interval_ms == 5000, "default health_interval 5s");
    CHECK(cfg.repaird.down_after == 3, "default down_after");
    CHECK(cfg.repaird.max_bytes_per_sec == 64ULL << 20, "default max_bytes_per_sec 64M");
    CHECK_STR(cfg.repaird.rebalance_window, "01:00-05:00", "default rebalance_window");
    CHECK(cfg.repaird.rebalance_delete_delay_ms == 30000, "default rebalance_delete_delay 30s");
    CHECK(cfg.repaird.scrub_bytes_per_sec == 1ULL << 20, "default scrub_bytes_per_sec 1M");
    cfg_init(&cfg); /* again on defaults: nothing allocated, nothing leaks */
    cfg_release(&cfg);
    CHECK(cfg.database.url == NULL && cfg.storaged.root == NULL, "release clears the strings");
    cfg_release(&cfg);
    CHECK(1, "release twice is safe");
}

static void test_full_file(void)
{
    struct cfg cfg;
    char err[512] = "";
    int r;

    write_conf("\xEF\xBB\xBF; a full file\r\n"
               "# hash comment\n"
               "\n"
               "   [database]   ; section comment\n"
               "url = \"host=/run/pg dbname=stf user=stf\"   ; quoted, spaces kept\n"
               "[redis]\n"
               "  url=unix:///run/redis.sock?db=2\n"
               "[dispatcher]\n"
               "listen = [::1]:8081\r\n"
               "threads = 256\n"
               "max_object_size = 1T # inline hash comment\n"
               "reproxy = X-Accel-Redirect\n"
               "max_connections = 1000000\n"
               "max_connections_per_ip = 1000000\n"
               "idle_timeout = 24h\n"
               "connection_memory = 16M\n"
               "listen_backlog = 65535\n"
               "[storaged]\n"
               "listen = :9009\n"
               "root = /srv/disk #1 ; the first\n"
               "fsync = off\n"
               "max_connections = 0\n"
               "max_connections_per_ip = 3\n"
               "idle_timeout = 0\n"
               "connection_memory = 8K\n"
               "listen_backlog = 1\n"
               "[repaird]\n"
               "workers = 1\n"
               "health_interval = 250ms\n"
               "down_after = 0\n"
               "max_bytes_per_sec = 0\n"
               "rebalance_window = \"22:00-02:00\"\n"
               "rebalance_delete_delay = 0\n"
               "scrub_bytes_per_sec = 0\n");
    cfg_init(&cfg);
    r = cfg_load(&cfg, path, err, sizeof(err));
    CHECK(r == 0, "full file loads (%s)", err);
    CHECK_STR(cfg.database.url, "host=/run/pg dbname=stf user=stf", "quoted url");
    CHECK_STR(cfg.redis.url, "unix:///run/redis.sock?db=2", "unix redis url");
    CHECK_STR(cfg.dispatcher.listen, "[::1]:8081", "ipv6 listen, CRLF line");
    CHECK(cfg.dispatcher.threads == 256, "threads at max");
    CHECK(cfg.dispatcher.max_object_size == 1ULL << 40, "1T");
    CHECK(cfg.dispatcher.reproxy == REPROXY_X_ACCEL_REDIRECT, "reproxy, any case");
    CHECK_STR(cfg.storaged.listen, ":9009", "listen with empty host");
    CHECK_STR(cfg.storaged.root, "/srv/disk", "'#' after blank starts a comment");
    CHECK(!cfg.storaged.fsync, "fsync off");
    CHECK(limits_are(&cfg.dispatcher.limits, 1000000, 1000000, 24 * 3600, 16 << 20, 65535),
          "dispatcher limits at their maxima");
    CHECK(limits_are(&cfg.storaged.limits, 0, 3, 0, 8 << 10, 1),
          "storaged limits at their minima (max_connections 0 = from the open-file limit)");
    CHECK(cfg.repaird.workers == 1, "workers at min");
    CHECK(cfg.repaird.health_interval_ms == 250, "250ms");
    CHECK(cfg.repaird.down_after == 0, "down_after 0 = never");
    CHECK(cfg.repaird.max_bytes_per_sec == 0, "0 = unlimited");
    CHECK_STR(cfg.repaird.rebalance_window, "22:00-02:00", "window wrapping midnight");
    CHECK(cfg.repaird.rebalance_delete_delay_ms == 0, "rebalance_delete_delay 0 = at once");
    CHECK(cfg.repaird.scrub_bytes_per_sec == 0, "scrub_bytes_per_sec 0 = no scrub");

    /* A second file over the first: only what it names changes; replaced strings are freed. */
    write_conf("[storaged]\nroot=/other#not-a-comment\n[dispatcher]\nreproxy = x-reproxy-url\n"
               "[database]\nurl = postgresql://u@h/db?sslmode=disable ;c\n");
    r = cfg_load(&cfg, path, err, sizeof(err));
    CHECK(r == 0, "second file loads (%s)", err);
    CHECK_STR(cfg.storaged.root, "/other#not-a-comment", "'#' inside a word is kept");
    CHECK(cfg.dispatcher.reproxy == REPROXY_X_REPROXY_URL, "x-reproxy-url");
    CHECK_STR(cfg.database.url, "postgresql://u@h/db?sslmode=disable", "postgres URI");
    CHECK(cfg.dispatcher.threads == 256 && !cfg.storaged.fsync, "other keys kept");

    write_conf("[storaged]\nroot = \"/a ; b # c\"  # comment\n[repaird]\nhealth_interval = 3\n"
               "rebalance_window = 00:00-24:00\n");
    r = cfg_load(&cfg, path, err, sizeof(err));
    CHECK(r == 0, "quotes protect ; and # (%s)", err);
    CHECK_STR(cfg.storaged.root, "/a ; b # c", "quoted value with comment characters");
    CHECK(cfg.repaird.health_interval_ms == 3000, "bare duration is seconds");
    CHECK_STR(cfg.repaird.rebalance_window, "00:00-24:00", "always window");

    write_conf("");
    CHECK(cfg_load(&cfg, path, err, sizeof(err)) == 0, "empty file loads");
    write_conf("[database]\n[redis]\n; only sections\n");
    CHECK(cfg_load(&cfg, path, err, sizeof(err)) == 0, "sections without keys load");
    write_conf("[repaird]\nworkers = 2");
    CHECK(cfg_load(&cfg, path, err, sizeof(err)) == 0 && cfg.repaird.workers == 2,
          "last line without newline");
    cfg_release(&cfg);
}

/* The connection limits: every bound of every key, in both sections. */
static void test_limit_errors(void)
{
    expect_error("[dispatcher]\nmax_connections = 0\n", -ERANGE, 2,
                 "bad value for dispatcher.max_connections: '0' (out of range: an integer from 1 "
                 "to 1000000)");
    expect_error("[storaged]\nfsync = on\nmax_connections = 1000001\n", -ERANGE, 3,
                 "bad value for storaged.max_connections: '1000001' (out of range: an integer "
                 "from 0 (derived from the open-file limit) to 1000000)");
    expect_error("[dispatcher]\nmax_connections_per_ip = -1\n", -EINVAL, 2,
                 "bad value for dispatcher.max_connections_per_ip: '-1' (an integer from 0 "
                 "(unlimited) to 1000000)");
    expect_error("[storaged]\nmax_connections_per_ip = 1000001\n", -ERANGE, 2,
                 "bad value for storaged.max_connections_per_ip: '1000001' (out of range: an "
                 "integer from 0 (unlimited) to 1000000)");
    expect_error("[dispatcher]\nidle_timeout = 1500ms\n", -EINVAL, 2,
                 "bad value for dispatcher.idle_timeout: '1500ms' (a duration in whole seconds "
                 "from 0 (never) to 24h such as 30s, 2m, 1h)");
    expect_error("[storaged]\nidle_timeout = 999ms\n", -EINVAL, 2,
                 "bad value for storaged.idle_timeout: '999ms' (a duration in whole seconds "
                 "from 0 (never) to 24h such as 30s, 2m, 1h)");
    expect_error("[storaged]\nidle_timeout = 25h\n", -ERANGE, 2,
                 "bad value for storaged.idle_timeout: '25h' (out of range: a duration in whole "
                 "seconds from 0 (never) to 24h such as 30s, 2m, 1h)");
    expect_error("[dispatcher]\nconnection_memory = 8191\n", -ERANGE, 2,
                 "bad value for dispatcher.connection_memory: '8191' (out of range: a size from "
                 "8K to 16M such as 32K, 64K, 1M)");
    expect_error("[storaged]\nconnection_memory = 17M\n", -ERANGE, 2,
                 "bad value for storaged.connection_memory: '17M' (out of range: a size from 8K "
                 "to 16M such as 32K, 64K, 1M)");
    expect_error("[storaged]\nconnection_memory = 32KB\n", -EINVAL, 2,
                 "bad value for storaged.connection_memory: '32KB' (a size from 8K to 16M such "
                 "as 32K, 64K, 1M)");
    expect_error("[dispatcher]\nlisten_backlog = 0\n", -ERANGE, 2,
                 "bad value for dispatcher.listen_backlog: '0' (out of range: an integer from 1 "
                 "to 65535)");
    expect_error("[storaged]\nlisten_backlog = 65536\n", -ERANGE, 2,
                 "bad value for storaged.listen_backlog: '65536' (out of range: an integer from "
                 "1 to 65535)");
}

static void test_limits_set(void)
{
    struct cfg cfg;
    char err[512] = "", buf[160];

    cfg_init(&cfg);
    CHECK(cfg_set(&cfg, "dispatcher.idle_timeout", "2m", err, sizeof(err)) == 0 &&
              cfg.dispatcher.limits.idle_timeout_s == 120,
          "idle_timeout 2m = 120 s (%s)", err);
    CHECK(cfg_set(&cfg, "storaged.idle_timeout", "3000ms", err, sizeof(err)) == 0 &&
              cfg.storaged.limits.idle_timeout_s == 3,
          "idle_timeout 3000ms = 3 s (%s)", err);
    CHECK(cfg_set(&cfg, "storaged.idle_timeout", "2", err, sizeof(err)) == 0 &&
              cfg.storaged.limits.idle_timeout_s == 2,
          "idle_timeout: a bare number is seconds (%s)", err);
    CHECK(cfg_set(&cfg, "storaged.idle_timeout", "1ms", err, sizeof(err)) == -EINVAL &&
              cfg.storaged.limits.idle_timeout_s == 2,
          "idle_timeout 1ms refused, value kept");
    CHECK_STR(err,
              "bad value for storaged.idle_timeout: '1ms' (a duration in whole seconds from 0 "
              "(never) to 24h such as 30s, 2m, 1h)",
              "cfg_set message without a line");
    CHECK(cfg_set(&cfg, "storaged.max_connections", "5", err, sizeof(err)) == 0 &&
              cfg.storaged.limits.max_connections == 5 &&
              cfg.dispatcher.limits.max_connections == 20000,
          "the sections' limits are separate");
    CHECK_STR(cfg_limits_format(&cfg.storaged.limits, buf, sizeof(buf)),
              "max_connections=5 max_connections_per_ip=0 idle_timeout=2s "
              "connection_memory=32768 listen_backlog=1024",
              "cfg_limits_format");
    cfg_release(&cfg);
}

static void test_errors(void)
{
    char text[8192];
    char want[1024];

    expect_error("[dispatcher]\nthreads = 9\n[dispatch]\n", -EINVAL, 3,
                 "unknown section [dispatch] (expected database, redis, dispatcher, storaged or "
                 "repaird)");
    expect_error("[dispatcher]\nthreads = 9\n\n; c\nlistn = 1.2.3.4:1\n", -EINVAL, 5,
                 "unknown key 'listn' in [dispatcher] (known: listen, threads, max_object_size, "
                 "reproxy, max_connections, max_connections_per_ip, idle_timeout, "
                 "connection_memory, listen_backlog)");
    expect_error("[storaged]\nurl = x\n", -EINVAL, 2,
                 "unknown key 'url' in [storaged] (known: listen, root, fsync, max_connections, "
                 "max_connections_per_ip, idle_timeout, connection_memory, listen_backlog)");
    expect_error("[Dispatcher]\n", -EINVAL, 1,
                 "unknown section [Dispatcher] (expected database, redis, dispatcher, storaged or "
                 "repaird)");
    expect_error("[repaird]\nworkers = 2\nworkers = 3\n", -EINVAL, 3,
                 "duplicate key 'workers' in [repaird] (first set on line 2)");
    expect_error("[repaird]\nworkers = 2\n[storaged]\n[repaird]\n", -EINVAL, 4,
                 "duplicate section [repaird] (first on line 1)");
    expect_error("; top\nurl = postgresql://x\n[database]\n", -EINVAL, 2,
                 "key 'url' outside any section (put it under [section])");
    expect_error("[storaged]\nfsync = on\nfsync on\n", -EINVAL, 3,
                 "line without '=' (expected 'key = value', '[section]' or a comment)");
    expect_error("[storaged]\n = on\n", -EINVAL, 2, "missing key before '='");
    expect_error("[storaged\nroot=/x\n", -EINVAL, 1,
                 "malformed section header (expected '[name]')");
    expect_error("[storaged] root=/x\n", -EINVAL, 1,
                 "malformed section header (expected '[name]')");
    expect_error("[storaged]\nroot = \"/x\n", -EINVAL, 2,
                 "bad value for storaged.root: unterminated double quote");
    expect_error("[storaged]\nroot = \"/x\" y\n", -EINVAL, 2,
                 "bad value for storaged.root: text after the closing quote");
    expect_error("[storaged]\nroot = /x\n\x01\n", -EINVAL, 3, "control character 0x01 in line");
    write_file(path, "[storaged]\nroot = /x\0y\n", 22);
    {
        struct cfg cfg;
        char err[512];

        cfg_init(&cfg);
        snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
        CHECK(cfg_load(&cfg, path, err, sizeof(err)) == -EINVAL, "NUL byte refused");
        CHECK_STR(err, want, "NUL byte message");
        CHECK_STR(cfg.storaged.root, "/var/lib/stf/disk1", "NUL byte: unchanged");
        cfg_release(&cfg);
    }

    /* Line length: 4096 bytes is fine, 4097 is an error naming the line. */
    memset(text, 0, sizeof(text));
    strcpy(text, "[storaged]\n;");
    memset(text + strlen(text), 'x', 4095);
    strcat(text, "\nroot = /long-ok\n");
    {
        struct cfg cfg;
        char err[512] = "";

        write_conf(text);
        cfg_init(&cfg);
        CHECK(cfg_load(&cfg, path, err, sizeof(err)) == 0 &&
                  check_streq(cfg.storaged.root, "/long-ok"),
              "a 4096-byte line is accepted (%s)", err);
        cfg_release(&cfg);
    }
    memset(text, 0, sizeof(text));
    strcpy(text, "[storaged]\nroot = /x\n;");
    memset(text + strlen(text), 'x', 4096);
    strcat(text, "\n");
    expect_error(text, -EINVAL, 3, "line longer than 4096 bytes");

    /* Bad values, one per type, with what was expected. */
    expect_error("[dispatcher]\nthreads = 9\nmax_object_size = 5X\n", -EINVAL, 3,
                 "bad value for dispatcher.max_object_size: '5X' (a size such as 512K, 64M, 5G, "
                 "at least 1)");
    expect_error("[dispatcher]\nmax_object_size = 0\n", -ERANGE, 2,
                 "bad value for dispatcher.max_object_size: '0' (out of range: a size such as "
                 "512K, 64M, 5G, at least 1)");
    expect_error("[dispatcher]\nmax_object_size = 16777216T\n", -ERANGE, 2,
                 "bad value for dispatcher.max_object_size: '16777216T' (out of range: a size "
                 "such as 512K, 64M, 5G, at least 1)");
    expect_error("[dispatcher]\nthreads = 0\n", -ERANGE, 2,
                 "bad value for dispatcher.threads: '0' (out of range: an integer from 1 to 256)");
    expect_error("[dispatcher]\nthreads = 257\n", -ERANGE, 2,
                 "bad value for dispatcher.threads: '257' (out of range: an integer from 1 to "
                 "256)");
    expect_error("[dispatcher]\nthreads = four\n", -EINVAL, 2,
                 "bad value for dispatcher.threads: 'four' (an integer from 1 to 256)");
    expect_error("[dispatcher]\nthreads =\n", -EINVAL, 2,
                 "bad value for dispatcher.threads: '' (an integer from 1 to 256)");
    expect_error("[dispatcher]\nthreads = ; nothing\n", -EINVAL, 2,
                 "bad value for dispatcher.threads: '' (an integer from 1 to 256)");
    expect_error("[dispatcher]\nreproxy = nginx\n", -EINVAL, 2,
                 "bad value for dispatcher.reproxy: 'nginx' (off, x-accel-redirect or "
                 "x-reproxy-url)");
    expect_error("[dispatcher]\nlisten = localhost:8080\n", -EINVAL, 2,
                 "bad value for dispatcher.listen: 'localhost:8080' (HOST:PORT with a numeric "
                 "IPv4 or [IPv6] host, e.g. 127.0.0.1:8080 or :8080)");
    expect_error("[storaged]\nlisten = 127.0.0.1:70000\n", -EINVAL, 2,
                 "bad value for storaged.listen: '127.0.0.1:70000' (HOST:PORT with a numeric "
                 "IPv4 or [IPv6] host, e.g. 127.0.0.1:8080 or :8080)");
    expect_error("[storaged]\nfsync = maybe\n", -EINVAL, 2,
                 "bad value for storaged.fsync: 'maybe' (on/off, true/false, yes/no or 1/0)");
    test_limit_errors();
    expect_error("[storaged]\nroot = \"\"\n", -EINVAL, 2,
                 "bad value for storaged.root: '' (a directory path)");
    expect_error("[repaird]\nworkers = 2\nhealth_interval = 5x\n", -EINVAL, 3,
                 "bad value for repaird.health_interval: '5x' (a duration from 10ms to 24h such "
                 "as 250ms, 5s, 2m, 1h)");
    expect_error("[repaird]\nhealth_interval = 9ms\n", -ERANGE, 2,
                 "bad value for repaird.health_interval: '9ms' (out of range: a duration from "
                 "10ms to 24h such as 250ms, 5s, 2m, 1h)");
    expect_error("[repaird]\nhealth_interval = 25h\n", -ERANGE, 2,
                 "bad value for repaird.health_interval: '25h' (out of range: a duration from "
                 "10ms to 24h such as 250ms, 5s, 2m, 1h)");
    expect_error("[repaird]\ndown_after = 1000001\n", -ERANGE, 2,
                 "bad value for repaird.down_after: '1000001' (out of range: an integer from 0 "
                 "(never) to 1000000)");
    expect_error("[repaird]\nmax_bytes_per_sec = 64MB\n", -EINVAL, 2,
                 "bad value for repaird.max_bytes_per_sec: '64MB' (a size such as 512K, 64M, 1G; "
                 "0 = unlimited)");
    expect_error("[repaird]\nrebalance_window = 25:00-01:00\n", -ERANGE, 2,
                 "bad value for repaird.rebalance_window: '25:00-01:00' (out of range: HH:MM-HH:MM "
                 "such as 01:00-05:00 (may wrap midnight; 00:00-24:00 = always))");
    expect_error("[repaird]\nrebalance_delete_delay = 25h\n", -ERANGE, 2,
                 "bad value for repaird.rebalance_delete_delay: '25h' (out of range: a duration "
                 "from 0 to 24h such as 30s, 5m)");
    expect_error("[repaird]\nscrub_bytes_per_sec = 1MB/s\n", -EINVAL, 2,
                 "bad value for repaird.scrub_bytes_per_sec: '1MB/s' (a size such as 512K, 1M, "
                 "64M; 0 = no scrub)");
    expect_error("[repaird]\nrebalance_window = 01:00\n", -EINVAL, 2,
                 "bad value for repaird.rebalance_window: '01:00' (HH:MM-HH:MM such as "
                 "01:00-05:00 (may wrap midnight; 00:00-24:00 = always))");
    expect_error("[database]\nurl =\n", -EINVAL, 2,
                 "bad value for database.url: empty (a libpq connection string or URI, e.g. "
                 "postgresql://stf@127.0.0.1:5432/stf)");
    expect_error("[database]\nurl = host=x port\n", -EINVAL, 2,
                 "bad value for database.url (missing \"=\" after \"...\" in connection info "
                 "string; expected a libpq connection string or URI, e.g. "
                 "postgresql://stf@127.0.0.1:5432/stf)");
    /* libpq quotes the URI, password included: the quoted text is left out (fuzz_config) */
    expect_error("[database]\nurl = postgresql://stf:secret@[::1\n", -EINVAL, 2,
                 "bad value for database.url (end of string reached when looking for matching "
                 "\"]\" in IPv6 host address in URI: \"...\"; expected a libpq connection string "
                 "or URI, e.g. postgresql://stf@127.0.0.1:5432/stf)");
    expect_error("[redis]\nurl = \"\"\n", -EINVAL, 2,
                 "bad value for redis.url: empty (redis://HOST:PORT[/DB] or "
                 "unix:///path/to/redis.sock)");
    expect_error("[redis]\nurl = http://secret@x:6379\n", -EINVAL, 2,
                 "bad value for redis.url (redis://HOST:PORT[/DB] or unix:///path/to/redis.sock)");

    /* A long bad value is cut in the message. */
    memset(text, 0, sizeof(text));
    strcpy(text, "[storaged]\nfsync = ");
    memset(text + strlen(text), 'y', 100);
    strcat(text, "\n");
    snprintf(want, sizeof(want),
             "bad value for storaged.fsync: '%.80s...' (on/off, "
             "true/false, yes/no or 1/0)",
             text + 19);
    expect_error(text, -EINVAL, 2, want);

    /* Files that cannot be read. */
    {
        struct cfg cfg, before;
        char err[512], p[300];

        base_cfg(&cfg);
        base_cfg(&before);
        snprintf(p, sizeof(p), "%s/missing.conf", dir);
        snprintf(want, sizeof(want), "%s: cannot open: %s", p, strerror(ENOENT));
        CHECK(cfg_load(&cfg, p, err, sizeof(err)) == -ENOENT, "explicit missing file: ENOENT");
        CHECK_STR(err, want, "missing file message");
        CHECK(cfg_load_file(&cfg, p, true, err, sizeof(err)) == 0 && cfg_equal(&cfg, &before),
              "missing_ok: missing file leaves cfg as it was");
        snprintf(want, sizeof(want), "%s: cannot read: %s", dir, strerror(EISDIR));
        CHECK(cfg_load(&cfg, dir, err, sizeof(err)) == -EISDIR, "a directory: EISDIR");
        CHECK_STR(err, want, "directory message");
        CHECK(cfg_equal(&cfg, &before), "unreadable files change nothing");
        CHECK(cfg_load(&cfg, p, NULL, 0) == -ENOENT, "NULL err buffer is allowed");
        cfg_release(&cfg);
        cfg_release(&before);
    }
}

static void test_parsers(void)
{
    uint64_t v = 0;
    unsigned u = 0, a = 0, b = 0;
    bool t = false;

    CHECK(parse_size("0", &v) == 0 && v == 0, "size 0");
    CHECK(parse_size("123", &v) == 0 && v == 123, "size bytes");
    CHECK(parse_size("512K", &v) == 0 && v == 512 * 1024, "512K");
    CHECK(parse_size("1k", &v) == 0 && v == 1024, "1k lower case");
    CHECK(parse_size("64M", &v) == 0 && v == 64ULL << 20, "64M");
    CHECK(parse_size("5G", &v) == 0 && v == 5ULL << 30, "5G");
    CHECK(parse_size("1T", &v) == 0 && v == 1ULL << 40, "1T");
    CHECK(parse_size("18446744073709551615", &v) == 0 && v == UINT64_MAX, "size max bytes");
    CHECK(parse_size("18446744073709551616", &v) == -ERANGE, "size max+1 bytes: ERANGE");
    CHECK(parse_size("99999999999999999999999999", &v) == -ERANGE, "huge number: ERANGE");
    CHECK(parse_size("16777215T", &v) == 0 && v == 16777215ULL << 40, "largest T");
    CHECK(parse_size("16777216T", &v) == -ERANGE, "T overflow");
    CHECK(parse_size("17179869183G", &v) == 0 && v == 17179869183ULL << 30, "largest G");
    CHECK(parse_size("17179869184G", &v) == -ERANGE, "G overflow");
    CHECK(parse_size("17592186044416M", &v) == -ERANGE, "M overflow");
    CHECK(parse_size("18014398509481984K", &v) == -ERANGE, "K overflow");
    v = 42;
    CHECK(parse_size("", &v) == -EINVAL && v == 42, "empty size refused, untouched");
    CHECK(parse_size("K", &v) == -EINVAL, "unit without number");
    CHECK(parse_size("1KB", &v) == -EINVAL, "1KB refused");
    CHECK(parse_size("1P", &v) == -EINVAL, "unknown unit");
    CHECK(parse_size("-1", &v) == -EINVAL, "negative");
    CHECK(parse_size("+1", &v) == -EINVAL, "plus sign");
    CHECK(parse_size(" 1", &v) == -EINVAL, "leading blank");
    CHECK(parse_size("1 K", &v) == -EINVAL, "blank before unit");
    CHECK(parse_size("1.5G", &v) == -EINVAL, "fraction");
    CHECK(parse_size("0x10", &v) == -EINVAL, "hex");
    CHECK(parse_size("99999999999999999999999X", &v) == -EINVAL, "garbage wins over range");

    CHECK(parse_duration_ms("250ms", &v) == 0 && v == 250, "250ms");
    CHECK(parse_duration_ms("5s", &v) == 0 && v == 5000, "5s");
    CHECK(parse_duration_ms("5", &v) == 0 && v == 5000, "bare = seconds");
    CHECK(parse_duration_ms("2m", &v) == 0 && v == 120000, "2m");
    CHECK(parse_duration_ms("1h", &v) == 0 && v == 3600000, "1h");
    CHECK(parse_duration_ms("0", &v) == 0 && v == 0, "0");
    CHECK(parse_duration_ms("10MS", &v) == 0 && v == 10, "unit case-insensitive");
    CHECK(parse_duration_ms("18446744073709551615ms", &v) == 0 && v == UINT64_MAX, "max ms");
    CHECK(parse_duration_ms("18446744073709551615s", &v) == -ERANGE, "s overflow");
    CHECK(parse_duration_ms("5124095576030h", &v) == 0 && v == 5124095576030ULL * 3600000,
          "largest h");
    CHECK(parse_duration_ms("5124095576031h", &v) == -ERANGE, "h overflow");
    CHECK(parse_duration_ms("307445734561825m", &v) == 0 && v == 307445734561825ULL * 60000,
          "largest m");
    CHECK(parse_duration_ms("307445734561826m", &v) == -ERANGE, "m overflow");
    CHECK(parse_duration_ms("", &v) == -EINVAL, "empty duration");
    CHECK(parse_duration_ms("ms", &v) == -EINVAL, "unit alone");
    CHECK(parse_duration_ms("5x", &v) == -EINVAL, "unknown unit");
    CHECK(parse_duration_ms("5 s", &v) == -EINVAL, "blank before unit");
    CHECK(parse_duration_ms("1m30s", &v) == -EINVAL, "compound refused");
    CHECK(parse_duration_ms("-5s", &v) == -EINVAL, "negative duration");

    const char *yes[] = {"on", "true", "yes", "1", "ON", "True", "YES"};
    const char *no[] = {"off", "false", "no", "0", "OFF", "False", "No"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        t = false;
        CHECK(parse_bool(yes[i], &t) == 0 && t, "bool true: %s", yes[i]);
        t = true;
        CHECK(parse_bool(no[i], &t) == 0 && !t, "bool false: %s", no[i]);
    }
    CHECK(parse_bool("", &t) == -EINVAL, "empty bool");
    CHECK(parse_bool("2", &t) == -EINVAL, "bool 2");
    CHECK(parse_bool("onn", &t) == -EINVAL, "bool onn");
    CHECK(parse_bool("y", &t) == -EINVAL, "bool y");

    CHECK(parse_uint("1", 1, 256, &u) == 0 && u == 1, "uint min");
    CHECK(parse_uint("256", 1, 256, &u) == 0 && u == 256, "uint max");
    u = 9;
    CHECK(parse_uint("0", 1, 256, &u) == -ERANGE && u == 9, "uint min-1: ERANGE, untouched");
    CHECK(parse_uint("257", 1, 256, &u) == -ERANGE, "uint max+1");
    CHECK(parse_uint("4294967295", 0, 4294967295U, &u) == 0 && u == 4294967295U, "UINT_MAX");
    CHECK(parse_uint("4294967296", 0, 4294967295U, &u) == -ERANGE, "UINT_MAX+1");
    CHECK(parse_uint("99999999999999999999999", 0, 4294967295U, &u) == -ERANGE, "u64 overflow");
    CHECK(parse_uint("007", 0, 10, &u) == 0 && u == 7, "leading zeros");
    CHECK(parse_uint("", 0, 10, &u) == -EINVAL, "empty uint");
    CHECK(parse_uint("1a", 0, 10, &u) == -EINVAL, "trailing garbage");
    CHECK(parse_uint("-1", 0, 10, &u) == -EINVAL, "negative uint");
    CHECK(parse_uint("+1", 0, 10, &u) == -EINVAL, "plus uint");
    CHECK(parse_uint("1 ", 0, 10, &u) == -EINVAL, "trailing blank");

    CHECK(parse_window("01:00-05:00", &a, &b) == 0 && a == 60 && b == 300, "window");
    CHECK(parse_window("22:30-02:15", &a, &b) == 0 && a == 1350 && b == 135, "wrapping window");
    CHECK(parse_window("1:00-5:00", &a, &b) == 0 && a == 60 && b == 300, "one-digit hours");
    CHECK(parse_window("00:00-24:00", &a, &b) == 0 && a == 0 && b == 1440, "always");
    CHECK(parse_window("23:59-00:00", &a, &b) == 0 && a == 1439 && b == 0, "last minute");
    CHECK(parse_window("01:00 - 05:00", &a, &b) == 0 && a == 60 && b == 300, "blanks at '-'");
    a = 7;
    CHECK(parse_window("24:00-01:00", &a, &b) == -ERANGE && a == 7, "24:00 only as end");
    CHECK(parse_window("00:00-24:01", &a, &b) == -ERANGE, "past 24:00");
    CHECK(parse_window("01:60-02:00", &a, &b) == -ERANGE, "minute 60");
    CHECK(parse_window("25:00-02:00", &a, &b) == -ERANGE, "hour 25");
    CHECK(parse_window("01:00-01:00", &a, &b) == -EINVAL, "empty window");
    CHECK(parse_window("0100-0500", &a, &b) == -EINVAL, "no colon");
    CHECK(parse_window("01:00", &a, &b) == -EINVAL, "no end");
    CHECK(parse_window("01:00-05:00x", &a, &b) == -EINVAL, "trailing garbage");
    CHECK(parse_window("001:00-02:00", &a, &b) == -EINVAL, "three-digit hour");
    CHECK(parse_window("01:0-02:00", &a, &b) == -EINVAL, "one-digit minute");
    CHECK(parse_window("", &a, &b) == -EINVAL, "empty window text");
}

static void test_set(void)
{
    struct cfg cfg;
    char err[512], big[CFG_LINE_MAX + 2];

    base_cfg(&cfg);
    CHECK(cfg_set(&cfg, "storaged.listen", "127.0.0.1:19001", err, sizeof(err)) == 0 &&
              check_streq(cfg.storaged.listen, "127.0.0.1:19001"),
          "set storaged.listen");
    CHECK(cfg_set(&cfg, "dispatcher.listen", "[::1]:0", err, sizeof(err)) == 0 &&
              check_streq(cfg.dispatcher.listen, "[::1]:0"),
          "set dispatcher.listen");
    CHECK(cfg_set(&cfg, "storaged.root", "/tmp/x", err, sizeof(err)) == 0 &&
              check_streq(cfg.storaged.root, "/tmp/x"),
          "set storaged.root (replacing a set string)");
    CHECK(cfg_set(&cfg, "dispatcher.max_object_size", "10M", err, sizeof(err)) == 0 &&
              cfg.dispatcher.max_object_size == 10ULL << 20,
          "set a size");
    CHECK(cfg_set(&cfg, "repaird.health_interval", "2m", err, sizeof(err)) == 0 &&
              cfg.repaird.health_interval_ms == 120000,
          "set a duration");
    CHECK(cfg_set(&cfg, "storaged.fsync", "no", err, sizeof(err)) == 0 && !cfg.storaged.fsync,
          "set a bool");
    CHECK(cfg_set(&cfg, "dispatcher.reproxy", "x-reproxy-url", err, sizeof(err)) == 0 &&
              cfg.dispatcher.reproxy == REPROXY_X_REPROXY_URL,
          "set reproxy");
    CHECK(cfg_set(&cfg, "redis.url", "redis://:pw@10.0.0.1:6380/3", err, sizeof(err)) == 0,
          "set redis.url");
    /* a value from a command line is echoed without its control characters (no escape
     * sequence reaches the operator's terminal) */
    CHECK(cfg_set(&cfg, "dispatcher.threads", "4\x1b[2J\n", err, sizeof(err)) == -EINVAL,
          "threads with an escape sequence refused");
    CHECK_STR(err, "bad value for dispatcher.threads: '4?[2J?' (an integer from 1 to 256)",
              "control characters replaced in the message");

    {
        struct cfg snap;

        base_cfg(&snap);
        cfg_set(&snap, "storaged.listen", "127.0.0.1:19001", err, sizeof(err));
        cfg_set(&snap, "dispatcher.listen", "[::1]:0", err, sizeof(err));
        cfg_set(&snap, "storaged.root", "/tmp/x", err, sizeof(err));
        cfg_set(&snap, "dispatcher.max_object_size", "10M", err, sizeof(err));
        cfg_set(&snap, "repaird.health_interval", "2m", err, sizeof(err));
        cfg_set(&snap, "storaged.fsync", "no", err, sizeof(err));
        cfg_set(&snap, "dispatcher.reproxy", "x-reproxy-url", err, sizeof(err));
        cfg_set(&snap, "redis.url", "redis://:pw@10.0.0.1:6380/3", err, sizeof(err));

        CHECK(cfg_set(&cfg, "storaged.listen", "nope", err, sizeof(err)) == -EINVAL,
              "set a bad listen");
        CHECK_STR(err,
                  "bad value for storaged.listen: 'nope' (HOST:PORT with a numeric IPv4 or "
                  "[IPv6] host, e.g. 127.0.0.1:8080 or :8080)",
                  "cfg_set message has no file or line");
        CHECK(cfg_set(&cfg, "dispatcher.threads", "300", err, sizeof(err)) == -ERANGE,
              "set out of range");
        CHECK(cfg_set(&cfg, "storaged.lisen", "1.2.3.4:5", err, sizeof(err)) == -EINVAL,
              "set an unknown key");
        CHECK_STR(err, "unknown key 'storaged.lisen' (expected section.key, e.g. storaged.listen)",
                  "unknown key message");
        CHECK(cfg_set(&cfg, "listen", "1.2.3.4:5", err, sizeof(err)) == -EINVAL,
              "key without section");
        CHECK(cfg_set(&cfg, "storaged.root", NULL, err, sizeof(err)) == -EINVAL, "NULL value");
        memset(big, 'r', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        CHECK(cfg_set(&cfg, "storaged.root", big, err, sizeof(err)) == -EINVAL,
              "overlong value refused");
        CHECK_STR(err, "bad value for storaged.root: longer than 4096 bytes", "overlong message");
        big[CFG_LINE_MAX] = '\0';
        CHECK(cfg_set(&snap, "storaged.root", big, err, sizeof(err)) == 0 &&
                  cfg_set(&cfg, "storaged.root", big, err, sizeof(err)) == 0,
              "a 4096-byte value is accepted");
        CHECK(cfg_equal(&cfg, &snap), "refused sets changed nothing");
        cfg_release(&snap);
    }
    cfg_release(&cfg);
}

static void test_paths(void)
{
    struct cfg cfg;
    char err[512], p2[300], missing[300];
    bool missing_ok = false;

    snprintf(p2, sizeof(p2), "%s/env.conf", dir);
    snprintf(missing, sizeof(missing), "%s/nope.conf", dir);
    write_conf("[dispatcher]\nthreads = 11\n");
    write_file(p2, "[dispatcher]\nthreads = 22\n", 26);

    unsetenv("STF_CONFIG");
    CHECK(cfg_resolve_path(NULL, &missing_ok) != NULL &&
              check_streq(cfg_resolve_path(NULL, &missing_ok), "/etc/stf/stf.conf") && missing_ok,
          "no flag, no env: the default path, missing is fine");
    CHECK(check_streq(cfg_resolve_path(path, &missing_ok), path) && !missing_ok,
          "explicit path wins, must exist");
    setenv("STF_CONFIG", p2, 1);
    CHECK(check_streq(cfg_resolve_path(NULL, &missing_ok), p2) && !missing_ok,
          "$STF_CONFIG when no flag, must exist");
    CHECK(check_streq(cfg_resolve_path(path, &missing_ok), path), "explicit beats $STF_CONFIG");
    setenv("STF_CONFIG", "", 1);
    CHECK(check_streq(cfg_resolve_path(NULL, &missing_ok), CFG_DEFAULT_PATH) && missing_ok,
          "empty $STF_CONFIG counts as unset");

    setenv("STF_CONFIG", p2, 1);
    cfg_init(&cfg);
    CHECK(cfg_load(&cfg, NULL, err, sizeof(err)) == 0 && cfg.dispatcher.threads == 22,
          "cfg_load reads $STF_CONFIG");
    CHECK(cfg_load(&cfg, path, err, sizeof(err)) == 0 && cfg.dispatcher.threads == 11,
          "cfg_load prefers the explicit path");
    setenv("STF_CONFIG", missing, 1);
    CHECK(cfg_load(&cfg, NULL, err, sizeof(err)) == -ENOENT && cfg.dispatcher.threads == 11,
          "a missing $STF_CONFIG file is an error");
    unsetenv("STF_CONFIG");
    if (access(CFG_DEFAULT_PATH, F_OK) != 0) {
        cfg_release(&cfg);
        cfg_init(&cfg);
        CHECK(cfg_load(&cfg, NULL, err, sizeof(err)) == 0 && cfg.dispatcher.threads == 4,
              "missing /etc/stf/stf.conf: defaults");
    } else {
        CHECK(1, "# SKIP /etc/stf/stf.conf exists on this machine");
    }
    cfg_release(&cfg);
}

/* The shipped docs/stf.conf.example loads and holds exactly the defaults. The source tree is
 * found from this file's name, relative to the build root (the parent of test/). */
static void test_example(void)
{
    const char *me = __FILE__, *suffix = "test/unit/test_config.c";
    char exe[1024], src[2048], err[512] = "";
    struct cfg cfg, defaults;
    size_t mlen = strlen(me), slen = strlen(suffix);
    char *slash;
    ssize_t n;

    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    CHECK(n > 0 && mlen >= slen && strcmp(me + mlen - slen, suffix) == 0, "locate the sources");
    if (n <= 0 || mlen < slen)
        return;
    exe[n] = '\0';
    for (int i = 0; i < 2 && (slash = strrchr(exe, '/')) != NULL; i++)
        *slash = '\0'; /* BUILD/test/test_config -> BUILD */
    if (me[0] == '/')
        snprintf(src, sizeof(src), "%.*sdocs/stf.conf.example", (int) (mlen - slen), me);
    else
        snprintf(src, sizeof(src), "%s/%.*sdocs/stf.conf.example", exe, (int) (mlen - slen), me);
    cfg_init(&cfg);
    cfg_set(&cfg, "dispatcher.threads", "99", err, sizeof(err));
    cfg_init(&defaults);
    CHECK(cfg_load(&cfg, src, err, sizeof(err)) == 0, "docs/stf.conf.example loads (%s)", err);
    CHECK(cfg_equal(&cfg, &defaults), "docs/stf.conf.example states exactly the defaults");
    cfg_release(&cfg);
    cfg_release(&defaults);
}

/* ---- daemon_parse_args, in a child process (it exits on --help, errors, ...) --------------- */

struct run {
    int status; /* exit code, or -1 */
    char out[4096], err[4096];
};

static void slurp(const char *p, char *buf, size_t len)
{
    FILE *f = fopen(p, "r");
    size_t n = 0;

    if (f != NULL) {
        n = fread(buf, 1, len - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
}

/* Runs daemon_parse_args(argv) as program with flags in a child; on return the child prints
 * the resulting settings to stdout and exits 0. argv is NULL-terminated, argv[0] included. */
static void run_daemon(struct run *res, const char *program, unsigned flags, char **argv)
{
    char pout[300], perr[300];
    int argc = 0, st;
    pid_t pid;

    while (argv[argc] != NULL)
        argc++;
    snprintf(pout, sizeof(pout), "%s/out", dir);
    snprintf(perr, sizeof(perr), "%s/err", dir);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        struct cfg cfg;
        struct daemon_args args = {.init = false};

        if (!freopen(pout, "w", stdout) || !freopen(perr, "w", stderr))
            _exit(99);
        daemon_parse_args(argc, argv, program, flags, &cfg, &args);
        printf("dl=%s sl=%s root=%s threads=%u init=%d level=%d\n", cfg.dispatcher.listen,
               cfg.storaged.listen, cfg.storaged.root, cfg.dispatcher.threads, args.init,
               (int) log_get_level());
        cfg_release(&cfg);
        exit(0);
    }
    res->status = -1;
    if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st))
        res->status = WEXITSTATUS(st);
    slurp(pout, res->out, sizeof(res->out));
    slurp(perr, res->err, sizeof(res->err));
}

#define RUN(res, program, flags, ...)                                                              \
    do {                                                                                           \
        char *argv_[] = {(char *) program, __VA_ARGS__, NULL};                                     \
        run_daemon(res, program, flags, argv_);                                                    \
    } while (0)

/* s with newlines shown as '|', so a TAP line stays one line (one of two rotating buffers). */
static const char *one_line(const char *s)
{
    static char bufs[2][160];
    static int which;
    char *b = bufs[which ^= 1];
    size_t n = 0;

    for (; *s != '\0' && n < sizeof(bufs[0]) - 1; s++)
        b[n++] = *s == '\n' ? '|' : *s;
    b[n] = '\0';
    return b;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void test_daemon(void)
{
    const unsigned sflags = DAEMON_LISTEN | DAEMON_ROOT | DAEMON_INIT;
    struct run res;
    char want[1024], missing[300], badconf[300];

    unsetenv("STF_CONFIG");
    write_conf("[storaged]\nlisten = 127.0.0.1:9100\nroot = /from/file\n"
               "[dispatcher]\nthreads = 12\nlisten = 127.0.0.1:8100\n");
    snprintf(missing, sizeof(missing), "%s/nope.conf", dir);
    snprintf(badconf, sizeof(badconf), "%s/bad.conf", dir);
    write_file(badconf, "[storaged]\nlisn = x\n", 20);

    RUN(&res, "storaged", sflags, "--version");
    CHECK(res.status == 0 && check_streq(res.out, "storaged " STF_VERSION "\n"),
          "--version prints program and version: '%s'", one_line(res.out));
    RUN(&res, "storaged", sflags, "--help");
    CHECK(res.status == 0 && starts_with(res.out, "Usage: storaged [OPTIONS]\n") &&
              strstr(res.out, "--config FILE") && strstr(res.out, "--listen ADDR:PORT") &&
              strstr(res.out, "--root DIR") && strstr(res.out, "--init") &&
              strstr(res.out, "--log-level LEVEL") && strstr(res.out, "--version") &&
              res.err[0] == '\0',
          "storaged --help lists its flags on stdout");
    RUN(&res, "repaird", 0, "-h");
    CHECK(res.status == 0 && starts_with(res.out, "Usage: repaird") &&
              !strstr(res.out, "--listen") && !strstr(res.out, "--root") &&
              !strstr(res.out, "--init") && strstr(res.out, "--config"),
          "repaird -h lists only its flags");
    RUN(&res, "dispatcher", DAEMON_LISTEN, "--help");
    CHECK(res.status == 0 && strstr(res.out, "overrides dispatcher.listen") &&
              !strstr(res.out, "--root"),
          "dispatcher --help");

    RUN(&res, "storaged", sflags, "-c", path);
    CHECK(res.status == 0 && starts_with(res.out, "dl=127.0.0.1:8100 sl=127.0.0.1:9100 "
                                                  "root=/from/file threads=12 init=0 level=1"),
          "-c FILE: values from the file: %s", one_line(res.out));
    RUN(&res, "storaged", sflags, "--config", path, "--listen", "127.0.0.1:9200", "--root",
        "/from/flag", "--init", "--log-level", "debug");
    CHECK(res.status == 0 && starts_with(res.out, "dl=127.0.0.1:8100 sl=127.0.0.1:9200 "
                                                  "root=/from/flag threads=12 init=1 level=0"),
          "flags win over the file: %s", one_line(res.out));
    RUN(&res, "storaged", sflags, "--config=/dev/null", "--listen=[::1]:9300", "--root=/r",
        "--log-level=warn");
    CHECK(res.status == 0 && starts_with(res.out, "dl=127.0.0.1:8080 sl=[::1]:9300 root=/r "
                                                  "threads=4 init=0 level=2"),
          "--opt=value forms: %s", one_line(res.out));
    RUN(&res, "dispatcher", DAEMON_LISTEN, "-c", path, "--listen", ":8200");
    CHECK(res.status == 0 && starts_with(res.out, "dl=:8200 sl=127.0.0.1:9100 "),
          "dispatcher --listen sets dispatcher.listen: %s", one_line(res.out));
    RUN(&res, "storaged", sflags, "-c", path, "--listen", "1.1.1.1:1", "--listen", "2.2.2.2:2");
    CHECK(res.status == 0 && strstr(res.out, "sl=2.2.2.2:2 "), "the last repeated flag wins");

    setenv("STF_CONFIG", path, 1);
    RUN(&res, "repaird", 0, "--log-level", "error");
    CHECK(res.status == 0 && strstr(res.out, "threads=12") && strstr(res.out, "level=3"),
          "no -c: $STF_CONFIG is read: %s", one_line(res.out));
    RUN(&res, "repaird", 0, "-c", "/dev/null");
    CHECK(res.status == 0 && strstr(res.out, "threads=4"), "-c beats $STF_CONFIG");
    setenv("STF_CONFIG", missing, 1);
    RUN(&res, "repaird", 0, "--log-level", "info");
    snprintf(want, sizeof(want), "repaird: %s: cannot open: %s\n", missing, strerror(ENOENT));
    CHECK(res.status == 1 && check_streq(res.err, want) && res.out[0] == '\0',
          "missing $STF_CONFIG: exit 1, one line: %s", one_line(res.err));
    unsetenv("STF_CONFIG");

    RUN(&res, "storaged", sflags, "-c", badconf, "--listen", "127.0.0.1:1");
    snprintf(want, sizeof(want),
             "storaged: %s:2: unknown key 'lisn' in [storaged] (known: listen, root, fsync, "
             "max_connections, max_connections_per_ip, idle_timeout, connection_memory, "
             "listen_backlog)\n",
             badconf);
    CHECK(res.status == 1 && check_streq(res.err, want), "bad config: exit 1, one line: %s",
          one_line(res.err));
    RUN(&res, "storaged", sflags, "-c", missing);
    CHECK(res.status == 1 && starts_with(res.err, "storaged: ") && strstr(res.err, missing),
          "missing -c file: exit 1");

    RUN(&res, "storaged", sflags, "--bogus");
    CHECK(res.status == 2 &&
              check_streq(res.err, "storaged: unknown option '--bogus' (see storaged --help)\n"),
          "unknown long option: exit 2, one line: %.60s", one_line(res.err));
    RUN(&res, "storaged", sflags, "-x");
    CHECK(res.status == 2 &&
              check_streq(res.err, "storaged: unknown option '-x' (see storaged --help)\n"),
          "unknown short option: %.60s", one_line(res.err));
    RUN(&res, "storaged", sflags, "--listen");
    CHECK(res.status == 2 && check_streq(res.err, "storaged: option '--listen' needs an "
                                                  "argument (see storaged --help)\n"),
          "missing argument: %.60s", one_line(res.err));
    RUN(&res, "storaged", sflags, "-c");
    CHECK(res.status == 2 && check_streq(res.err, "storaged: option '-c' needs an argument "
                                                  "(see storaged --help)\n"),
          "missing -c argument: %.60s", one_line(res.err));
    RUN(&res, "repaird", 0, "--listen", "127.0.0.1:1");
    CHECK(res.status == 2 && starts_with(res.err, "repaird: unknown option '--listen'"),
          "a flag the program does not take: %.60s", one_line(res.err));
    RUN(&res, "dispatcher", DAEMON_LISTEN, "--root", "/x");
    CHECK(res.status == 2 && starts_with(res.err, "dispatcher: unknown option '--root'"),
          "dispatcher refuses --root: %.60s", one_line(res.err));
    RUN(&res, "storaged", sflags, "-c", path, "extra");
    CHECK(res.status == 2 &&
              check_streq(res.err, "storaged: unexpected argument 'extra' (see storaged --help)\n"),
          "positional argument: %.60s", one_line(res.err));
    RUN(&res, "storaged", sflags, "--log-level", "loud");
    CHECK(res.status == 2 &&
              check_streq(res.err, "storaged: bad --log-level 'loud' (debug, info, warn or "
                                   "error) (see storaged --help)\n"),
          "bad log level: %.60s", one_line(res.err));
    RUN(&res, "storaged", sflags, "-c", path, "--listen", "localhost:1");
    CHECK(res.status == 2 &&
              starts_with(res.err, "storaged: bad value for storaged.listen: 'localhost:1' "),
          "bad --listen value: exit 2: %.80s", one_line(res.err));
    RUN(&res, "storaged", sflags, "-c", path, "--root", "");
    CHECK(res.status == 2 && starts_with(res.err, "storaged: bad value for storaged.root: ''"),
          "empty --root: %.80s", one_line(res.err));
}

static void test_signals(void)
{
    int st = 0, ready[2];
    pid_t pid;
    char c;

    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        struct sigaction sa;
        sigset_t cur;
        int sig;

        daemon_block_signals();
        if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_IGN)
            _exit(10);
        if (pthread_sigmask(SIG_BLOCK, NULL, &cur) != 0 || !sigismember(&cur, SIGTERM) ||
            !sigismember(&cur, SIGINT) || !sigismember(&cur, SIGHUP))
            _exit(11);
        kill(getpid(), SIGHUP);
        sig = daemon_wait_signal();
        if (sig != SIGHUP)
            _exit(12);
        kill(getpid(), SIGINT);
        if (daemon_wait_signal() != SIGINT)
            _exit(13);
        kill(getpid(), SIGTERM); /* blocked: the process survives until it waits */
        if (daemon_wait_signal() != SIGTERM)
            _exit(14);
        _exit(0);
    }
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "signals blocked, SIGPIPE ignored, daemon_wait_signal returns HUP/INT/TERM (status %d)",
          WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    /* From another process, as an operator would send it, once the child says it is ready. */
    if (pipe(ready) != 0) {
        CHECK(0, "pipe");
        return;
    }
    pid = fork();
    if (pid == 0) {
        close(ready[0]);
        daemon_block_signals();
        if (write(ready[1], "r", 1) != 1)
            _exit(2);
        _exit(daemon_wait_signal() == SIGTERM ? 0 : 1);
    }
    close(ready[1]);
    st = -1;
    if (pid > 0) {
        if (read(ready[0], &c, 1) == 1)
            kill(pid, SIGTERM);
        else
            kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    close(ready[0]);
    CHECK(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM from outside is waited for");
}

int main(void)
{
    char cmd[300];

    if (mkdtemp(dir) == NULL) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/stf.conf", dir);
    test_defaults();
    test_full_file();
    test_errors();
    test_parsers();
    test_set();
    test_limits_set();
    test_paths();
    test_example();
    test_daemon();
    test_signals();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return check_done();
}
