/* dispatcher/bucket.c — bucket resources: PUT /b (create), DELETE /b (soft delete plus a
 * background purge), MOVE /b (rename) and HEAD /b (exists?). */
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
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result bucket_put(struct request *req, const char *data, size_t *size)
{
    struct db *db;
    int r;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES; /* STF clients send no body; one that does is ignored */
    db = tctx_db();
    if (!db)
        return respond_errno(req, -EIO, "cannot create the bucket");
    r = meta_db_bucket_create(db, req->bucket);
    if (r == -EEXIST)
        return respond_empty(req, 204);
    if (r < 0)
        return respond_errno(req, r, "cannot create the bucket");
    meta_cache_invalidate_bucket(req->srv->cache, req->bucket);
    log_info("event=bucket_created rid=%s bucket=%s", req->rid, req->bucket);
    return respond_empty(req, 201);
}

enum MHD_Result bucket_delete(struct request *req, const char *data, size_t *size)
{
    struct db *db;
    int64_t id = 0;
    int r;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES;
    db = tctx_db();
    if (!db)
        return respond_errno(req, -EIO, "cannot delete the bucket");
    r = meta_db_bucket_delete(db, tctx_kv(), req->bucket, &id);
    if (r == -ENOENT)
        return respond_text(req, 404, "no such bucket");
    if (r < 0)
        return respond_errno(req, r, "cannot delete the bucket");
    meta_cache_invalidate_bucket(req->srv->cache, req->bucket);
    log_info("event=bucket_deleted rid=%s bucket=%s id=%" PRId64, req->rid, req->bucket, id);
    return respond_empty(req, 204);
}

enum MHD_Result bucket_move(struct request *req, const char *data, size_t *size)
{
    char name[NAMES_BUCKET_MAX + 1], *dst;
    const char *why, *p;
    struct db *db;
    int64_t id = 0;
    size_t len;
    int r;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES;
    dst = req_move_destination(req);
    if (!dst)
        return respond_text(req, 400, "X-STF-Move-Destination is missing");
    p = dst + (dst[0] == '/');
    len = strlen(p);
    if (len > 0 && p[len - 1] == '/')
        len--;
    if (dst[0] != '/')
        why = "X-STF-Move-Destination must be a path: /bucket";
    else if (memchr(p, '/', len))
        why = "X-STF-Move-Destination must name a bucket only";
    else
        why = names_bucket_invalid(p, len);
    if (!why) {
        memcpy(name, p, len);
        name[len] = '\0';
    }
    free(dst);
    if (why)
        return respond_text(req, 400, why);
    db = tctx_db();
    if (!db)
        return respond_errno(req, -EIO, "cannot rename the bucket");
    if (strcmp(name, req->bucket) == 0) {
        r = meta_db_bucket_id(db, name, &id);
        return r == -ENOENT ? respond_text(req, 404, "no such bucket")
               : r < 0      ? respond_errno(req, r, "cannot rename the bucket")
                            : respond_text(req, 409, "destination bucket exists");
    }
    r = meta_db_bucket_move(db, req->bucket, name, &id);
    if (r == -ENOENT)
        return respond_text(req, 404, "no such bucket");
    if (r == -EEXIST)
        return respond_text(req, 409, "destination bucket exists");
    if (r < 0)
        return respond_errno(req, r, "cannot rename the bucket");
    meta_cache_invalidate_bucket(req->srv->cache, req->bucket);
    meta_cache_invalidate_bucket(req->srv->cache, name);
    log_info("event=bucket_moved rid=%s bucket=%s to=%s id=%" PRId64, req->rid, req->bucket, name,
             id);
    return respond_empty(req, 201);
}

enum MHD_Result bucket_head(struct request *req, const char *data, size_t *size)
{
    int64_t id;
    int r;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES;
    r = meta_cache_bucket(req->srv->cache, req->bucket, &id);
    if (r == -ENOENT)
        return respond_empty(req, 404);
    if (r < 0)
        return respond_empty(req, 503);
    return respond_empty(req, 200);
}
