/* test/fuzz/fuzz_config.c — stf.conf parsing (common/config.c) from a memfd: all or nothing,
 * accepted values within their documented ranges, a written-out config reads back the same,
 * one-line errors that never echo a URL's credentials; and the value parsers vs references. */
#include "fuzz.h"

#include "addr.h"
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define CONFIG_INPUT_MAX (3 * CFG_LINE_MAX)
#define VALUE_INPUT_MAX 64
#define ERR_MAX 512

static int conf_fd = -1;
static char conf_path[64];

/* The key table as SPEC §3 and config.h document it, independent of config.c's. */
enum kind { K_STR, K_UINT, K_SIZE, K_MS, K_BOOL, K_REPROXY };
struct key {
    const char *section, *key;
    enum kind kind;
    size_t off;
};
#define F(member) offsetof(struct cfg, member)
static const struct key keys[] = {
    {"database", "url", K_STR, F(database.url)},
    {"redis", "url", K_STR, F(redis.url)},
    {"dispatcher", "listen", K_STR, F(dispatcher.listen)},
    {"dispatcher", "threads", K_UINT, F(dispatcher.threads)},
    {"dispatcher", "max_object_size", K_SIZE, F(dispatcher.max_object_size)},
    {"dispatcher", "reproxy", K_REPROXY, F(dispatcher.reproxy)},
    {"storaged", "listen", K_STR, F(storaged.listen)},
    {"storaged", "root", K_STR, F(storaged.root)},
    {"storaged", "fsync", K_BOOL, F(storaged.fsync)},
    {"repaird", "workers", K_UINT, F(repaird.workers)},
    {"repaird", "health_interval", K_MS, F(repaird.health_interval_ms)},
    {"repaird", "down_after", K_UINT, F(repaird.down_after)},
    {"repaird", "max_bytes_per_sec", K_SIZE, F(repaird.max_bytes_per_sec)},
    {"repaird", "rebalance_window", K_STR, F(repaird.rebalance_window)},
    {"repaird", "rebalance_delete_delay", K_MS, F(repaird.rebalance_delete_delay_ms)},
    {"repaird", "scrub_bytes_per_sec", K_SIZE, F(repaird.scrub_bytes_per_sec)},
};
#undef F
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Field i of cfg: exactly one of the pointers is set (none for the reproxy enum). */
static void field(struct cfg *c, size_t i, char ***s, unsigned **u, uint64_t **v, bool **b)
{
    void *p = (char *) c + keys[i].off;

    *s = keys[i].kind == K_STR ? p : NULL;
    *u = keys[i].kind == K_UINT ? p : NULL;
    *v = keys[i].kind == K_SIZE || keys[i].kind == K_MS ? p : NULL;
    *b = keys[i].kind == K_BOOL ? p : NULL;
}

static bool cfg_equal(struct cfg *a, struct cfg *b)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char **sa, **sb;
        unsigned *ua, *ub;
        uint64_t *va, *vb;
        bool *ba, *bb;

        field(a, i, &sa, &ua, &va, &ba);
        field(b, i, &sb, &ub, &vb, &bb);
        if ((sa && strcmp(*sa, *sb) != 0) || (ua && *ua != *ub) || (va && *va != *vb) ||
            (ba && *ba != *bb))
            return false;
    }
    return a->dispatcher.reproxy == b->dispatcher.reproxy;
}

/* Writes the key's value as the file would spell it into out. */
static void value_text(struct cfg *c, size_t i, char *out, size_t outlen)
{
    static const char *const reproxy[] = {"off", "x-accel-redirect", "x-reproxy-url"};
    char **s;
    unsigned *u;
    uint64_t *v;
    bool *b;

    field(c, i, &s, &u, &v, &b);
    if (s)
        snprintf(out, outlen, "%s", *s);
    else if (u)
        snprintf(out, outlen, "%u", *u);
    else if (v && keys[i].kind == K_MS)
        snprintf(out, outlen, "%llums", (unsigned long long) *v);
    else if (v)
        snprintf(out, outlen, "%llu", (unsigned long long) *v);
    else if (b)
        snprintf(out, outlen, "%s", *b ? "on" : "off");
    else
        snprintf(out, outlen, "%s", reproxy[c->dispatcher.reproxy]);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Whether v reads back unchanged without quotes. */
static bool plain_ok(const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || is_ws(v[0]) || is_ws(v[n - 1]) || strchr("\";#", v[0]))
        return false;
    for (size_t i = 1; i < n; i++) {
        if ((v[i] == ';' || v[i] == '#') && is_ws(v[i - 1]))
            return false;
    }
    return true;
}

