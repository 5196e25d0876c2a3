/* dispatcher/metrics_http.c — GET /_metrics: the Prometheus text exposition. */
#include "handlers.h"

#include "buf.h"
#include "metrics.h"
#include "request.h"
#include "respond.h"
#include "tctx.h"

#include <microhttpd.h>

enum MHD_Result metrics_get(struct request *req, const char *data, size_t *size)
{
    struct MHD_Response *resp;
    struct buf out;
    size_t len;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES;
    buf_init(&out, 4 * 1024 * 1024);
    if (metrics_render(&out, tctx_db(), tctx_kv()) < 0) {
        buf_release(&out);
        return respond_text(req, 500, "cannot render the metrics");
    }
    len = out.len;
    resp = MHD_create_response_from_buffer(len, buf_steal(&out), MHD_RESPMEM_MUST_FREE);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    return respond(req, 200, resp);
}
