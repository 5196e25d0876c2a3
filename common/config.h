/* common/config.h — the one INI file every program reads (SPEC §3), strictly validated.
 * Unknown sections/keys and bad values are errors naming the file, line and key. */
#ifndef STF_CONFIG_H
#define STF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Read when neither -c/--config nor $STF_CONFIG names a file; a missing one means defaults. */
#define CFG_DEFAULT_PATH "/etc/stf/stf.conf"
/* Longest line (without its newline) and longest value cfg_set accepts, in bytes. */
#define CFG_LINE_MAX 4096

enum reproxy_mode { REPROXY_OFF = 0, REPROXY_X_ACCEL_REDIRECT, REPROXY_X_REPROXY_URL };

/* The HTTP server limits of one daemon (the same keys in [dispatcher] and [storaged]); handed
 * to libmicrohttpd as they are (docs/configuration.md, "Connection limits"). */
struct cfg_limits {
    unsigned max_connections;        /* total; storaged: 0 = derived from RLIMIT_NOFILE */
    unsigned max_connections_per_ip; /* 0 = unlimited */
    unsigned idle_timeout_s;         /* close a connection idle this long; 0 = never */
    uint64_t connection_memory;      /* bytes of MHD's per-connection pool */
    unsigned listen_backlog;         /* listen(2) queue of connections not yet accepted */
};

struct cfg {
    struct {
        char *url; /* [database] url; default "postgresql://stf@127.0.0.1:5432/stf" */
    } database;
    struct {
        char *url; /* [redis] url; default "redis://127.0.0.1:6379/0"; also unix:///path */
    } redis;
    struct {
        char *listen;             /* default "127.0.0.1:8080" */
        unsigned threads;         /* default 4, 1..256 */
        uint64_t max_object_size; /* bytes; default 5G */
        enum reproxy_mode reproxy;
        struct cfg_limits limits; /* 20000, 0, 60s, 64K, 4096 */
    } dispatcher;
    struct {
        char *listen;             /* default "127.0.0.1:9001" */
        char *root;               /* default "/var/lib/stf/disk1" */
        bool fsync;               /* default on */
        struct cfg_limits limits; /* 0 (from RLIMIT_NOFILE), 0, 60s, 32K, 1024 */
    } storaged;
    struct {
        unsigned workers;                   /* default 4, 1..256 */
        uint64_t health_interval_ms;        /* default 5s */
        unsigned down_after;                /* default 3; 0 = never */
        uint64_t max_bytes_per_sec;         /* default 64M; 0 = unlimited */
        char *rebalance_window;             /* "HH:MM-HH:MM", default "01:00-05:00" */
        uint64_t rebalance_delete_delay_ms; /* default 30s: how long a moved object's old
                                             * copies stay readable */
        uint64_t scrub_bytes_per_sec;       /* default 1M; 0 = no scrub */
    } repaird;
};

/* Fills cfg with the defaults above. Release with cfg_release(). Never fails: default strings
 * are not allocated, so calling cfg_init again on a cfg that holds only defaults is harmless.
 * The strings belong to cfg: read them, never free or modify them. */
void cfg_init(struct cfg *cfg);
void cfg_release(struct cfg *cfg);

/* Resolves the path: explicit (from -c/--config) if non-NULL, else $STF_CONFIG, else
 * /etc/stf/stf.conf. An explicit or $STF_CONFIG path that cannot be read is an error; a
 * missing /etc/stf/stf.conf leaves the defaults. Then parses it over cfg.
 * On error returns -errno/-EINVAL and writes one line into err, e.g.
 * "stf.conf:12: unknown key 'listn' in [dispatcher]" or
 * "stf.conf:7: bad value for dispatcher.max_object_size: '5X' (a size such as 512K, 64M, 5G)". */
int cfg_load(struct cfg *cfg, const char *explicit_path, char *err, size_t errlen);

/* The path cfg_load reads: explicit_path if non-NULL, else $STF_CONFIG if set and non-empty,
 * else CFG_DEFAULT_PATH. *ret_missing_ok is true only for the default path. The result is
 * explicit_path, getenv()'s string or the literal: not owned by the caller. */
const char *cfg_resolve_path(const char *explicit_path, bool *ret_missing_ok);

/* Parses one file over cfg, all or nothing: on any error cfg is unchanged. With missing_ok a
 * file that does not exist returns 0 and leaves cfg as it was. Errors as cfg_load. */
int cfg_load_file(struct cfg *cfg, const char *path, bool missing_ok, char *err, size_t errlen);

/* Sets one "section.key" to a textual value with the same validation as the file; used for
 * command-line overrides (--listen, --root, ...). Same error convention, without a line. */
int cfg_set(struct cfg *cfg, const char *section_key, const char *value, char *err, size_t errlen);

/* "max_connections=20000 max_connections_per_ip=0 idle_timeout=60s connection_memory=65536
 * listen_backlog=4096" for a daemon's event=listening log line; returns buf. */
const char *cfg_limits_format(const struct cfg_limits *l, char *buf, size_t len);

/* Value parsers shared with the CLIs. Return 0 or -EINVAL / -ERANGE. */
int parse_size(const char *s, uint64_t *ret);           /* "123", "512K", "64M", "5G", "1T" (1024-based) */
int parse_duration_ms(const char *s, uint64_t *ret);    /* "250ms", "5s", "2m", "1h"; bare number = s */
int parse_bool(const char *s, bool *ret);               /* on/off, true/false, yes/no, 1/0 */
int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret);
/* "HH:MM-HH:MM" into minutes after midnight (start may be > end: the window wraps midnight).
 * The end may be 24:00 (1440), so "00:00-24:00" is always; start == end is -EINVAL.
 * A time t (minutes) is inside when start <= t < end, or, wrapping, t >= start || t < end. */
int parse_window(const char *s, unsigned *ret_start_min, unsigned *ret_end_min);

#endif