static int load(struct cfg *c, const char *text, size_t len, char *err)
{
    FUZZ_ASSERT(ftruncate(conf_fd, 0) == 0 &&
                    (len == 0 || pwrite(conf_fd, text, len, 0) == (ssize_t) len),
                "memfd: %s", strerror(errno));
    err[0] = '\0';
    return cfg_load_file(c, conf_path, false, err, ERR_MAX);
}

/* Every accepted value within what SPEC §3 allows. */
static void check_ranges(struct cfg *c)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    unsigned a, b;

    FUZZ_ASSERT(c->dispatcher.threads >= 1 && c->dispatcher.threads <= 256, "threads %u",
                c->dispatcher.threads);
    FUZZ_ASSERT(c->repaird.workers >= 1 && c->repaird.workers <= 256, "workers %u",
                c->repaird.workers);
    FUZZ_ASSERT(c->repaird.down_after <= 1000000, "down_after %u", c->repaird.down_after);
    FUZZ_ASSERT(c->dispatcher.max_object_size >= 1, "max_object_size 0");
    FUZZ_ASSERT(c->repaird.health_interval_ms >= 10 && c->repaird.health_interval_ms <= 86400000,
                "health_interval %llu", (unsigned long long) c->repaird.health_interval_ms);
    FUZZ_ASSERT(c->repaird.rebalance_delete_delay_ms <= 86400000, "rebalance_delete_delay %llu",
                (unsigned long long) c->repaird.rebalance_delete_delay_ms);
    FUZZ_ASSERT(c->dispatcher.reproxy <= REPROXY_X_REPROXY_URL, "reproxy %d",
                c->dispatcher.reproxy);
    FUZZ_ASSERT(addr_parse(c->dispatcher.listen, &ss, &sl) == 0, "'%s'", c->dispatcher.listen);
    FUZZ_ASSERT(addr_parse(c->storaged.listen, &ss, &sl) == 0, "'%s'", c->storaged.listen);
    FUZZ_ASSERT(parse_window(c->repaird.rebalance_window, &a, &b) == 0 && a < 1440 && b <= 1440 &&
                    a != b,
                "'%s'", c->repaird.rebalance_window);
    FUZZ_ASSERT(c->storaged.root[0] != '\0', "empty root");
    FUZZ_ASSERT(strncmp(c->redis.url, "redis://", 8) == 0 ||
                    strncmp(c->redis.url, "unix:///", 8) == 0,
                "'%s'", c->redis.url);
    FUZZ_ASSERT(c->database.url[0] != '\0', "empty database url");
}

/* Writes c out as a file and reads it back, then sets every key through cfg_set. */
static void check_round_trip(struct cfg *c)
{
    char *text = malloc(NKEYS * (CFG_LINE_MAX + 64)), *val = malloc(CFG_LINE_MAX + 1);
    char err[ERR_MAX], name[64];
    const char *section = "";
    struct cfg back, set;
    size_t len = 0;

    FUZZ_ASSERT(text && val, "malloc");
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(section, keys[i].section) != 0) {
            section = keys[i].section;
            len += (size_t) sprintf(text + len, "[%s]\n", section);
        }
        value_text(c, i, val, CFG_LINE_MAX + 1);
        FUZZ_ASSERT(plain_ok(val) || !strchr(val, '"'), "%s.%s = '%s' cannot be written", section,
                    keys[i].key, val);
        len += (size_t) sprintf(text + len, plain_ok(val) ? "%s=%s\n" : "%s=\"%s\"\n", keys[i].key,
                                val);
    }
    cfg_init(&back);
    FUZZ_ASSERT(load(&back, text, len, err) == 0, "written config refused: %s\n%s", err, text);
    FUZZ_ASSERT(cfg_equal(c, &back), "written config reads back differently:\n%s", text);
    cfg_release(&back);

    cfg_init(&set);
    for (size_t i = 0; i < NKEYS; i++) {
        snprintf(name, sizeof(name), "%s.%s", keys[i].section, keys[i].key);
        value_text(c, i, val, CFG_LINE_MAX + 1);
        FUZZ_ASSERT(cfg_set(&set, name, val, err, sizeof(err)) == 0, "cfg_set %s '%s': %s", name,
                    val, err);
    }
    FUZZ_ASSERT(cfg_equal(c, &set), "cfg_set gives another config");
    cfg_release(&set);
    free(text);
    free(val);
}

/* The value of line `line` of text (after '=', blanks and quotes removed), into out. */
static void line_value(const char *text, size_t len, unsigned line, char *out, size_t outlen)
{
    const char *p = text, *end = text + len, *eq, *nl;
    size_t n;

    out[0] = '\0';
    for (unsigned l = 1; l < line && p < end; l++) {
        nl = memchr(p, '\n', (size_t) (end - p));
        p = nl ? nl + 1 : end;
    }
    nl = memchr(p, '\n', (size_t) (end - p));
    n = (size_t) ((nl ? nl : end) - p);
    eq = memchr(p, '=', n);
    if (!eq)
        return;
    n -= (size_t) (eq + 1 - p);
    p = eq + 1;
    while (n > 0 && (is_ws(*p) || *p == '"'))
        p++, n--;
    while (n > 0 && (is_ws(p[n - 1]) || p[n - 1] == '"' || p[n - 1] == '\r'))
        n--;
    snprintf(out, outlen, "%.*s", (int) n, p);
}

