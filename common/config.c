/* common/config.c — the strict INI parser for stf.conf (SPEC §3): the key table, the value
 * parsers (sizes, durations, bools, ranges, windows) and path resolution. */
#include "config.h"

#include "addr.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Defaults. Strings point here until set, so cfg_init never allocates and never fails;
 * cfg_release frees only strings that do not point here. */
static char def_database_url[] = "postgresql://stf@127.0.0.1:5432/stf";
static char def_redis_url[] = "redis://127.0.0.1:6379/0";
static char def_dispatcher_listen[] = "127.0.0.1:8080";
static char def_storaged_listen[] = "127.0.0.1:9001";
static char def_storaged_root[] = "/var/lib/stf/disk1";
static char def_rebalance_window[] = "01:00-05:00";

enum cfg_type {
    CFG_PG_URL,    /* char *: a libpq connection string or URI */
    CFG_REDIS_URL, /* char *: redis://... or unix://... */
    CFG_LISTEN,    /* char *: HOST:PORT (addr_parse) */
    CFG_PATH,      /* char *: non-empty */
    CFG_WINDOW,    /* char *: HH:MM-HH:MM (parse_window) */
    CFG_UINT,      /* unsigned in [min, max] */
    CFG_SIZE,      /* uint64_t bytes in [min, max] */
    CFG_DURATION,  /* uint64_t milliseconds in [min, max] */
    CFG_SECONDS,   /* unsigned seconds: a duration in whole seconds, [min, max] in ms */
    CFG_BOOL,      /* bool */
    CFG_REPROXY,   /* enum reproxy_mode */
};

struct cfg_key {
    const char *section;
    const char *key;
    const char *name; /* "section.key" */
    enum cfg_type type;
    size_t offset;
    char *def;         /* default of a string key */
    uint64_t min, max; /* CFG_UINT, CFG_SIZE, CFG_DURATION, CFG_SECONDS */
    const char *expect;
};

#define LISTEN_EXPECT "HOST:PORT with a numeric IPv4 or [IPv6] host, e.g. 127.0.0.1:8080 or :8080"
#define F(member) offsetof(struct cfg, member)
#define LIMITS_CONN_MAX 1000000
#define PER_IP_EXPECT "an integer from 0 (unlimited) to 1000000"
#define IDLE_EXPECT "a duration in whole seconds from 0 (never) to 24h such as 30s, 2m, 1h"
#define MEMORY_EXPECT "a size from 8K to 16M such as 32K, 64K, 1M"
#define BACKLOG_EXPECT "an integer from 1 to 65535"

/* The keys [dispatcher] and [storaged] share (struct cfg_limits), max_connections aside since
 * its range differs: LIMIT_KEYS(dispatcher). */
/* clang-format off */
#define LIMIT_KEYS(sec)                                                                            \
    {#sec, "max_connections_per_ip", #sec ".max_connections_per_ip", CFG_UINT,                     \
     F(sec.limits.max_connections_per_ip), NULL, 0, LIMITS_CONN_MAX, PER_IP_EXPECT},               \
    {#sec, "idle_timeout", #sec ".idle_timeout", CFG_SECONDS, F(sec.limits.idle_timeout_s), NULL,  \
     0, 24ULL * 3600 * 1000, IDLE_EXPECT},                                                         \
    {#sec, "connection_memory", #sec ".connection_memory", CFG_SIZE,                               \
     F(sec.limits.connection_memory), NULL, 8 << 10, 16 << 20, MEMORY_EXPECT},                     \
    {#sec, "listen_backlog", #sec ".listen_backlog", CFG_UINT, F(sec.limits.listen_backlog), NULL, \
     1, 65535, BACKLOG_EXPECT}
/* clang-format on */

