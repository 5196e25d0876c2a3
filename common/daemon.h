/* common/daemon.h — what every daemon does at start: the shared flags, the config with its
 * command-line overrides, the log level, and signal handling for a clean shutdown. */
#ifndef STF_DAEMON_H
#define STF_DAEMON_H

#include <stdbool.h>

#include "config.h"

enum daemon_flag {
    DAEMON_LISTEN = 1 << 0, /* accepts --listen ADDR:PORT (sets <program>.listen) */
    DAEMON_ROOT = 1 << 1,   /* accepts --root DIR (sets storaged.root) */
    DAEMON_INIT = 1 << 2,   /* accepts --init */
};

struct daemon_args {
    bool init; /* --init was given */
};

/* Parses --config/-c FILE, --log-level LEVEL, --version, --help and, per flags, --listen,
 * --root, --init. Loads the config (cfg_load), applies the flag overrides with cfg_set (a flag
 * wins over the file), and calls log_init(program, level). On --help/--version prints to
 * stdout and exits 0; on a usage error prints one line and the usage to stderr, exits 2; on a
 * bad config prints one line ("program: stf.conf:12: ...") to stderr and exits 1.
 * program must be a string literal ("storaged", "dispatcher", "repaird").
 * It calls cfg_init(cfg) itself (a cfg already holding only defaults is fine); release with
 * cfg_release(). A flag value the config would refuse (--listen nonsense) is a usage error. */
void daemon_parse_args(int argc, char **argv, const char *program, unsigned flags,
                       struct cfg *cfg, struct daemon_args *ret);

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (threads started afterwards inherit
 * the mask) and ignores SIGPIPE. Call it in main() before starting any thread. */
void daemon_block_signals(void);

/* Waits for SIGTERM/SIGINT and returns its number (SIGHUP is returned too, for reloads). */
int daemon_wait_signal(void);

#endif
