/* test/fuzz/fuzz_sd_path.c — storaged's request-target checks and routing (storaged/router.c):
 * an accepted target holds only plain characters and segments, and a blob it routes to maps
 * to a file under ROOT (no '.'/'..' segment, no control byte), as SPEC §6 requires. */
#include "fuzz.h"

#include "blob_path.h"
#include "request.h"
#include "router.h"

#include <stdbool.h>

#define TARGET_INPUT_MAX 4096
#define ROOT "/srv/stf/disk1"

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 pchar without pct-encoded, and '/'. */
static bool path_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&'()*+,;=:@/", c));
}

/* What storaged should accept as a raw target, from SPEC §6 and router.h. */
static bool ref_target_ok(const char *s, size_t len)
{
    size_t q = strcspn(s, "?");

    if (len == 0 || s[0] != '/' || len > ROUTER_TARGET_MAX)
        return false;
    for (size_t i = 1; i < q; i++) {
        if (!path_char(s[i]))
            return false;
        if (s[i] == '/' && s[i - 1] == '/')
            return false; /* an empty segment (only the last one may be empty) */
    }
    if (fuzz_has_dot_segment(s + 1, q - 1))
        return false;
    for (size_t i = q + 1; i < len; i++) {
        unsigned char c = (unsigned char) s[i];

        if (c <= 0x20 || c >= 0x7f)
            return false;
        if (c == '%') {
            if (i + 2 >= len || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
                return false;
            if (s[i + 1] == '0' || s[i + 1] == '1' ||
                (s[i + 1] == '7' && (s[i + 2] == 'f' || s[i + 2] == 'F')))
                return false;
        }
    }
    return true;
}

/* Routes url and checks the outcome; a blob must map under ROOT. */
static void check_route(const char *url)
{
    struct sd_request rq;
    const char *reason = NULL;
    unsigned status;
    struct buf path;
    size_t n = strlen(url), plen;

    memset(&rq, 0, sizeof(rq));
    rq.url = url;
    status = router_route(&rq, &reason);
    if (status != 0) {
        FUZZ_ASSERT(status == 400 || status == 404, "'%s': status %u", url, status);
        FUZZ_ASSERT(reason && reason[0] && !strchr(reason, '\n'), "'%s': reason", url);
        FUZZ_ASSERT(rq.ep == NULL, "'%s' refused but routed", url);
        return;
    }
    FUZZ_ASSERT(rq.ep != NULL && rq.ep->name != NULL, "'%s': no endpoint", url);
    if (strcmp(rq.ep->name, "blob") != 0) {
        FUZZ_ASSERT(strncmp(url, "/_", 2) == 0, "'%s' routed to %s", url, rq.ep->name);
        return;
    }
    FUZZ_ASSERT(url[0] == '/' && url[1] != '_', "'%s' routed to a blob", url);
    FUZZ_ASSERT(rq.name == url + 1 && rq.name_len == n - 1, "'%s': name", url);
    FUZZ_ASSERT(blob_name_valid(rq.name, rq.name_len), "'%s': invalid blob name", url);
    buf_init(&path, 4096);
    FUZZ_ASSERT(blob_path(ROOT, rq.name, rq.name_len, &path) == 0, "'%s': blob_path", url);
    plen = path.len;
    FUZZ_ASSERT(strncmp(path.ptr, ROOT "/", strlen(ROOT) + 1) == 0 &&
                    plen == strlen(ROOT) + 1 + BLOB_FANOUT_LEN + rq.name_len,
                "'%s' maps to '%s'", url, path.ptr);
    FUZZ_ASSERT(!fuzz_has_dot_segment(path.ptr, plen) && !fuzz_has_ctl(path.ptr, plen),
                "'%s' maps to '%s'", url, path.ptr);
    buf_release(&path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = fuzz_strndup(data, size, TARGET_INPUT_MAX), *url;
    size_t len = strlen(raw); /* MHD hands over the target up to a NUL byte */
    const char *why = router_check_target(raw, len);
    bool want = ref_target_ok(raw, len);

    FUZZ_ASSERT((why == NULL) == want, "'%s': impl %s, reference %s", raw, why ? why : "accepts",
                want ? "accepts" : "refuses");
    if (why)
        FUZZ_ASSERT(why[0] && !strchr(why, '\n'), "reason '%s'", why);
    /* an accepted target holds no %: the path MHD decodes is the raw path before any '?' */
    url = strndup(raw, strcspn(raw, "?"));
    FUZZ_ASSERT(url != NULL, "strndup");
    if (!why)
        FUZZ_ASSERT(!strchr(url, '%') && !fuzz_has_ctl(url, strlen(url)), "'%s'", url);
    /* the router must be safe by itself, whatever MHD's decoding made of a refused target */
    check_route(why ? raw : url);
    free(url);
    free(raw);
    return 0;
}