static const struct cfg_key cfg_keys[] = {
    {"database", "url", "database.url", CFG_PG_URL, F(database.url), def_database_url, 0, 0,
     "a libpq connection string or URI, e.g. postgresql://stf@127.0.0.1:5432/stf"},
    {"redis", "url", "redis.url", CFG_REDIS_URL, F(redis.url), def_redis_url, 0, 0,
     "redis://HOST:PORT[/DB] or unix:///path/to/redis.sock"},
    {"dispatcher", "listen", "dispatcher.listen", CFG_LISTEN, F(dispatcher.listen),
     def_dispatcher_listen, 0, 0, LISTEN_EXPECT},
    {"dispatcher", "threads", "dispatcher.threads", CFG_UINT, F(dispatcher.threads), NULL, 1, 256,
     "an integer from 1 to 256"},
    {"dispatcher", "max_object_size", "dispatcher.max_object_size", CFG_SIZE,
     F(dispatcher.max_object_size), NULL, 1, UINT64_MAX,
     "a size such as 512K, 64M, 5G, at least 1"},
    {"dispatcher", "reproxy", "dispatcher.reproxy", CFG_REPROXY, F(dispatcher.reproxy), NULL, 0, 0,
     "off, x-accel-redirect or x-reproxy-url"},
    {"dispatcher", "max_connections", "dispatcher.max_connections", CFG_UINT,
     F(dispatcher.limits.max_connections), NULL, 1, LIMITS_CONN_MAX,
     "an integer from 1 to 1000000"},
    LIMIT_KEYS(dispatcher),
    {"storaged", "listen", "storaged.listen", CFG_LISTEN, F(storaged.listen), def_storaged_listen,
     0, 0, LISTEN_EXPECT},
    {"storaged", "root", "storaged.root", CFG_PATH, F(storaged.root), def_storaged_root, 0, 0,
     "a directory path"},
    {"storaged", "fsync", "storaged.fsync", CFG_BOOL, F(storaged.fsync), NULL, 0, 0,
     "on/off, true/false, yes/no or 1/0"},
    {"storaged", "max_connections", "storaged.max_connections", CFG_UINT,
     F(storaged.limits.max_connections), NULL, 0, LIMITS_CONN_MAX,
     "an integer from 0 (derived from the open-file limit) to 1000000"},
    LIMIT_KEYS(storaged),
    {"repaird", "workers", "repaird.workers", CFG_UINT, F(repaird.workers), NULL, 1, 256,
     "an integer from 1 to 256"},
    {"repaird", "health_interval", "repaird.health_interval", CFG_DURATION,
     F(repaird.health_interval_ms), NULL, 10, 24ULL * 3600 * 1000,
     "a duration from 10ms to 24h such as 250ms, 5s, 2m, 1h"},
    {"repaird", "down_after", "repaird.down_after", CFG_UINT, F(repaird.down_after), NULL, 0,
     1000000, "an integer from 0 (never) to 1000000"},
    {"repaird", "max_bytes_per_sec", "repaird.max_bytes_per_sec", CFG_SIZE,
     F(repaird.max_bytes_per_sec), NULL, 0, UINT64_MAX,
     "a size such as 512K, 64M, 1G; 0 = unlimited"},
    {"repaird", "rebalance_window", "repaird.rebalance_window", CFG_WINDOW,
     F(repaird.rebalance_window), def_rebalance_window, 0, 0,
     "HH:MM-HH:MM such as 01:00-05:00 (may wrap midnight; 00:00-24:00 = always)"},
    {"repaird", "rebalance_delete_delay", "repaird.rebalance_delete_delay", CFG_DURATION,
     F(repaird.rebalance_delete_delay_ms), NULL, 0, 24ULL * 3600 * 1000,
     "a duration from 0 to 24h such as 30s, 5m"},
    {"repaird", "scrub_bytes_per_sec", "repaird.scrub_bytes_per_sec", CFG_SIZE,
     F(repaird.scrub_bytes_per_sec), NULL, 0, UINT64_MAX,
     "a size such as 512K, 1M, 64M; 0 = no scrub"},
};

#undef LIMIT_KEYS
#undef F

#define CFG_NKEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

static const char *const cfg_sections[] = {"database", "redis", "dispatcher", "storaged",
                                           "repaird"};
#define CFG_NSECTIONS (sizeof(cfg_sections) / sizeof(cfg_sections[0]))

static bool cfg_is_string(enum cfg_type t)
{
    return t == CFG_PG_URL || t == CFG_REDIS_URL || t == CFG_LISTEN || t == CFG_PATH ||
           t == CFG_WINDOW;
}