/* A refused file: one line naming the file, and no credentials from a URL in it. */
static void check_error(const char *text, size_t len, int r, const char *err)
{
    char value[CFG_LINE_MAX + 1], said[ERR_MAX], *at, *scheme, *example;
    unsigned line = 0;
    int at_off = 0;

    FUZZ_ASSERT(r == -EINVAL || r == -ERANGE, "error %d: %s", r, err);
    FUZZ_ASSERT(err[0] != '\0' && strchr(err, '\n') == NULL, "error text '%s'", err);
    FUZZ_ASSERT(strncmp(err, conf_path, strlen(conf_path)) == 0, "'%s' does not name the file",
                err);
    if (sscanf(err + strlen(conf_path), ":%u: %n", &line, &at_off) < 1 || at_off == 0)
        return;
    if (strncmp(err + strlen(conf_path) + at_off, "bad value for database.url", 26) != 0 &&
        strncmp(err + strlen(conf_path) + at_off, "bad value for redis.url", 23) != 0)
        return;
    line_value(text, len, line, value, sizeof(value));
    /* what the error says about the value, without the fixed example of a valid one */
    snprintf(said, sizeof(said), "%s", err);
    example = strstr(said, "a libpq connection string or URI, e.g.");
    if (!example)
        example = strstr(said, "redis://HOST:PORT[/DB] or");
    if (example)
        *example = '\0';
    /* a URL with credentials ('@') is never echoed, whole or as its "user:password@" */
    FUZZ_ASSERT(strlen(value) < 8 || !strchr(value, '@') || !strstr(said, value),
                "the URL is echoed: %s", err);
    scheme = strstr(value, "://");
    at = scheme ? strchr(scheme + 3, '@') : NULL;
    if (at && memchr(scheme + 3, ':', (size_t) (at - scheme - 3)) && at - scheme - 3 >= 4) {
        at[1] = '\0'; /* "user:password@" */
        FUZZ_ASSERT(!strstr(said, scheme + 3), "credentials '%s' echoed: %s", scheme + 3, err);
    }
}

static void fuzz_file(const uint8_t *data, size_t size)
{
    struct cfg c, defaults;
    char err[ERR_MAX];
    int r;

    if (size > CONFIG_INPUT_MAX)
        size = CONFIG_INPUT_MAX;
    cfg_init(&c);
    cfg_init(&defaults);
    r = load(&c, (const char *) data, size, err);
    if (r == 0) {
        check_ranges(&c);
        check_round_trip(&c);
    } else {
        check_error((const char *) data, size, r, err);
        FUZZ_ASSERT(cfg_equal(&c, &defaults), "a refused file changed the config");
    }
    cfg_release(&c);
}

/* ---- the value parsers against references ------------------------------------------------- */

/* Leading digits as a 128-bit number (saturated); *n = how many. */
static unsigned __int128 ref_digits(const char **s, size_t *n)
{
    unsigned __int128 v = 0, cap = (unsigned __int128) 1 << 100;

    for (*n = 0; **s >= '0' && **s <= '9'; (*s)++, (*n)++) {
        if (v < cap)
            v = v * 10 + (unsigned) (**s - '0');
    }
    return v;
}

static void check_size(const char *s)
{
    const char *p = s;
    unsigned __int128 v;
    uint64_t got = 0;
    size_t n;
    int r = parse_size(s, &got), want;
    unsigned shift = 0;

    v = ref_digits(&p, &n);
    if (*p && strchr("kKmMgGtT", *p)) {
        shift = strchr("kK", *p) ? 10 : strchr("mM", *p) ? 20 : strchr("gG", *p) ? 30 : 40;
        p++;
    }
    if (n == 0 || *p != '\0')
        want = -EINVAL;
    else
        want = (v << shift) > UINT64_MAX ? -ERANGE : 0;
    FUZZ_ASSERT(r == want, "parse_size('%s') = %d, want %d", s, r, want);
    if (r == 0)
        FUZZ_ASSERT(got == (uint64_t) (v << shift), "parse_size('%s') = %llu", s,
                    (unsigned long long) got);
}

