/* dispatcher/request.c — small accessors shared by the handlers: headers, query arguments and
 * the pacing of requests whose body is ignored. */
#include "request.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *req_header(struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *req_arg(struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool req_has_body(struct request *req)
{
    const char *cl = req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);

    if (te && *te)
        return true;
    if (!cl)
        return false;
    while (*cl == ' ' || *cl == '0')
        cl++;
    return *cl >= '1' && *cl <= '9';
}

bool req_skip_body(struct request *req, size_t *size)
{
    if (req->calls == 1)
        return true;
    if (*size > 0) {
        *size = 0;
        return true;
    }
    return false;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *req_move_destination(struct request *req)
{
    const char *v = req_header(req, "X-STF-Move-Destination"), *p;
    char *out, *w;

    if (!v)
        return NULL;
    /* an absolute URL (scheme "://" authority path): keep its path; a "://" further on is part
     * of an object name */
    for (p = v; isalnum((unsigned char) *p) || *p == '+' || *p == '-' || *p == '.'; p++)
        ;
    if (p > v && isalpha((unsigned char) v[0]) && strncmp(p, "://", 3) == 0) {
        p += 3 + strcspn(p + 3, "/?#");
        v = *p == '/' ? p : "";
    }
    out = malloc(strlen(v) + 1);
    if (!out)
        return NULL;
    w = out;
    for (const char *r = v; *r && *r != '?'; r++) {
        int hi, lo;

        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
            *w++ = (char) (hi * 16 + lo ? hi * 16 + lo : 1); /* NUL becomes a refused 0x01 */
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return out;
}