static void *cfg_field(struct cfg *cfg, const struct cfg_key *k)
{
    return (char *) cfg + k->offset;
}

void cfg_init(struct cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (cfg_is_string(cfg_keys[i].type))
            *(char **) cfg_field(cfg, &cfg_keys[i]) = cfg_keys[i].def;
    }
    cfg->dispatcher.threads = 4;
    cfg->dispatcher.max_object_size = 5ULL << 30;
    cfg->dispatcher.reproxy = REPROXY_OFF;
    cfg->dispatcher.limits = (struct cfg_limits){.max_connections = 20000,
                                                 .idle_timeout_s = 60,
                                                 .connection_memory = 64 << 10,
                                                 .listen_backlog = 4096};
    cfg->storaged.fsync = true;
    /* storaged's pool: libmicrohttpd 0.9.75 zeroes all of it after every request, and small
     * GETs are its hot path: 16.3 us CPU per 4 KiB GET at 32K against 19.8 us at 128K
     * (docs/BENCHMARKS.md, storaged profile). The dispatcher's holds the headers and one
     * upload piece of ~32 KiB. */
    cfg->storaged.limits = (struct cfg_limits){.max_connections = 0,
                                               .idle_timeout_s = 60,
                                               .connection_memory = 32 << 10,
                                               .listen_backlog = 1024};
    cfg->repaird.workers = 4;
    cfg->repaird.health_interval_ms = 5000;
    cfg->repaird.down_after = 3;
    cfg->repaird.max_bytes_per_sec = 64ULL << 20;
    cfg->repaird.rebalance_delete_delay_ms = 30000;
    cfg->repaird.scrub_bytes_per_sec = 1ULL << 20;
}

void cfg_release(struct cfg *cfg)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        char **p;

        if (!cfg_is_string(cfg_keys[i].type))
            continue;
        p = cfg_field(cfg, &cfg_keys[i]);
        if (*p != cfg_keys[i].def)
            free(*p);
        *p = NULL;
    }
}

/* Deep copy of src into dst (uninitialised). Returns 0 or -ENOMEM (dst then empty). */
static int cfg_copy(struct cfg *dst, const struct cfg *src)
{
    *dst = *src;
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (cfg_is_string(cfg_keys[i].type))
            *(char **) cfg_field(dst, &cfg_keys[i]) = NULL;
    }
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        char *s;

        if (!cfg_is_string(k->type))
            continue;
        s = *(char **) cfg_field((struct cfg *) src, k);
        if (s != NULL && s != k->def) {
            s = strdup(s);
            if (s == NULL) {
                cfg_release(dst);
                return -ENOMEM;
            }
        }
        *(char **) cfg_field(dst, k) = s;
    }
    return 0;
}

const char *cfg_limits_format(const struct cfg_limits *l, char *buf, size_t len)
{
    snprintf(buf, len,
             "max_connections=%u max_connections_per_ip=%u idle_timeout=%us "
             "connection_memory=%llu listen_backlog=%u",
             l->max_connections, l->max_connections_per_ip, l->idle_timeout_s,
             (unsigned long long) l->connection_memory, l->listen_backlog);
    return buf;
}

/* ---- value parsers ------------------------------------------------------------------------ */

/* Reads the leading decimal digits of *s into *ret, advancing *s. Returns 0, -EINVAL when
 * there is no digit, -ERANGE when the number does not fit (digits still consumed). */
static int parse_digits(const char **s, uint64_t *ret)
{
    const char *p = *s;
    uint64_t v = 0;
    bool overflow = false;

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned) (*p - '0');

        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
    }
    *s = p;
    *ret = v;
    return overflow ? -ERANGE : 0;
}

