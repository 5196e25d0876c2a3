/* test/fuzz/fuzz_disp_move.c — X-STF-Move-Destination as the dispatcher reads it: the decoding of
 * dispatcher/request.c and the split of dispatcher/object_move.c (static, so compiled in here);
 * the header comes from a stand-in for MHD's header lookup. */
#include "object_move.c"

#include "fuzz.h"

#include <ctype.h>
#include <strings.h>

#define MOVE_VALUE_MAX 2048

static const char *dest_value;

/* The request headers of the input (replaces libmicrohttpd's lookup in this program). */
const char *MHD_lookup_connection_value(struct MHD_Connection *conn, enum MHD_ValueKind kind,
                                        const char *key)
{
    (void) conn;
    if (kind == MHD_HEADER_KIND && strcasecmp(key, "X-STF-Move-Destination") == 0)
        return dest_value;
    return NULL;
}

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char) tolower((unsigned char) c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The destination a client means: the path of an absolute URL (scheme "://" authority path,
 * RFC 3986), else the value itself; up to any '?'; %XX decoded, a decoded NUL as 0x01. */
static char *ref_destination(const char *v)
{
    const char *p = v;
    char *out = malloc(strlen(v) + 1), *w = out;

    FUZZ_ASSERT(out != NULL, "malloc");
    if (isalpha((unsigned char) *p)) {
        while (isalnum((unsigned char) *p) || *p == '+' || *p == '-' || *p == '.')
            p++;
        if (strncmp(p, "://", 3) == 0) {
            p += 3 + strcspn(p + 3, "/?#");
            v = *p == '/' ? p : "";
        }
    }
    for (; *v && *v != '?'; v++) {
        if (v[0] == '%' && hex(v[1]) >= 0 && hex(v[2]) >= 0) {
            int c = hex(v[1]) * 16 + hex(v[2]);

            *w++ = (char) (c ? c : 1);
            v += 2;
        } else {
            *w++ = *v;
        }
    }
    *w = '\0';
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char bucket[NAMES_BUCKET_MAX + 1], rebuilt[MOVE_VALUE_MAX + 2];
    const char *object = NULL, *why;
    char *value, *dst, *want;
    struct request req;

    memset(&req, 0, sizeof(req));
    req.conn = (struct MHD_Connection *) &req; /* never dereferenced by the stand-in */
    dest_value = NULL;
    FUZZ_ASSERT(req_move_destination(&req) == NULL, "no header, yet a destination");

    value = fuzz_strndup(data, size, MOVE_VALUE_MAX);
    dest_value = value;
    dst = req_move_destination(&req);
    FUZZ_ASSERT(dst != NULL, "'%s': no destination", value);
    want = ref_destination(value);
    FUZZ_ASSERT(strcmp(dst, want) == 0, "'%s' decoded as '%s', want '%s'", value, dst, want);

    why = split_dest(dst, bucket, &object);
    if (why == NULL) {
        size_t n = strlen(object);

        FUZZ_ASSERT(names_bucket_invalid(bucket, strlen(bucket)) == NULL, "bucket '%s'", bucket);
        FUZZ_ASSERT(names_object_invalid(object, n) == NULL, "object '%s'", object);
        FUZZ_ASSERT(!fuzz_has_ctl(object, n) && !fuzz_has_dot_segment(object, n), "'%s'", object);
        snprintf(rebuilt, sizeof(rebuilt), "/%s/%s", bucket, object);
        FUZZ_ASSERT(strcmp(rebuilt, dst) == 0, "'%s' split as '%s'", dst, rebuilt);
    } else {
        FUZZ_ASSERT(why[0] != '\0' && !strchr(why, '\n'), "reason '%s'", why);
    }
    free(want);
    free(dst);
    free(value);
    return 0;
}
