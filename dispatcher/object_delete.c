/* dispatcher/object_delete.c — DELETE /b/o: the row goes in one transaction with a
 * delete_files job for its files, which repaird removes in the background. */
#include "handlers.h"

#include "log.h"
#include "meta_cache.h"
#include "meta_db.h"
#include "request.h"
#include "respond.h"
#include "server.h"
#include "tctx.h"

#include <errno.h>
#include <inttypes.h>

enum MHD_Result object_delete(struct request *req, const char *data, size_t *size)
{
    struct obj_meta old;
    int64_t bucket_id;
    struct db *db;
    int r;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES;
    r = meta_cache_bucket(req->srv->cache, req->bucket, &bucket_id);
    if (r == -ENOENT)
        return respond_text(req, 404, "no such bucket");
    if (r < 0)
        return respond_errno(req, r, "cannot delete the object");
    db = tctx_db();
    if (!db)
        return respond_errno(req, -EIO, "cannot delete the object");
    /* also before the change: a dispatcher killed after it leaves no stale cached row */
    meta_cache_invalidate_object(req->srv->cache, bucket_id, req->object);
    r = meta_db_object_delete(db, tctx_kv(), bucket_id, req->object, &old);
    if (r == -ENOENT)
        return respond_text(req, 404, "no such object");
    if (r < 0)
        return respond_errno(req, r, "cannot delete the object");
    meta_cache_invalidate_object(req->srv->cache, bucket_id, req->object);
    log_info("event=object_deleted rid=%s bucket=%s id=%" PRId64 " internal=%s cluster=%" PRId64,
             req->rid, req->bucket, old.id, old.internal_name, old.cluster_id);
    return respond_empty(req, 204);
}
