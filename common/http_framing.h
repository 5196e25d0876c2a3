/* common/http_framing.h — the checks of a request's message framing (RFC 9112 §6) that
 * libmicrohttpd leaves to the application, shared by the dispatcher and storaged. */
#ifndef STF_HTTP_FRAMING_H
#define STF_HTTP_FRAMING_H

#include <microhttpd.h>

/* How many times the request holds header name; *ret_last (if given): the last one's value. */
unsigned http_header_count(struct MHD_Connection *conn, const char *name, const char **ret_last);

/* NULL, or why the request's framing is refused: several Content-Length or Transfer-Encoding
 * headers, both together, or a coding other than chunked. *ret_status receives 400, or 501
 * for a list of codings that ends with chunked (well-formed, but only chunked is supported). */
const char *http_framing_invalid(struct MHD_Connection *conn, unsigned *ret_status);

#endif