int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
    uint64_t v;
    int r;

    r = parse_digits(&s, &v);
    if (r == -EINVAL || *s != '\0')
        return -EINVAL;
    if (r < 0 || v < min || v > max)
        return -ERANGE;
    *ret = (unsigned) v;
    return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
    unsigned shift = 0;
    uint64_t v;
    int r;

    r = parse_digits(&s, &v);
    if (r == -EINVAL)
        return r;
    switch (*s) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        s++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        s++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        s++;
        break;
    case 't':
    case 'T':
        shift = 40;
        s++;
        break;
    default:
        return -EINVAL;
    }
    if (*s != '\0')
        return -EINVAL;
    if (r < 0 || v > (UINT64_MAX >> shift))
        return -ERANGE;
    *ret = v << shift;
    return 0;
}

int parse_duration_ms(const char *s, uint64_t *ret)
{
    uint64_t v, mult;
    int r;

    r = parse_digits(&s, &v);
    if (r == -EINVAL)
        return r;
    if (*s == '\0' || strcasecmp(s, "s") == 0)
        mult = 1000;
    else if (strcasecmp(s, "ms") == 0)
        mult = 1;
    else if (strcasecmp(s, "m") == 0)
        mult = 60 * 1000;
    else if (strcasecmp(s, "h") == 0)
        mult = 3600 * 1000;
    else
        return -EINVAL;
    if (r < 0 || v > UINT64_MAX / mult)
        return -ERANGE;
    *ret = v * mult;
    return 0;
}

int parse_bool(const char *s, bool *ret)
{
    static const char *const yes[] = {"on", "true", "yes", "1"};
    static const char *const no[] = {"off", "false", "no", "0"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* "H:MM" or "HH:MM" into minutes; end_ok allows "24:00". Advances *s. */
static int parse_clock(const char **s, bool end_ok, unsigned *ret)
{
    const char *p = *s;
    unsigned h = 0, m;
    int nd = 0;

    while (*p >= '0' && *p <= '9' && nd < 2) {
        h = h * 10 + (unsigned) (*p++ - '0');
        nd++;
    }
    if (nd == 0 || *p != ':' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
        return -EINVAL;
    m = (unsigned) (p[1] - '0') * 10 + (unsigned) (p[2] - '0');
    *s = p + 3;
    if (m > 59 || h > 24 || (h == 24 && (!end_ok || m != 0)))
        return -ERANGE;
    *ret = h * 60 + m;
    return 0;
}

int parse_window(const char *s, unsigned *ret_start_min, unsigned *ret_end_min)
{
    unsigned start, end;
    int r, r2;

    r = parse_clock(&s, false, &start);
    if (r == -EINVAL)
        return r;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s++ != '-')
        return -EINVAL;
    while (*s == ' ' || *s == '\t')
        s++;
    r2 = parse_clock(&s, true, &end);
    if (r2 == -EINVAL || *s != '\0')
        return -EINVAL;
    if (r < 0 || r2 < 0)
        return -ERANGE;
    if (start == end)
        return -EINVAL; /* an empty window: say 00:00-24:00 for "always" */
    *ret_start_min = start;
    *ret_end_min = end;
    return 0;
}

static int parse_reproxy(const char *s, enum reproxy_mode *ret)
{
    if (strcasecmp(s, "off") == 0)
        *ret = REPROXY_OFF;
    else if (strcasecmp(s, "x-accel-redirect") == 0)
        *ret = REPROXY_X_ACCEL_REDIRECT;
    else if (strcasecmp(s, "x-reproxy-url") == 0)
        *ret = REPROXY_X_REPROXY_URL;
    else
        return -EINVAL;
    return 0;
}

/* libpq's messages quote pieces of s ('... in URI: "postgresql://u:pw@[::1"'), which may hold a
 * password: after every '"', the longest text that also occurs in s, when 3 bytes or longer,
 * becomes "..." (found by bisection: every prefix of a text found in s is in s too). */
static void redact_echoes(char *why, const char *s)
{
    size_t n = strlen(why), slen = strlen(s), w = 0;
    bool mark[256] = {false};

    if (n >= sizeof(mark)) {
        n = sizeof(mark) - 1;
        why[n] = '\0';
    }
    for (size_t q = 0; q < n; q++) {
        size_t lo = 0, hi = n - q - 1;

        if (why[q] != '"')
            continue;
        while (lo < hi) {
            size_t mid = lo + (hi - lo + 1) / 2;

            if (memmem(s, slen, why + q + 1, mid) != NULL)
                lo = mid;
            else
                hi = mid - 1;
        }
        for (size_t i = q + 1; lo >= 3 && i < q + 1 + lo; i++)
            mark[i] = true;
    }
    /* in place: a marked run is at least 3 bytes, so "..." never overtakes the reading */
    for (size_t i = 0; i < n; i++) {
        if (!mark[i]) {
            why[w++] = why[i];
        } else if (i == 0 || !mark[i - 1]) {
            memcpy(why + w, "...", 3);
            w += 3;
        }
    }
    why[w] = '\0';
}

/* Checks a libpq connection string without connecting; *why gets libpq's reason. */
static int check_pg_url(const char *s, char *why, size_t whylen)
{
    PQconninfoOption *opts;
    char *msg = NULL;
    size_t n;

    if (*s == '\0')
        return -EINVAL;
    opts = PQconninfoParse(s, &msg);
    if (opts != NULL) {
        PQconninfoFree(opts);
        return 0;
    }
    if (msg == NULL)
        return -ENOMEM;
    snprintf(why, whylen, "%s", msg);
    redact_echoes(why, s);
    n = strlen(why);
    while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' '))
        why[--n] = '\0';
    PQfreemem(msg);
    return -EINVAL;
}

