/* dispatcher/object_post.c — POST /b/o: queue a check-and-repair of the object's copies (STF's
 * "modify"); the job row is durable before the 204. */
#include "handlers.h"

#include "jobs.h"
#include "log.h"
#include "meta_cache.h"
#include "metrics.h"
#include "request.h"
#include "respond.h"
#include "server.h"
#include "tctx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

enum MHD_Result object_post(struct request *req, const char *data, size_t *size)
{
    struct obj_meta m;
    char payload[64];
    int64_t bucket_id, job = 0;
    struct db *db;
    int r;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES;
    r = meta_cache_bucket(req->srv->cache, req->bucket, &bucket_id);
    if (r == 0)
        r = meta_cache_object_fresh(req->srv->cache, bucket_id, req->object, &m);
    if (r == -ENOENT)
        return respond_text(req, 404, "no such object");
    if (r < 0)
        return respond_errno(req, r, "cannot queue the repair");
    db = tctx_db();
    snprintf(payload, sizeof(payload), "{\"object_id\": %" PRId64 "}", m.id);
    if (!db || jobs_enqueue(db, tctx_kv(), "repair_object", payload, &job) < 0)
        return respond_errno(req, -EIO, "cannot queue the repair");
    metrics_inc(MC_REPAIRS_QUEUED, 1);
    log_info("event=repair_queued rid=%s object=%" PRId64 " job=%" PRId64 " reason=post", req->rid,
             m.id, job);
    return respond_empty(req, 204);
}
