/* storaged/response.c — queueing responses with the common headers, one-line text bodies,
 * and the single -errno → HTTP status table of storaged. */
#include "response.h"

#include "log.h"
#include "server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum MHD_Result sd_reply(struct sd_request *rq, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result r;

    if (!resp) {
        log_error("event=reply_failed url=%s status=%u reason=\"out of memory\"", rq->url, status);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (sd_server_stopping(rq->srv))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r = MHD_queue_response(rq->conn, status, resp);
    MHD_destroy_response(resp);
    if (r == MHD_YES) {
        rq->status = status;
        rq->responded = true;
    }
    return r;
}

enum MHD_Result sd_reply_text(struct sd_request *rq, unsigned status, const char *text)
{
    return sd_reply_textf(rq, status, "%s", text);
}

enum MHD_Result sd_reply_textf(struct sd_request *rq, unsigned status, const char *fmt, ...)
{
    struct MHD_Response *resp;
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t) n > sizeof(line) - 2)
        n = (int) sizeof(line) - 2;
    for (int i = 0; i < n; i++) { /* keep it one line, whatever was formatted into it */
        if ((unsigned char) line[i] < 0x20 || line[i] == 0x7f)
            line[i] = ' ';
    }
    line[n++] = '\n';
    resp = MHD_create_response_from_buffer((size_t) n, line, MHD_RESPMEM_MUST_COPY);
    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    return sd_reply(rq, status, resp);
}

struct MHD_Response *sd_stream_response(size_t block, MHD_ContentReaderCallback rd, void *cls,
                                        MHD_ContentReaderFreeCallback fr, const char *ctype)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, block, rd,
                                                                  cls, fr);

    if (!resp) {
        fr(cls);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    return resp;
}

enum MHD_Result sd_reply_empty(struct sd_request *rq, unsigned status)
{
    return sd_reply(rq, status, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

unsigned sd_errno_status(int err)
{
    switch (err) {
    case -ENOENT:
    case -ENOTDIR:
        return MHD_HTTP_NOT_FOUND;
    case -EINVAL:
    case -ENAMETOOLONG:
        return MHD_HTTP_BAD_REQUEST;
    case -ENOSPC:
    case -EDQUOT:
    case -EFBIG:
        return MHD_HTTP_INSUFFICIENT_STORAGE;
    case -EROFS:
    case -EMFILE:
    case -ENFILE:
    case -ENOMEM:
    case -EAGAIN:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

enum MHD_Result sd_reply_errno(struct sd_request *rq, int err, const char *what)
{
    unsigned status = sd_errno_status(err);

    if (status >= 500)
        log_error("event=store_error url=%s what=\"%s\" status=%u error=\"%s\"", rq->url, what,
                  status, strerror(-err));
    return sd_reply_textf(rq, status, "%s: %s", what, strerror(-err));
}