static int check_redis_url(const char *s)
{
    if (strncmp(s, "redis://", 8) == 0 && s[8] != '\0')
        return 0;
    if (strncmp(s, "unix://", 7) == 0 && s[7] == '/' && s[8] != '\0')
        return 0;
    return -EINVAL;
}

/* ---- setting one key ---------------------------------------------------------------------- */

/* Validates value for k and stores it in cfg. Returns 0, -EINVAL/-ERANGE (why may hold a
 * reason from a library) or -ENOMEM; cfg is unchanged on error. */
static int cfg_apply(struct cfg *cfg, const struct cfg_key *k, const char *value, char *why,
                     size_t whylen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    unsigned u, a, b;
    uint64_t v;
    bool flag;
    enum reproxy_mode rm;
    char *s, **p;
    int r = 0;

    why[0] = '\0';
    switch (k->type) {
    case CFG_PG_URL:
        r = check_pg_url(value, why, whylen);
        break;
    case CFG_REDIS_URL:
        r = check_redis_url(value);
        break;
    case CFG_LISTEN:
        r = addr_parse(value, &ss, &sl);
        break;
    case CFG_PATH:
        r = *value == '\0' ? -EINVAL : 0;
        break;
    case CFG_WINDOW:
        r = parse_window(value, &a, &b);
        break;
    case CFG_UINT:
        r = parse_uint(value, (unsigned) k->min, (unsigned) k->max, &u);
        if (r == 0)
            *(unsigned *) cfg_field(cfg, k) = u;
        return r;
    case CFG_SIZE:
    case CFG_DURATION:
        r = k->type == CFG_SIZE ? parse_size(value, &v) : parse_duration_ms(value, &v);
        if (r == 0 && (v < k->min || v > k->max))
            r = -ERANGE;
        if (r == 0)
            *(uint64_t *) cfg_field(cfg, k) = v;
        return r;
    case CFG_SECONDS:
        r = parse_duration_ms(value, &v);
        if (r == 0 && v % 1000 != 0)
            r = -EINVAL; /* libmicrohttpd counts whole seconds: never round silently */
        if (r == 0 && (v < k->min || v > k->max))
            r = -ERANGE;
        if (r == 0)
            *(unsigned *) cfg_field(cfg, k) = (unsigned) (v / 1000);
        return r;
    case CFG_BOOL:
        r = parse_bool(value, &flag);
        if (r == 0)
            *(bool *) cfg_field(cfg, k) = flag;
        return r;
    case CFG_REPROXY:
        r = parse_reproxy(value, &rm);
        if (r == 0)
            *(enum reproxy_mode *) cfg_field(cfg, k) = rm;
        return r;
    }
    if (r < 0)
        return r;
    s = strdup(value);
    if (s == NULL)
        return -ENOMEM;
    p = cfg_field(cfg, k);
    if (*p != k->def)
        free(*p);
    *p = s;
    return 0;
}

