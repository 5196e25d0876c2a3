/* clusterctl/ctl.h — what every clusterctl command shares: the run context (config, database and
 * Redis opened on first use), option parsing with --help, one-line errors, the operator's name. */
#ifndef STF_CLUSTERCTL_CTL_H
#define STF_CLUSTERCTL_CTL_H

#include <stdbool.h>
#include <stddef.h>

struct cfg;
struct ctl;
struct db;
struct kv;

/* Exit codes (SPEC §7). */
enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

/* One entry of the command table in main.c. */
struct ctl_cmd {
    const char *name; /* "migrate", "cluster add", ... (one or two words) */
    int (*fn)(struct ctl *ctl, int argc, char **argv);
    const char *synopsis; /* arguments after the name, e.g. "NAME --cluster C --uri URL" */
    const char *summary;  /* one line for `clusterctl --help` */
    const char *help;     /* details for `clusterctl CMD --help` (options), or NULL */
};

struct ctl {
    const struct ctl_cmd *cmd; /* the command being run */
    const char *config_path;   /* -c/--config, or NULL ($STF_CONFIG, /etc/stf/stf.conf) */
    const char *db_url;        /* --db, else $STF_DB_URL, else NULL ([database] url) */
    const char *redis_url;     /* $STF_REDIS_URL, else NULL ([redis] url) */
    struct cfg *cfg;           /* loaded by ctl_config() on first need */
    bool cfg_loaded;
    struct db *db; /* see ctl_db() */
    struct kv *kv; /* see ctl_kv() */
};

/* Prints "clusterctl: <message>" as one line on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: prints "clusterctl: <cmd>: <message> (usage: clusterctl <cmd> <synopsis>)"
 * as one line and returns CTL_USAGE. */
int ctl_usage_err(const struct ctl *ctl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints the command's usage and help to stdout (for --help). */
void ctl_print_help(const struct ctl_cmd *cmd);

/* Loads the configuration on first use (so --help works without one). On failure prints one
 * line ("clusterctl: stf.conf:12: ...") and returns NULL. */
struct cfg *ctl_config(struct ctl *ctl);

/* The database connection, opened on first use. On failure prints one line and returns NULL
 * (the command then exits CTL_FAILED). Owned by ctl; closed by ctl_release(). */
struct db *ctl_db(struct ctl *ctl);
/* The Redis connection (lazy, short timeouts), or NULL when the url is malformed. Redis is
 * best effort for clusterctl: callers ignore its failures. Owned by ctl. */
struct kv *ctl_kv(struct ctl *ctl);
void ctl_release(struct ctl *ctl);

/* Publishes a topology change on the Redis channel MODES_CHANNEL ("stf:modes"; messages
 * "storage <id>" / "cluster <id>") so dispatchers reload at once (they also poll, so a
 * failure here is only logged at debug). */
void ctl_notify_topology(struct ctl *ctl, const char *msg);

/* The operator: the login name of the real user ($SUDO_USER when run as root through sudo);
 * the same as mode_who_os_user(). */
const char *ctl_actor(void);

/* True if s is a valid cluster or storage name: [A-Za-z0-9][A-Za-z0-9._-]{0,62}. */
bool ctl_name_valid(const char *s);

/* Options of one command (long options only; "--help" is always accepted). */
struct ctl_opt {
    const char *name; /* without the leading "--" */
    bool has_arg;
    const char **value; /* has_arg: receives the argument (borrowed from argv) */
    bool *flag;         /* !has_arg: set to true when given */
};

/* Parses argv (argv[0] is the command name) against opts (terminated by a zeroed entry; may
 * be NULL). Positional arguments go to pos[0..], between min_pos and max_pos of them;
 * *ret_npos (may be NULL) receives the count. Returns 0 to go on, CTL_HELP_SHOWN after
 * printing --help (the command then returns CTL_OK), or CTL_USAGE after printing a one-line
 * usage error. So a command starts with:
 *     r = ctl_parse(ctl, argc, argv, opts, pos, 1, 1, NULL);
 *     if (r != 0)
 *         return r == CTL_HELP_SHOWN ? CTL_OK : r; */
#define CTL_HELP_SHOWN (-1)
int ctl_parse(const struct ctl *ctl, int argc, char **argv, const struct ctl_opt *opts,
              const char **pos, int min_pos, int max_pos, int *ret_npos);

/* ctl_parse() for a command taking exactly one NAME of a cluster or storage (kind names it in
 * the error), which must be valid (ctl_name_valid), and, when reason is not NULL, a valid
 * --reason (read after parsing, so pass the address the option writes to). Same returns. */
int ctl_parse_name(const struct ctl *ctl, int argc, char **argv, const struct ctl_opt *opts,
                   const char *kind, const char **name, const char *const *reason);

#endif
