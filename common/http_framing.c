/* common/http_framing.c — the checks of a request's message framing (RFC 9112 §6) that
 * libmicrohttpd leaves to the application: a request framed two ways is a smuggling attempt. */
#include "http_framing.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

struct header_count {
    const char *name;
    unsigned n;
    const char *last;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct header_count *c = cls;

    (void) kind;
    if (strcasecmp(key, c->name) == 0) {
        c->n++;
        c->last = value;
    }
    return MHD_YES;
}

unsigned http_header_count(struct MHD_Connection *conn, const char *name, const char **ret_last)
{
    struct header_count c = {name, 0, NULL};

    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &c);
    if (ret_last)
        *ret_last = c.last;
    return c.n;
}

/* Whether the last coding of a Transfer-Encoding list is "chunked". */
static bool te_ends_chunked(const char *te)
{
    const char *last = strrchr(te, ',');
    size_t n;

    last = last ? last + 1 : te;
    last += strspn(last, " \t");
    n = strcspn(last, " \t");
    return n == 7 && strncasecmp(last, "chunked", 7) == 0 && last[n + strspn(last + n, " \t")] == 0;
}

const char *http_framing_invalid(struct MHD_Connection *conn, unsigned *ret_status)
{
    unsigned cl, te_n;
    const char *te;

    *ret_status = 400;
    cl = http_header_count(conn, MHD_HTTP_HEADER_CONTENT_LENGTH, NULL);
    te_n = http_header_count(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING, &te);
    if (cl > 1)
        return "several Content-Length headers";
    if (te_n > 1)
        return "several Transfer-Encoding headers";
    if (te_n && cl)
        return "Content-Length and Transfer-Encoding together";
    if (!te || strcasecmp(te, "chunked") == 0)
        return NULL;
    if (!te_ends_chunked(te))
        return "Transfer-Encoding does not end with chunked";
    *ret_status = 501;
    return "only the chunked Transfer-Encoding is implemented";
}
