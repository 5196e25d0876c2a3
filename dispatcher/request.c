/* dispatcher/request.c — small accessors shared by the handlers: headers, query arguments, the
 * pacing of requests whose body is ignored, and the checks of a request's method token and
 * message framing (RFC 9112 §6) that libmicrohttpd leaves to the application. */
#include "request.h"

#include "http_framing.h"

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

    if (te)
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

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

const char *req_framing_invalid(struct request *req, unsigned *ret_status)
{
    *ret_status = 400;
    for (const char *m = req->method; m && *m; m++) {
        if (!is_tchar((unsigned char) *m))
            return "malformed request method";
    }
    return http_framing_invalid(req->conn, ret_status);
}

/* Length of the host part of an authority ("user@" already skipped): up to the port. */
static size_t host_len(const char *s, size_t n)
{
    const char *close;

    if (n > 0 && s[0] == '[') {
        close = memchr(s, ']', n);
        return close ? (size_t) (close - s) + 1 : n;
    }
    close = memchr(s, ':', n);
    return close ? (size_t) (close - s) : n;
}

const char *req_move_destination_refused(struct request *req)
{
    const char *v, *host = req_header(req, MHD_HTTP_HEADER_HOST), *p, *auth, *at;
    size_t alen, dlen;

    if (http_header_count(req->conn, "X-STF-Move-Destination", &v) > 1)
        return "several X-STF-Move-Destination headers";
    if (!v || !host)
        return NULL;
    for (p = v; isalnum((unsigned char) *p) || *p == '+' || *p == '-' || *p == '.'; p++)
        ;
    if (p == v || !isalpha((unsigned char) v[0]) || strncmp(p, "://", 3) != 0)
        return NULL;
    auth = p + 3;
    alen = strcspn(auth, "/?#");
    at = memchr(auth, '@', alen);
    if (at) {
        alen -= (size_t) (at + 1 - auth);
        auth = at + 1;
    }
    dlen = host_len(auth, alen);
    if (dlen != host_len(host, strlen(host)) || strncasecmp(auth, host, dlen) != 0)
        return "X-STF-Move-Destination names another host";
    return NULL;
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
