/* dispatcher/object_move.c — MOVE /b/o with X-STF-Move-Destination: /b2/o2: a rename of the
 * row (no bytes move); an existing destination is refused (412) unless X-STF-Overwrite: T. */
#include "handlers.h"

#include "log.h"
#include "meta_cache.h"
#include "meta_db.h"
#include "names.h"
#include "request.h"
#include "respond.h"
#include "server.h"
#include "tctx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Splits "/b2/o2" into a valid bucket and object. Returns NULL or the reason. */
static const char *split_dest(const char *path, char bucket[NAMES_BUCKET_MAX + 1],
                              const char **ret_object)
{
    const char *p, *slash, *why;

    if (path[0] != '/')
        return "X-STF-Move-Destination must be a path: /bucket/object";
    p = path + 1;
    slash = strchr(p, '/');
    if (!slash)
        return "X-STF-Move-Destination must name an object: /bucket/object";
    why = names_bucket_invalid(p, (size_t) (slash - p));
    if (why)
        return why;
    memcpy(bucket, p, (size_t) (slash - p));
    bucket[slash - p] = '\0';
    why = names_object_invalid(slash + 1, strlen(slash + 1));
    if (why)
        return why;
    *ret_object = slash + 1;
    return NULL;
}

enum MHD_Result object_move(struct request *req, const char *data, size_t *size)
{
    const char *ow = req_header(req, "X-STF-Overwrite"), *why, *dst_obj = NULL;
    char dst_bucket[NAMES_BUCKET_MAX + 1], *dst;
    int64_t src_bid, dst_bid;
    enum MHD_Result ret;
    struct db *db;
    int r;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES;
    dst = req_move_destination(req);
    if (!dst)
        return respond_text(req, 400, "X-STF-Move-Destination is missing");
    why = split_dest(dst, dst_bucket, &dst_obj);
    if (why) {
        ret = respond_text(req, 400, why);
        goto out;
    }
    r = meta_cache_bucket(req->srv->cache, req->bucket, &src_bid);
    if (r == 0)
        r = meta_cache_bucket(req->srv->cache, dst_bucket, &dst_bid);
    if (r < 0) {
        ret = r == -ENOENT ? respond_text(req, 404, "no such bucket")
                           : respond_errno(req, r, "cannot move the object");
        goto out;
    }
    db = tctx_db();
    if (db) { /* also before the change: a dispatcher killed after it leaves no stale row */
        meta_cache_invalidate_object(req->srv->cache, src_bid, req->object);
        meta_cache_invalidate_object(req->srv->cache, dst_bid, dst_obj);
    }
    r = db ? meta_db_object_move(db, tctx_kv(), src_bid, req->object, dst_bid, dst_obj,
                                 ow && (ow[0] == 'T' || ow[0] == 't' || ow[0] == '1'))
           : -EIO;
    if (r == -ENOENT) {
        ret = respond_text(req, 404, "no such object (or the destination bucket is gone)");
    } else if (r == -EEXIST) {
        ret = respond_text(req, 412, "destination exists (send X-STF-Overwrite: T to replace it)");
    } else if (r < 0) {
        ret = respond_errno(req, r, "cannot move the object");
    } else {
        meta_cache_invalidate_object(req->srv->cache, src_bid, req->object);
        meta_cache_invalidate_object(req->srv->cache, dst_bid, dst_obj);
        log_info("event=object_moved rid=%s bucket=%s to_bucket=%s", req->rid, req->bucket,
                 dst_bucket);
        ret = respond_empty(req, 201);
    }
out:
    free(dst);
    return ret;
}