/* Writes "prefix: fmt..." into err (prefix "PATH:LINE" or nothing). */
static void cfg_err(char *err, size_t errlen, const char *path, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void cfg_err(char *err, size_t errlen, const char *path, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int n = 0;

    if (err == NULL || errlen == 0)
        return;
    if (path != NULL && line > 0)
        n = snprintf(err, errlen, "%s:%u: ", path, line);
    else if (path != NULL)
        n = snprintf(err, errlen, "%s: ", path);
    if (n < 0 || (size_t) n >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t) n, fmt, ap);
    va_end(ap);
    /* the message echoes the file's bytes: control characters must not reach a terminal */
    for (char *p = err; *p; p++) {
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            *p = '?';
    }
}

/* Explains why value was refused for k. URLs are not echoed: they may hold passwords. */
static void cfg_bad_value(char *err, size_t errlen, const char *path, unsigned line,
                          const struct cfg_key *k, const char *value, int r, const char *why)
{
    const char *range = r == -ERANGE ? "out of range: " : "";
    const char *dots = strlen(value) > 80 ? "..." : "";

    if (r == -ENOMEM)
        cfg_err(err, errlen, path, line, "out of memory setting %s", k->name);
    else if (k->type == CFG_PG_URL || k->type == CFG_REDIS_URL)
        cfg_err(err, errlen, path, line, "bad value for %s%s (%s%s%s%s)", k->name,
                *value ? "" : ": empty", why[0] ? why : "", why[0] ? "; expected " : "", range,
                k->expect);
    else
        cfg_err(err, errlen, path, line, "bad value for %s: '%.80s%s' (%s%s)", k->name, value, dots,
                range, k->expect);
}

static const struct cfg_key *cfg_find(const char *section, const char *key)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (strcmp(cfg_keys[i].section, section) == 0 && strcmp(cfg_keys[i].key, key) == 0)
            return &cfg_keys[i];
    }
    return NULL;
}

int cfg_set(struct cfg *cfg, const char *section_key, const char *value, char *err, size_t errlen)
{
    const struct cfg_key *k = NULL;
    char why[256];
    int r;

    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (strcmp(cfg_keys[i].name, section_key) == 0)
            k = &cfg_keys[i];
    }
    if (k == NULL) {
        cfg_err(err, errlen, NULL, 0,
                "unknown key '%.80s' (expected section.key, e.g. "
                "storaged.listen)",
                section_key);
        return -EINVAL;
    }
    if (value == NULL) {
        cfg_err(err, errlen, NULL, 0, "bad value for %s: missing", k->name);
        return -EINVAL;
    }
    if (strnlen(value, CFG_LINE_MAX + 1) > CFG_LINE_MAX) {
        cfg_err(err, errlen, NULL, 0, "bad value for %s: longer than %d bytes", k->name,
                CFG_LINE_MAX);
        return -EINVAL;
    }
    r = cfg_apply(cfg, k, value, why, sizeof(why));
    if (r < 0)
        cfg_bad_value(err, errlen, NULL, 0, k, value, r, why);
    return r;
}

/* ---- the file ----------------------------------------------------------------------------- */

struct cfg_parser {
    const char *path;
    unsigned line;
    int section;                          /* index into cfg_sections, -1 before the first */
    unsigned section_line[CFG_NSECTIONS]; /* where each section was opened, 0 = not yet */
    unsigned key_line[CFG_NKEYS];         /* where each key was set, 0 = not yet */
    char *err;
    size_t errlen;
};

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Reads one line (without its newline) into buf, which holds CFG_LINE_MAX + 1 bytes.
 * Returns 1, 0 at end of file, -E2BIG for a longer line, -EBADMSG for a NUL byte, -errno. */
static int cfg_read_line(FILE *f, char *buf)
{
    size_t n = 0;
    int c;

    errno = 0;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (c == '\0')
            return -EBADMSG;
        if (n == CFG_LINE_MAX)
            return -E2BIG;
        buf[n++] = (char) c;
    }
    if (c == EOF && ferror(f))
        return errno > 0 ? -errno : -EIO;
    buf[n] = '\0';
    return c == EOF && n == 0 ? 0 : 1;
}

