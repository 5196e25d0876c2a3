/* dispatcher/respond.c — response helpers and the errno-to-status table of the dispatcher. */
#include "respond.h"

#include "log.h"
#include "metrics.h"
#include "request.h"
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned status_of_errno(int err)
{
    static const struct {
        int err;
        unsigned status;
    } table[] = {
        {ENOENT, 404},   {EINVAL, 400}, {E2BIG, 413},  {EEXIST, 409}, {EIO, 503},
        {ENOTCONN, 503}, {EAGAIN, 503}, {ENOSPC, 503}, {EPERM, 403},
    };

    if (err < 0)
        err = -err;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].err == err)
            return table[i].status;
    }
    return 500;
}

enum MHD_Result respond(struct request *req, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result r;

    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Request-Id", req->rid);
    if (server_draining(req->srv))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    req->status = status;
    r = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    if (r != MHD_YES)
        log_warn("event=queue_response_failed rid=%s method=%s status=%u", req->rid, req->method,
                 status);
    return r;
}

enum MHD_Result respond_text(struct request *req, unsigned status, const char *text)
{
    size_t len = strlen(text);
    char *body = malloc(len + 2);
    struct MHD_Response *resp;

    if (!body)
        return MHD_NO;
    memcpy(body, text, len);
    body[len] = '\n';
    body[len + 1] = '\0';
    resp = MHD_create_response_from_buffer(len + 1, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (req->m != RM_HEAD)
        metrics_inc(MC_BYTES_OUT, len + 1);
    if (status >= 500)
        log_warn("event=request_failed rid=%s method=%s bucket=%s status=%u reason=\"%s\"",
                 req->rid, req->method, req->bucket, status, text);
    return respond(req, status, resp);
}

enum MHD_Result respond_empty(struct request *req, unsigned status)
{
    return respond(req, status,
                   MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT));
}

enum MHD_Result respond_errno(struct request *req, int err, const char *what)
{
    unsigned status = status_of_errno(err);
    char text[256];

    if (status == 503 && (err == -EIO || err == EIO))
        snprintf(text, sizeof(text), "%s: metadata store unavailable", what);
    else
        snprintf(text, sizeof(text), "%s", what);
    return respond_text(req, status, text);
}
