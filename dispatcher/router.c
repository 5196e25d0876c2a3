/* dispatcher/router.c — request routing: reserved endpoints, bucket and object paths, name
 * validation (common/names.c) and the method table of each resource. */
#include "router.h"

#include "handlers.h"
#include "names.h"
#include "request.h"
#include "respond.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

void router_refuse(struct request *req, unsigned status, const char *reason)
{
    req->error_status = status;
    req->error_reason = reason;
    req->handler = error_handler;
}

enum MHD_Result error_handler(struct request *req, const char *data, size_t *size)
{
    struct MHD_Response *resp;
    size_t len = strlen(req->error_reason);
    char *body;

    (void) data;
    /* with a body on its way, answer at once (MHD then closes the connection) instead of
     * reading what nobody will store; otherwise answer on the second call (keep-alive) */
    if (req->calls == 1 && !req_has_body(req))
        return MHD_YES;
    if (*size > 0 && req->status) {
        *size = 0;
        return MHD_YES;
    }
    if (req->status)
        return MHD_YES;
    if (req->error_status != 405)
        return respond_text(req, req->error_status, req->error_reason);
    body = malloc(len + 2);
    if (!body)
        return MHD_NO;
    memcpy(body, req->error_reason, len);
    memcpy(body + len, "\n", 2);
    resp = MHD_create_response_from_buffer(len + 1, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                            req->object ? "GET, HEAD, PUT, DELETE, MOVE, POST"
                                        : "GET, HEAD, PUT, DELETE, MOVE");
    return respond(req, 405, resp);
}

static void route_bucket(struct request *req)
{
    switch (req->m) {
    case RM_PUT:
        req->handler = bucket_put;
        break;
    case RM_DELETE:
        req->handler = bucket_delete;
        break;
    case RM_MOVE:
        req->handler = bucket_move;
        break;
    case RM_GET:
        req->handler = listing_get;
        break;
    case RM_HEAD:
        req->handler = bucket_head;
        break;
    default:
        router_refuse(req, 405, "method not allowed on a bucket");
    }
}

static void route_object(struct request *req)
{
    switch (req->m) {
    case RM_PUT:
        req->handler = object_put;
        break;
    case RM_GET:
    case RM_HEAD:
        req->handler = object_get;
        break;
    case RM_DELETE:
        req->handler = object_delete;
        break;
    case RM_MOVE:
        req->handler = object_move;
        break;
    case RM_POST:
        req->handler = object_post;
        break;
    default:
        router_refuse(req, 405, "method not allowed on an object");
    }
}

void router_route(struct request *req, const char *url)
{
    const char *p, *slash, *why;
    unsigned status;
    size_t blen;

    why = req_framing_invalid(req, &status);
    if (why) {
        router_refuse(req, status, why);
        return;
    }
    why = req->m == RM_MOVE ? req_move_destination_refused(req) : NULL;
    if (why) {
        router_refuse(req, 400, why);
        return;
    }
    if (strcmp(url, "/_health") == 0 || strcmp(url, "/_metrics") == 0) {
        if (req->m != RM_GET && req->m != RM_HEAD)
            router_refuse(req, 405, "method not allowed");
        else
            req->handler = url[2] == 'h' ? health_get : metrics_get;
        return;
    }
    if (url[0] != '/' || url[1] == '\0') {
        router_refuse(req, 400, "the path must name a bucket: /bucket or /bucket/object");
        return;
    }
    p = url + 1;
    slash = strchr(p, '/');
    blen = slash ? (size_t) (slash - p) : strlen(p);
    why = names_bucket_invalid(p, blen);
    if (why) {
        router_refuse(req, 400, why);
        return;
    }
    memcpy(req->bucket, p, blen);
    req->bucket[blen] = '\0';
    if (!slash || (slash[1] == '\0' && (req->m == RM_GET || req->m == RM_HEAD))) {
        route_bucket(req); /* "/b" and, for listings, "/b/" */
        return;
    }
    p = slash + 1;
    why = names_object_invalid(p, strlen(p));
    if (why) {
        router_refuse(req, 400, why);
        return;
    }
    req->object = strdup(p);
    if (!req->object) {
        router_refuse(req, 500, "out of memory");
        return;
    }
    route_object(req);
}
