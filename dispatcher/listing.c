/* dispatcher/listing.c — GET /b?prefix=p&after=k&limit=n: object names of a bucket in byte
 * order as JSON, with a continuation marker. */
#include "handlers.h"

#include "buf.h"
#include "meta_cache.h"
#include "meta_db.h"
#include "metrics.h"
#include "names.h"
#include "request.h"
#include "respond.h"
#include "server.h"
#include "tctx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LISTING_DEFAULT 1000u
#define LISTING_MAX 10000u
#define LISTING_BODY_MAX ((size_t) 96 * 1024 * 1024) /* 10000 names of 1024 escaped bytes */

static int parse_limit(const char *s, unsigned *ret)
{
    unsigned v = 0;

    if (!s) {
        *ret = LISTING_DEFAULT;
        return 0;
    }
    if (!*s || strlen(s) > 5)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned) (*p - '0');
    }
    if (v < 1 || v > LISTING_MAX)
        return -EINVAL;
    *ret = v;
    return 0;
}

static bool text_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0;

    return len <= NAMES_OBJECT_MAX && names_text_valid(s ? s : "", len);
}

enum MHD_Result listing_get(struct request *req, const char *data, size_t *size)
{
    const char *prefix = req_arg(req, "prefix"), *after = req_arg(req, "after");
    struct MHD_Response *resp;
    struct buf out;
    unsigned limit;
    struct db *db;
    int64_t bucket_id;
    size_t len;
    int r;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES;
    if (parse_limit(req_arg(req, "limit"), &limit) < 0)
        return respond_text(req, 400, "limit must be a number from 1 to 10000");
    if (!text_ok(prefix) || !text_ok(after))
        return respond_text(req, 400,
                            "prefix and after must be UTF-8 text of up to 1024 bytes "
                            "without control characters");
    r = meta_cache_bucket(req->srv->cache, req->bucket, &bucket_id);
    if (r == -ENOENT)
        return respond_text(req, 404, "no such bucket");
    if (r < 0)
        return respond_errno(req, r, "cannot list the bucket");
    db = tctx_db();
    if (!db)
        return respond_errno(req, -EIO, "cannot list the bucket");
    buf_init(&out, LISTING_BODY_MAX);
    r = meta_db_list(db, bucket_id, prefix ? prefix : "", after ? after : "", limit, &out);
    if (r < 0) {
        buf_release(&out);
        return respond_errno(req, r, "cannot list the bucket");
    }
    len = out.len;
    resp = MHD_create_response_from_buffer(len, len ? buf_steal(&out) : (void *) "",
                                           len ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    buf_release(&out);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (req->m != RM_HEAD)
        metrics_inc(MC_BYTES_OUT, len);
    return respond(req, 200, resp);
}