/* Trims trailing blanks (and the CR of a CRLF file) in place. */
static void rtrim(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (is_ws(s[n - 1]) || s[n - 1] == '\r'))
        s[--n] = '\0';
}

/* True when what follows a token is only blanks and perhaps a comment. */
static bool only_comment(const char *s)
{
    while (is_ws(*s))
        s++;
    return *s == '\0' || *s == ';' || *s == '#';
}

static int cfg_section_line(struct cfg_parser *ps, char *s)
{
    char *end = strchr(s, ']'), *name = s + 1;
    int idx = -1;

    if (end == NULL || !only_comment(end + 1)) {
        cfg_err(ps->err, ps->errlen, ps->path, ps->line,
                "malformed section header (expected '[name]')");
        return -EINVAL;
    }
    *end = '\0';
    while (is_ws(*name))
        name++;
    rtrim(name);
    for (size_t i = 0; i < CFG_NSECTIONS; i++) {
        if (strcmp(name, cfg_sections[i]) == 0)
            idx = (int) i;
    }
    if (idx < 0) {
        cfg_err(ps->err, ps->errlen, ps->path, ps->line,
                "unknown section [%.80s] (expected database, redis, dispatcher, storaged or "
                "repaird)",
                name);
        return -EINVAL;
    }
    if (ps->section_line[idx] != 0) {
        cfg_err(ps->err, ps->errlen, ps->path, ps->line,
                "duplicate section [%s] (first on line %u)", name, ps->section_line[idx]);
        return -EINVAL;
    }
    ps->section_line[idx] = ps->line;
    ps->section = idx;
    return 0;
}

/* Extracts the value after '=' in place: blanks trimmed, an inline comment (';' or '#' at
 * the start or after a blank) dropped, optional double quotes removed. */
static int cfg_value_text(char *v, char **ret, const char **why)
{
    char *q;

    while (is_ws(*v))
        v++;
    if (*v == '"') {
        q = strchr(v + 1, '"');
        if (q == NULL) {
            *why = "unterminated double quote";
            return -EINVAL;
        }
        if (!only_comment(q + 1)) {
            *why = "text after the closing quote";
            return -EINVAL;
        }
        *q = '\0';
        *ret = v + 1;
        return 0;
    }
    for (char *p = v; *p != '\0'; p++) {
        if ((*p == ';' || *p == '#') && (p == v || is_ws(p[-1]))) {
            *p = '\0';
            break;
        }
    }
    rtrim(v);
    *ret = v;
    return 0;
}

static int cfg_key_line(struct cfg_parser *ps, struct cfg *cfg, char *s)
{
    char *eq = strchr(s, '='), *value, why[256];
    const char *section, *qwhy = NULL;
    const struct cfg_key *k;
    size_t idx;
    int r;

    if (eq == NULL) {
        cfg_err(ps->err, ps->errlen, ps->path, ps->line,
                "line without '=' (expected 'key = value', '[section]' or a comment)");
        return -EINVAL;
    }
    *eq = '\0';
    rtrim(s);
    if (*s == '\0') {
        cfg_err(ps->err, ps->errlen, ps->path, ps->line, "missing key before '='");
        return -EINVAL;
    }
    if (ps->section < 0) {
        cfg_err(ps->err, ps->errlen, ps->path, ps->line,
                "key '%.80s' outside any section (put it under [section])", s);
        return -EINVAL;
    }
    section = cfg_sections[ps->section];
    k = cfg_find(section, s);
    if (k == NULL) {
        char known[256] = "";
        size_t n = 0;

        for (size_t i = 0; i < CFG_NKEYS && n < sizeof(known); i++) {
            if (strcmp(cfg_keys[i].section, section) == 0)
                n += (size_t) snprintf(known + n, sizeof(known) - n, "%s%s", n ? ", " : "",
                                       cfg_keys[i].key);
        }
        cfg_err(ps->err, ps->errlen, ps->path, ps->line, "unknown key '%.80s' in [%s] (known: %s)",
                s, section, known);
        return -EINVAL;
    }
    idx = (size_t) (k - cfg_keys);
    if (ps->key_line[idx] != 0) {
        cfg_err(ps->err, ps->errlen, ps->path, ps->line,
                "duplicate key '%s' in [%s] (first set on line %u)", k->key, section,
                ps->key_line[idx]);
        return -EINVAL;
    }
    ps->key_line[idx] = ps->line;
    if (cfg_value_text(eq + 1, &value, &qwhy) < 0) {
        cfg_err(ps->err, ps->errlen, ps->path, ps->line, "bad value for %s: %s", k->name, qwhy);
        return -EINVAL;
    }
    r = cfg_apply(cfg, k, value, why, sizeof(why));
    if (r < 0)
        cfg_bad_value(ps->err, ps->errlen, ps->path, ps->line, k, value, r, why);
    return r;
}