static void check_duration(const char *s)
{
    const char *p = s;
    unsigned __int128 v;
    uint64_t got = 0, mult = 0;
    size_t n;
    int r = parse_duration_ms(s, &got), want;

    v = ref_digits(&p, &n);
    if (*p == '\0' || strcasecmp(p, "s") == 0)
        mult = 1000;
    else if (strcasecmp(p, "ms") == 0)
        mult = 1;
    else if (strcasecmp(p, "m") == 0)
        mult = 60000;
    else if (strcasecmp(p, "h") == 0)
        mult = 3600000;
    if (n == 0 || mult == 0)
        want = -EINVAL;
    else
        want = v * mult > UINT64_MAX ? -ERANGE : 0;
    FUZZ_ASSERT(r == want, "parse_duration_ms('%s') = %d, want %d", s, r, want);
    if (r == 0)
        FUZZ_ASSERT(got == (uint64_t) (v * mult), "parse_duration_ms('%s') = %llu", s,
                    (unsigned long long) got);
}

static void check_uint(const char *s, unsigned min, unsigned max)
{
    const char *p = s;
    unsigned __int128 v;
    unsigned got = 0;
    size_t n;
    int r = parse_uint(s, min, max, &got), want;

    v = ref_digits(&p, &n);
    if (n == 0 || *p != '\0')
        want = -EINVAL;
    else
        want = v < min || v > max ? -ERANGE : 0;
    FUZZ_ASSERT(r == want, "parse_uint('%s', %u, %u) = %d, want %d", s, min, max, r, want);
    if (r == 0)
        FUZZ_ASSERT(got == (unsigned) v, "parse_uint('%s') = %u", s, got);
}

static void check_bool(const char *s)
{
    static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false",
                                                                                "no", "0"};
    bool got = false, want = false;
    int r = parse_bool(s, &got), rw = -EINVAL;

    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            rw = 0, want = true;
        if (strcasecmp(s, no[i]) == 0)
            rw = 0, want = false;
    }
    FUZZ_ASSERT(r == rw && (r < 0 || got == want), "parse_bool('%s') = %d/%d", s, r, got);
}

/* "H:MM" or "HH:MM"; *ret = minutes, or -1 when out of range. Returns false on bad syntax. */
static bool ref_clock(const char **s, bool end_ok, int *ret)
{
    const char *p = *s;
    int h = 0, nd = 0, m;

    while (*p >= '0' && *p <= '9' && nd < 2)
        h = h * 10 + (*p++ - '0'), nd++;
    if (nd == 0 || p[0] != ':' || !(p[1] >= '0' && p[1] <= '9') || !(p[2] >= '0' && p[2] <= '9'))
        return false;
    m = (p[1] - '0') * 10 + (p[2] - '0');
    *s = p + 3;
    *ret = m <= 59 && (h < 24 || (h == 24 && end_ok && m == 0)) ? h * 60 + m : -1;
    return true;
}

static void check_window(const char *s)
{
    const char *p = s;
    unsigned a = 0, b = 0;
    int r = parse_window(s, &a, &b), want, ra, rb;
    char back[32];

    if (!ref_clock(&p, false, &ra)) {
        want = -EINVAL;
    } else {
        while (is_ws(*p))
            p++;
        if (*p++ != '-') {
            want = -EINVAL;
        } else {
            while (is_ws(*p))
                p++;
            if (!ref_clock(&p, true, &rb) || *p != '\0')
                want = -EINVAL;
            else if (ra < 0 || rb < 0)
                want = -ERANGE;
            else
                want = ra == rb ? -EINVAL : 0;
        }
    }
    FUZZ_ASSERT(r == want, "parse_window('%s') = %d, want %d", s, r, want);
    if (r < 0)
        return;
    FUZZ_ASSERT((int) a == ra && (int) b == rb && a < 1440 && b <= 1440, "'%s': %u-%u", s, a, b);
    snprintf(back, sizeof(back), "%02u:%02u-%02u:%02u", a / 60, a % 60, b / 60, b % 60);
    FUZZ_ASSERT(parse_window(back, &a, &b) == 0 && (int) a == ra && (int) b == rb, "'%s'", back);
}

static void fuzz_values(uint8_t which, const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size, VALUE_INPUT_MAX);

    switch (which) {
    case 1:
        check_size(s);
        break;
    case 2:
        check_duration(s);
        break;
    case 3:
        check_uint(s, 1, 256);
        check_uint(s, 0, UINT32_MAX);
        break;
    case 4:
        check_bool(s);
        break;
    default:
        check_window(s);
        break;
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a first byte 0x01..0x05 picks a value parser; anything else is a whole file */
    if (size > 0 && data[0] >= 1 && data[0] <= 5)
        fuzz_values(data[0], data + 1, size - 1);
    else
        fuzz_file(data, size);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    conf_fd = memfd_create("stf.conf", MFD_CLOEXEC);
    FUZZ_ASSERT(conf_fd >= 0, "memfd_create: %s", strerror(errno));
    snprintf(conf_path, sizeof(conf_path), "/proc/self/fd/%d", conf_fd);
    return 0;
}
