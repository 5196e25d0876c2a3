/* storaged/main.c — storaged's entry point: arguments and config, the root marker check
 * (or --init), the store, the HTTP server, and a graceful stop on SIGTERM/SIGINT. */
#include "blob_store.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "marker.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define STORAGED_THREADS_MAX 256
#define STORAGED_DRAIN_S 60 /* longest wait for requests in flight after SIGTERM */

/* The shared parser prints the common usage and exits 0 on --help; storaged's own flag is
 * listed after it, from an exit handler. */
static void print_local_usage(void)
{
    printf("      --threads N         HTTP worker threads, 1..%d (default: the number of CPUs, "
           "at least 2)\n",
           STORAGED_THREADS_MAX);
}

/* Takes "--threads N" / "--threads=N" (storaged's own flag) out of argv before the shared
 * parser sees it. Exits 2 on a bad value. Returns the thread count, 0 when not given. */
static unsigned take_threads_flag(int *argc, char **argv)
{
    unsigned threads = 0;
    int out = 1;

    for (int i = 1; i < *argc; i++) {
        const char *v = NULL;

        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            atexit(print_local_usage);
        if (strcmp(argv[i], "--") == 0) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "--threads") == 0) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "storaged: option '--threads' needs an argument\n");
                exit(2);
            }
            v = argv[++i];
        } else if (strncmp(argv[i], "--threads=", 10) == 0) {
            v = argv[i] + 10;
        }
        if (!v) {
            argv[out++] = argv[i];
            continue;
        }
        if (parse_uint(v, 1, STORAGED_THREADS_MAX, &threads) < 0) {
            fprintf(stderr, "storaged: bad --threads '%.40s' (1..%d)\n", v, STORAGED_THREADS_MAX);
            exit(2);
        }
    }
    argv[out] = NULL;
    *argc = out;
    return threads;
}

/* Raises the open-file limit to its hard maximum; returns the soft limit now in force. */
static rlim_t raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;

        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("event=rlimit_nofile_failed want=%" PRIu64 " error=\"%s\"", (uint64_t) want,
                     strerror(errno));
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

/* A connection may hold its socket, a file being sent or written, and a directory being
 * fsync'd: three descriptors, plus a reserve for the process itself. */
static unsigned nofile_connections(rlim_t nofile)
{
    uint64_t n = nofile > 256 ? ((uint64_t) nofile - 64) / 3 : 64;

    return (unsigned) (n > UINT_MAX ? UINT_MAX : n);
}

/* The limits in force: storaged.max_connections, 0 meaning what the open-file limit allows
 * (at most 100000), and never more than that (the connections beyond would fail their PUTs
 * with EMFILE); at most one worker thread per connection. */
static void effective_limits(const struct cfg *cfg, rlim_t nofile, struct sd_server_opts *o)
{
    unsigned allowed = nofile_connections(nofile);

    o->limits = cfg->storaged.limits;
    if (o->limits.max_connections == 0) {
        o->limits.max_connections = allowed > 100000 ? 100000 : allowed;
    } else if (o->limits.max_connections > allowed) {
        log_warn("event=limit_clamped key=storaged.max_connections configured=%u allowed=%u "
                 "nofile=%" PRIu64 " hint=\"raise the open-file limit (ulimit -n, LimitNOFILE=) "
                 "to 3 per connection + 64\"",
                 o->limits.max_connections, allowed, (uint64_t) nofile);
        o->limits.max_connections = allowed;
    }
    if (o->threads > o->limits.max_connections) {
        log_warn("event=threads_clamped threads=%u max_connections=%u", o->threads,
                 o->limits.max_connections);
        o->threads = o->limits.max_connections;
    }
}

static int check_root(const char *root, char id[MARKER_ID_LEN + 1], char *reason, size_t len)
{
    int fd, r;

    fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        snprintf(reason, len, "cannot open the root %s: %s", root, strerror(errno));
        return r;
    }
    r = marker_check(fd, id, reason, len);
    close(fd);
    return r;
}

/* After SIGTERM: wait until the requests in flight are done, a second signal, or the
 * drain time is over. */
static void drain(struct sd_server *srv)
{
    struct timespec tick = {0, 50 * 1000 * 1000};
    time_t deadline = time(NULL) + STORAGED_DRAIN_S;
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    while (sd_server_in_flight(srv) > 0) {
        int sig = sigtimedwait(&set, NULL, &tick);

        if (sig > 0) {
            log_warn("event=stop_forced signal=%d in_flight=%u", sig, sd_server_in_flight(srv));
            return;
        }
        if (time(NULL) >= deadline) {
            log_warn("event=drain_timeout in_flight=%u seconds=%d", sd_server_in_flight(srv),
                     STORAGED_DRAIN_S);
            return;
        }
    }
}

int main(int argc, char **argv)
{
    struct sd_server_opts opts;
    struct daemon_args args = {0};
    struct sd_server *srv = NULL;
    struct blob_store *store = NULL;
    struct cfg cfg;
    char reason[1024], id[MARKER_ID_LEN + 1], limits[160];
    unsigned threads, tmp_removed = 0;
    uint64_t files = 0;
    long ncpu;
    int created = 0, sig, r, rc = 1;

    threads = take_threads_flag(&argc, argv);
    daemon_parse_args(argc, argv, "storaged", DAEMON_LISTEN | DAEMON_ROOT | DAEMON_INIT, &cfg,
                      &args);
    daemon_block_signals();
    if (threads == 0) {
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        /* At least two, so that one thread blocked in fsync does not stall every client. */
        threads = ncpu < 2                      ? 2
                  : ncpu > STORAGED_THREADS_MAX ? STORAGED_THREADS_MAX
                                                : (unsigned) ncpu;
    }
    if (args.init) {
        r = marker_init(cfg.storaged.root, &created, reason, sizeof(reason));
        if (r < 0)
            goto refused;
        if (created)
            log_info("event=marker_created root=%s", cfg.storaged.root);
    }
    r = check_root(cfg.storaged.root, id, reason, sizeof(reason));
    if (r < 0)
        goto refused;
    r = blob_store_open(cfg.storaged.root, cfg.storaged.fsync, &store, &tmp_removed, &files, reason,
                        sizeof(reason));
    if (r < 0)
        goto refused;
    log_info("event=start version=%s root=%s storage_id=%s files=%" PRIu64
             " tmp_removed=%u fsync=%s threads=%u",
             STF_VERSION, cfg.storaged.root, id, files, tmp_removed,
             cfg.storaged.fsync ? "on" : "off", threads);

    opts.listen = cfg.storaged.listen;
    opts.threads = threads;
    effective_limits(&cfg, raise_nofile(), &opts);
    r = sd_server_start(store, &opts, &srv, reason, sizeof(reason));
    if (r < 0)
        goto refused;
    log_info("event=listening addr=%s threads=%u %s", sd_server_address(srv), opts.threads,
             cfg_limits_format(&opts.limits, limits, sizeof(limits)));

    while ((sig = daemon_wait_signal()) == SIGHUP)
        log_info("event=sighup action=none");
    log_info("event=stopping signal=%d in_flight=%u", sig, sd_server_in_flight(srv));
    sd_server_quiesce(srv);
    drain(srv);
    sd_server_free(srv);
    blob_store_free(store);
    log_info("event=stopped");
    cfg_release(&cfg);
    return 0;

refused:
    log_error("event=refused root=%s reason=\"%s\"", cfg.storaged.root, reason);
    blob_store_free(store);
    cfg_release(&cfg);
    return rc;
}
