/* common/daemon.c — daemon start-up shared by dispatcher, storaged and repaird: the common
 * flags (getopt_long), config loading with flag overrides, log level, and signal handling. */
#include "daemon.h"

#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_LISTEN = 256,
    OPT_ROOT,
    OPT_INIT,
    OPT_LOG_LEVEL,
    OPT_VERSION,
};

static void daemon_usage(FILE *out, const char *program, unsigned flags)
{
    fprintf(out, "Usage: %s [OPTIONS]\n", program);
    fprintf(out, "  -c, --config FILE       config file (default: $STF_CONFIG, else %s)\n",
            CFG_DEFAULT_PATH);
    if (flags & DAEMON_LISTEN)
        fprintf(out, "      --listen ADDR:PORT  listen address, overrides %s.listen\n", program);
    if (flags & DAEMON_ROOT)
        fprintf(out, "      --root DIR          storage root directory, overrides storaged.root\n");
    if (flags & DAEMON_INIT)
        fprintf(out, "      --init              create the root's marker file if it is missing\n");
    fprintf(out, "      --log-level LEVEL   debug, info, warn or error (default: info)\n");
    fprintf(out, "      --version           print the version and exit\n");
    fprintf(out, "  -h, --help              print this help and exit\n");
}

/* Prints one line, "program: message (see program --help)", to stderr and exits 2. */
static void daemon_usage_error(const char *program, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static void daemon_usage_error(const char *program, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", program);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", program);
    exit(2);
}

/* Applies one command-line override; a refused value is a usage error. */
static void daemon_override(struct cfg *cfg, const char *program, const char *key,
                            const char *value)
{
    char err[512];

    if (value == NULL)
        return;
    if (cfg_set(cfg, key, value, err, sizeof(err)) < 0)
        daemon_usage_error(program, "%s", err);
}

void daemon_parse_args(int argc, char **argv, const char *program, unsigned flags, struct cfg *cfg,
                       struct daemon_args *ret)
{
    const struct option all[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"version", no_argument, NULL, OPT_VERSION},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"root", required_argument, NULL, OPT_ROOT},
        {"init", no_argument, NULL, OPT_INIT},
    };
    struct option opts[sizeof(all) / sizeof(all[0]) + 1];
    const char *config = NULL, *listen_addr = NULL, *root = NULL, *path;
    enum log_level level = LOG_INFO;
    bool help = false, version = false, init = false, missing_ok;
    char err[512], listen_key[64];
    size_t n = 0;
    int c, r;

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if ((all[i].val == OPT_LISTEN && !(flags & DAEMON_LISTEN)) ||
            (all[i].val == OPT_ROOT && !(flags & DAEMON_ROOT)) ||
            (all[i].val == OPT_INIT && !(flags & DAEMON_INIT)))
            continue;
        opts[n++] = all[i];
    }
    memset(&opts[n], 0, sizeof(opts[n]));

    opterr = 0;
    optind = 0; /* glibc: a full re-initialisation, so tests may parse several times */
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'h':
            help = true;
            break;
        case OPT_VERSION:
            version = true;
            break;
        case OPT_LOG_LEVEL:
            if (log_level_parse(optarg, &level) < 0)
                daemon_usage_error(program, "bad --log-level '%.80s' (debug, info, warn or error)",
                                   optarg);
            break;
        case OPT_LISTEN:
            listen_addr = optarg;
            break;
        case OPT_ROOT:
            root = optarg;
            break;
        case OPT_INIT:
            init = true;
            break;
        case ':':
            daemon_usage_error(program, "option '%s' needs an argument", argv[optind - 1]);
        default:
            if (optopt > 0 && optopt < 256) {
                char opt[3] = {'-', (char) optopt, '\0'};

                daemon_usage_error(program, "unknown option '%s'", opt);
            }
            daemon_usage_error(program, "unknown option '%.80s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        daemon_usage_error(program, "unexpected argument '%.80s'", argv[optind]);
    if (help) {
        daemon_usage(stdout, program, flags);
        exit(0);
    }
    if (version) {
        printf("%s %s\n", program, STF_VERSION);
        exit(0);
    }

    log_init(program, level);
    cfg_init(cfg);
    path = cfg_resolve_path(config, &missing_ok);
    r = cfg_load_file(cfg, path, missing_ok, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", program, err);
        cfg_release(cfg);
        exit(1);
    }
    log_debug("event=config path=%s", path);
    snprintf(listen_key, sizeof(listen_key), "%s.listen", program);
    daemon_override(cfg, program, listen_key, listen_addr);
    daemon_override(cfg, program, "storaged.root", root);
    ret->init = init;
}

static void daemon_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

void daemon_block_signals(void)
{
    struct sigaction sa;
    sigset_t set;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    daemon_signal_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int daemon_wait_signal(void)
{
    sigset_t set;
    int sig, r;

    daemon_signal_set(&set);
    for (;;) {
        r = sigwait(&set, &sig);
        if (r == 0)
            return sig;
        if (r != EINTR) {
            log_debug("event=sigwait_failed errno=%d", r);
            return SIGTERM; /* cannot wait: shut down rather than run unstoppable */
        }
    }
}
