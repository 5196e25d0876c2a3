/* clusterctl/output.c — aligned tables, a small JSON writer and flat-object reader, and human
 * byte sizes for clusterctl's output. */
#include "output.h"

#include "buf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define OUT_MAX_COLS 32

struct out_table {
    size_t ncols;
    size_t nrows; /* rows, header included */
    size_t cap;
    char **cells; /* nrows * ncols, owned */
    enum out_align align[OUT_MAX_COLS];
};

static int out_table_push(struct out_table *t, const char *const *cells)
{
    char **row;

    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **p = realloc(t->cells, cap * t->ncols * sizeof(*p));

        if (!p)
            return -ENOMEM;
        t->cells = p;
        t->cap = cap;
    }
    row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = strdup(cells[i] ? cells[i] : "-");
        if (!row[i]) {
            while (i-- > 0)
                free(row[i]);
            return -ENOMEM;
        }
    }
    t->nrows++;
    return 0;
}

struct out_table *out_table_new(size_t ncols, const char *const *headers,
                                const enum out_align *align)
{
    struct out_table *t;

    if (ncols == 0 || ncols > OUT_MAX_COLS)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++)
        t->align[i] = align ? align[i] : OUT_LEFT;
    if (out_table_push(t, headers) < 0) {
        out_table_free(t);
        return NULL;
    }
    return t;
}

void out_table_free(struct out_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

int out_table_add(struct out_table *t, const char *const *cells)
{
    return out_table_push(t, cells);
}

size_t out_table_rows(const struct out_table *t)
{
    return t->nrows - 1;
}

/* Display width: counts UTF-8 code points, not bytes (names may hold non-ASCII text). */
static size_t out_width(const char *s)
{
    size_t w = 0;

    for (; *s; s++)
        if (((unsigned char) *s & 0xc0) != 0x80)
            w++;
    return w;
}

int out_table_print(const struct out_table *t, FILE *f)
{
    size_t width[OUT_MAX_COLS] = {0};

    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = out_width(t->cells[r * t->ncols + c]);

            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            int pad = (int) (width[c] - out_width(cell));
            bool last = c + 1 == t->ncols;

            if (c > 0)
                fputs("  ", f);
            if (t->align[c] == OUT_RIGHT)
                fprintf(f, "%*s%s", pad, "", cell);
            else if (last)
                fputs(cell, f);
            else
                fprintf(f, "%s%*s", cell, pad, "");
        }
        fputc('\n', f);
    }
    return ferror(f) ? -EIO : 0;
}

/* ---- JSON writer ---- */

void out_json_begin(struct out_json *j, struct buf *b)
{
    memset(j, 0, sizeof(*j));
    j->b = b;
}

static void out_json_set(struct out_json *j, int r)
{
    if (r < 0 && j->err == 0)
        j->err = r;
}

/* Writes the separator and the key (when inside an object) before a value. */
static void out_json_key(struct out_json *j, const char *key)
{
    if (j->err)
        return;
    if (j->need_comma[j->depth])
        out_json_set(j, buf_append(j->b, ",", 1));
    j->need_comma[j->depth] = true;
    if (key) {
        out_json_set(j, buf_json_str(j->b, key));
        out_json_set(j, buf_append(j->b, ":", 1));
    }
}

static void out_json_open(struct out_json *j, const char *key, const char *ch)
{
    out_json_key(j, key);
    if (j->err)
        return;
    if (j->depth >= OUT_JSON_MAX_DEPTH) {
        j->err = -EINVAL;
        return;
    }
    out_json_set(j, buf_append(j->b, ch, 1));
    j->depth++;
    j->need_comma[j->depth] = false;
}

static void out_json_close(struct out_json *j, const char *ch)
{
    if (j->err)
        return;
    if (j->depth == 0) {
        j->err = -EINVAL;
        return;
    }
    j->depth--;
    out_json_set(j, buf_append(j->b, ch, 1));
}

void out_json_obj_open(struct out_json *j, const char *key)
{
    out_json_open(j, key, "{");
}

void out_json_obj_close(struct out_json *j)
{
    out_json_close(j, "}");
}

void out_json_arr_open(struct out_json *j, const char *key)
{
    out_json_open(j, key, "[");
}

void out_json_arr_close(struct out_json *j)
{
    out_json_close(j, "]");
}

void out_json_str(struct out_json *j, const char *key, const char *s)
{
    out_json_key(j, key);
    if (!j->err)
        out_json_set(j, s ? buf_json_str(j->b, s) : buf_puts(j->b, "null"));
}

void out_json_int(struct out_json *j, const char *key, int64_t v)
{
    out_json_key(j, key);
    if (!j->err)
        out_json_set(j, buf_printf(j->b, "%" PRId64, v));
}