static int cfg_line(struct cfg_parser *ps, struct cfg *cfg, char *s)
{
    for (char *p = s; *p != '\0'; p++) {
        if ((unsigned char) *p < 0x20 && *p != '\t' && !(*p == '\r' && p[1] == '\0')) {
            cfg_err(ps->err, ps->errlen, ps->path, ps->line, "control character 0x%02x in line",
                    (unsigned) (unsigned char) *p);
            return -EINVAL;
        }
    }
    if (ps->line == 1 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3; /* a UTF-8 byte order mark */
    while (is_ws(*s))
        s++;
    rtrim(s);
    if (*s == '\0' || *s == ';' || *s == '#')
        return 0;
    if (*s == '[')
        return cfg_section_line(ps, s);
    return cfg_key_line(ps, cfg, s);
}

int cfg_load_file(struct cfg *cfg, const char *path, bool missing_ok, char *err, size_t errlen)
{
    struct cfg_parser ps = {.path = path, .section = -1, .err = err, .errlen = errlen};
    struct cfg tmp;
    bool have_tmp = false;
    char *line = NULL;
    FILE *f;
    int r;

    f = fopen(path, "re");
    if (f == NULL) {
        r = -errno;
        if (r == -ENOENT && missing_ok)
            return 0;
        cfg_err(err, errlen, path, 0, "cannot open: %s", strerror(-r));
        return r;
    }
    line = malloc(CFG_LINE_MAX + 1);
    r = line == NULL ? -ENOMEM : cfg_copy(&tmp, cfg);
    if (r < 0) {
        cfg_err(err, errlen, path, 0, "out of memory");
        goto out;
    }
    have_tmp = true;
    for (;;) {
        ps.line++;
        r = cfg_read_line(f, line);
        if (r == 0)
            break;
        if (r == -E2BIG) {
            cfg_err(err, errlen, path, ps.line, "line longer than %d bytes", CFG_LINE_MAX);
            r = -EINVAL;
        } else if (r == -EBADMSG) {
            cfg_err(err, errlen, path, ps.line, "NUL byte in line");
            r = -EINVAL;
        } else if (r < 0) {
            cfg_err(err, errlen, path, 0, "cannot read: %s", strerror(-r));
        } else {
            r = cfg_line(&ps, &tmp, line);
        }
        if (r < 0)
            goto out;
    }
    cfg_release(cfg);
    *cfg = tmp;
    have_tmp = false;
    r = 0;
out:
    if (have_tmp)
        cfg_release(&tmp);
    free(line);
    fclose(f);
    return r;
}

const char *cfg_resolve_path(const char *explicit_path, bool *ret_missing_ok)
{
    const char *env;

    *ret_missing_ok = false;
    if (explicit_path != NULL)
        return explicit_path;
    env = getenv("STF_CONFIG");
    if (env != NULL && *env != '\0')
        return env;
    *ret_missing_ok = true;
    return CFG_DEFAULT_PATH;
}

int cfg_load(struct cfg *cfg, const char *explicit_path, char *err, size_t errlen)
{
    bool missing_ok;
    const char *path = cfg_resolve_path(explicit_path, &missing_ok);

    return cfg_load_file(cfg, path, missing_ok, err, errlen);
}
