/* test/fuzz/fuzz_disp_cond.c — the dispatcher's conditional GET (If-None-Match, If-Modified-Since,
 * If-Range; RFC 9110 §13) as dispatcher/object_get.c decides it. Its deciders are static, so the
 * file is compiled in here; the request headers come from a stand-in for MHD's header lookup. */
#include "object_get.c"

#include "fuzz.h"

#include <strings.h>

#define COND_ETAG "d41d8cd98f00b204e9800998ecf8427e"
#define COND_MTIME 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */
#define COND_VALUE_MAX 512

enum { H_INM, H_IMS, H_IR, H_COUNT };
static const char *const hdr_names[H_COUNT] = {
    MHD_HTTP_HEADER_IF_NONE_MATCH, MHD_HTTP_HEADER_IF_MODIFIED_SINCE, MHD_HTTP_HEADER_IF_RANGE};
static const char *hdr_values[H_COUNT];

/* The request headers of the input (replaces libmicrohttpd's lookup in this program). */
const char *MHD_lookup_connection_value(struct MHD_Connection *conn, enum MHD_ValueKind kind,
                                        const char *key)
{
    (void) conn;
    if (kind != MHD_HEADER_KIND)
        return NULL;
    for (int i = 0; i < H_COUNT; i++) {
        if (strcasecmp(key, hdr_names[i]) == 0)
            return hdr_values[i];
    }
    return NULL;
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110: If-None-Match = "*" / #entity-tag, entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE.
 * Returns whether the list is well-formed; *ret_match whether a tag equals etag (weak
 * comparison) or the field is "*". */
static bool ref_inm(const char *s, const char *etag, bool *ret_match)
{
    size_t elen = strlen(etag);
    bool any = false;

    *ret_match = false;
    while (ows(*s))
        s++;
    if (s[0] == '*') {
        for (s++; ows(*s); s++)
            ;
        *ret_match = *s == '\0';
        return *s == '\0';
    }
    for (;;) {
        const char *tag;

        while (ows(*s) || *s == ',') /* empty list elements are allowed */
            s++;
        if (*s == '\0')
            return any;
        if (s[0] == 'W' && s[1] == '/')
            s += 2;
        if (*s != '"')
            return false;
        tag = ++s;
        while ((unsigned char) *s == 0x21 || ((unsigned char) *s >= 0x23 && *s != 0x7f))
            s++;
        if (*s != '"')
            return false;
        if ((size_t) (s - tag) == elen && memcmp(tag, etag, elen) == 0)
            *ret_match = true;
        any = true;
        for (s++; ows(*s); s++)
            ;
        if (*s != ',' && *s != '\0')
            return false;
    }
}

static bool nm(struct request *req, const struct obj_meta *m, const char *inm, const char *ims)
{
    hdr_values[H_INM] = inm;
    hdr_values[H_IMS] = ims;
    hdr_values[H_IR] = NULL;
    return not_modified(req, m);
}

static bool ir(struct request *req, const struct obj_meta *m, const char *value)
{
    hdr_values[H_INM] = hdr_values[H_IMS] = NULL;
    hdr_values[H_IR] = value;
    return if_range_ok(req, m);
}

/* Checks that hold for every object time, whatever the input. */
static void check_fixed(struct request *req, const struct obj_meta *m)
{
    char date[HTTP_DATE_LEN];

    FUZZ_ASSERT(nm(req, m, "\"" COND_ETAG "\"", NULL), "own tag");
    FUZZ_ASSERT(nm(req, m, "W/\"" COND_ETAG "\"", NULL), "weak comparison");
    FUZZ_ASSERT(nm(req, m, "\"x\", \"" COND_ETAG "\"", NULL), "second tag");
    FUZZ_ASSERT(nm(req, m, "*", NULL), "*");
    FUZZ_ASSERT(!nm(req, m, "\"x\"", NULL), "another tag");
    FUZZ_ASSERT(!nm(req, m, NULL, NULL), "no condition");
    FUZZ_ASSERT(ir(req, m, NULL), "no If-Range");
    FUZZ_ASSERT(ir(req, m, "\"" COND_ETAG "\""), "If-Range own tag");
    FUZZ_ASSERT(!ir(req, m, "W/\"" COND_ETAG "\""), "If-Range weak tag");
    http_date_format((time_t) m->mtime, date);
    FUZZ_ASSERT(nm(req, m, NULL, date), "IMS = Last-Modified (%s)", date);
    FUZZ_ASSERT(ir(req, m, date), "If-Range = Last-Modified (%s)", date);
    /* the If-None-Match decides when both are sent (RFC 9110 §13.1.3) */
    FUZZ_ASSERT(!nm(req, m, "\"x\"", date), "If-Modified-Since used along If-None-Match");
    http_date_format((time_t) m->mtime - 1, date);
    FUZZ_ASSERT(!nm(req, m, NULL, date), "IMS before Last-Modified (%s)", date);
    FUZZ_ASSERT(!ir(req, m, date), "If-Range before Last-Modified (%s)", date);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct request req;
    struct obj_meta m;
    char *values[H_COUNT] = {NULL}, *text, *p, quoted[40];
    bool got, want, wellformed;
    int32_t delta = 0;
    time_t t;

    if (size < 5)
        return 0;
    memset(&req, 0, sizeof(req));
    memset(&m, 0, sizeof(m));
    req.conn = (struct MHD_Connection *) &req; /* never dereferenced by the stand-in */
    snprintf(m.etag, sizeof(m.etag), "%s", COND_ETAG);
    for (int i = 0; i < 4; i++)
        delta |= (int32_t) ((uint32_t) data[1 + i] << (8 * i));
    m.mtime = (int64_t) COND_MTIME + delta;
    check_fixed(&req, &m);

    /* data[0] bit i: header i is present; its value is the i-th line of the rest */
    text = fuzz_strndup(data + 5, size - 5, H_COUNT * COND_VALUE_MAX);
    p = text;
    for (int i = 0; i < H_COUNT; i++) {
        char *nl = strchr(p, '\n');

        if (data[0] & (1 << i))
            values[i] = p;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }

    if (values[H_INM]) {
        got = nm(&req, &m, values[H_INM], values[H_IMS]);
        FUZZ_ASSERT(got == nm(&req, &m, values[H_INM], NULL), "'%s': If-Modified-Since counted",
                    values[H_INM]);
        FUZZ_ASSERT(!got || strchr(values[H_INM], '*') ||
                        strstr(values[H_INM], "\"" COND_ETAG "\""),
                    "'%s' matched " COND_ETAG, values[H_INM]);
        wellformed = ref_inm(values[H_INM], COND_ETAG, &want);
        FUZZ_ASSERT(!wellformed || got == want, "'%s': %d, RFC 9110 says %d", values[H_INM], got,
                    want);
    } else if (values[H_IMS]) {
        got = nm(&req, &m, NULL, values[H_IMS]);
        want = http_date_parse(values[H_IMS], &t) == 0 && (int64_t) t >= m.mtime;
        FUZZ_ASSERT(got == want, "If-Modified-Since '%s' vs mtime %lld: %d", values[H_IMS],
                    (long long) m.mtime, got);
    }
    if (values[H_IR]) {
        /* strong comparison: the exact quoted tag, or exactly the Last-Modified date */
        got = ir(&req, &m, values[H_IR]);
        snprintf(quoted, sizeof(quoted), "\"%s\"", COND_ETAG);
        want = strcmp(values[H_IR], quoted) == 0 ||
               (values[H_IR][0] != '"' && strncmp(values[H_IR], "W/", 2) != 0 &&
                http_date_parse(values[H_IR], &t) == 0 && (int64_t) t == m.mtime);
        FUZZ_ASSERT(got == want, "If-Range '%s' (mtime %lld): %d", values[H_IR],
                    (long long) m.mtime, got);
    }
    free(text);
    return 0;
}