void out_json_uint(struct out_json *j, const char *key, uint64_t v)
{
    out_json_key(j, key);
    if (!j->err)
        out_json_set(j, buf_printf(j->b, "%" PRIu64, v));
}

void out_json_bool(struct out_json *j, const char *key, bool v)
{
    out_json_key(j, key);
    if (!j->err)
        out_json_set(j, buf_puts(j->b, v ? "true" : "false"));
}

void out_json_null(struct out_json *j, const char *key)
{
    out_json_key(j, key);
    if (!j->err)
        out_json_set(j, buf_puts(j->b, "null"));
}

int out_json_end(struct out_json *j)
{
    if (j->err == 0 && j->depth != 0)
        j->err = -EINVAL;
    return j->err;
}

/* ---- JSON reader ---- */

struct out_scan {
    const char *p, *end;
};

static void out_scan_ws(struct out_scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* Skips a string literal at s->p; sets *ret and *ret_len to its raw contents. */
static int out_scan_str(struct out_scan *s, const char **ret, size_t *ret_len)
{
    const char *start;

    if (s->p >= s->end || *s->p != '"')
        return -EINVAL;
    start = ++s->p;
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\')
            s->p++;
        s->p++;
    }
    if (s->p >= s->end)
        return -EINVAL;
    *ret = start;
    *ret_len = (size_t) (s->p - start);
    s->p++;
    return 0;
}

/* Skips any value, nested ones included (depth-bounded). */
static int out_scan_value(struct out_scan *s, unsigned depth)
{
    const char *str;
    size_t len;

    out_scan_ws(s);
    if (s->p >= s->end || depth > 64)
        return -EINVAL;
    if (*s->p == '"')
        return out_scan_str(s, &str, &len);
    if (*s->p == '{' || *s->p == '[') {
        char close = *s->p == '{' ? '}' : ']';

        s->p++;
        out_scan_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        for (;;) {
            if (close == '}') {
                out_scan_ws(s);
                if (out_scan_str(s, &str, &len) < 0)
                    return -EINVAL;
                out_scan_ws(s);
                if (s->p >= s->end || *s->p++ != ':')
                    return -EINVAL;
            }
            if (out_scan_value(s, depth + 1) < 0)
                return -EINVAL;
            out_scan_ws(s);
            if (s->p >= s->end)
                return -EINVAL;
            if (*s->p == close) {
                s->p++;
                return 0;
            }
            if (*s->p++ != ',')
                return -EINVAL;
        }
    }
    /* number, true, false, null */
    len = 0;
    while (s->p < s->end && strchr("0123456789+-.eEtruefalsn", *s->p)) {
        s->p++;
        len++;
    }
    return len ? 0 : -EINVAL;
}

static int out_parse_u64(const char *p, const char *end, uint64_t *ret)
{
    uint64_t v = 0;

    if (p >= end || *p < '0' || *p > '9')
        return -EINVAL;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t) (*p - '0')) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t) (*p - '0');
    }
    if (p < end && strchr(".eE", *p))
        return -EINVAL;
    *ret = v;
    return 0;
}

int out_json_get_u64(const char *json, size_t len, const char *key, uint64_t *ret)
{
    struct out_scan s = {json, json + len};
    size_t klen = strlen(key);

    out_scan_ws(&s);
    if (s.p >= s.end || *s.p++ != '{')
        return -EINVAL;
    out_scan_ws(&s);
    if (s.p < s.end && *s.p == '}')
        return -ENOENT;
    for (;;) {
        const char *k;
        size_t kl;

        out_scan_ws(&s);
        if (out_scan_str(&s, &k, &kl) < 0)
            return -EINVAL;
        out_scan_ws(&s);
        if (s.p >= s.end || *s.p++ != ':')
            return -EINVAL;
        out_scan_ws(&s);
        if (kl == klen && memcmp(k, key, klen) == 0)
            return out_parse_u64(s.p, s.end, ret);
        if (out_scan_value(&s, 0) < 0)
            return -EINVAL;
        out_scan_ws(&s);
        if (s.p >= s.end)
            return -EINVAL;
        if (*s.p == '}')
            return -ENOENT;
        if (*s.p++ != ',')
            return -EINVAL;
    }
}

/* ---- sizes ---- */

void out_bytes(uint64_t n, char *out, size_t outlen)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double) n;
    unsigned u = 0;

    if (n < 1024) {
        snprintf(out, outlen, "%" PRIu64 " B", n);
        return;
    }
    v /= 1024;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(out, outlen, "%.1f %s", v, units[u]);
}
