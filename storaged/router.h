/* storaged/router.h — which endpoint serves a request: the checks on the raw request target
 * and the route table (reserved /_... endpoints, everything else is /<blob name>). */
#ifndef STF_STORAGED_ROUTER_H
#define STF_STORAGED_ROUTER_H

#include "request.h"

#define ROUTER_TARGET_MAX 2048 /* longest request target accepted */

/* Checks the request target exactly as received (before MHD decodes %xx): origin-form, no
 * control characters, no percent-encoding, backslash, '.'/'..' or empty segment in the path,
 * only plain characters; the query may hold percent-encoding but no encoded control
 * character. Returns NULL when acceptable, else a one-line reason (static). */
const char *router_check_target(const char *raw, size_t len);

/* Maps rq->url to its endpoint: sets rq->ep (and rq->name/name_len for blobs) and returns 0,
 * or returns an HTTP status (400, 404) with a one-line reason in *ret_reason (static). */
unsigned router_route(struct sd_request *rq, const char **ret_reason);

#endif
