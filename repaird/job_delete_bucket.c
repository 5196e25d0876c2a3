/* repaird/job_delete_bucket.c — the delete_bucket job: purges a deleted bucket in batches (each
 * batch deletes object rows and records their delete_files jobs in one transaction), then
 * removes the bucket row. */
#include "job.h"

#include "db.h"
#include "jobs.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define DELETE_BUCKET_BATCH "500"

/* One batch: returns the number of objects purged (0 = none left), or -EIO. The new jobs are
 * announced after COMMIT; ones Redis misses are announced by the sweep. */
static int delete_bucket_batch(struct job *job, const char *bucket_id)
{
    const char *params[] = {bucket_id, DELETE_BUCKET_BATCH};
    struct db *db = job->ctx->db;
    PGresult *res;
    int n;

    if (db_begin(db) < 0)
        return -EIO;
    res = db_exec(db,
                  "WITH gone AS (DELETE FROM objects WHERE id IN ("
                  "    SELECT id FROM objects WHERE bucket_id = $1::bigint ORDER BY id "
                  "    LIMIT $2::int FOR UPDATE SKIP LOCKED) "
                  "  RETURNING cluster_id, internal_name) "
                  "INSERT INTO jobs (kind, payload) SELECT 'delete_files', "
                  "  jsonb_build_object('cluster_id', cluster_id, 'internal_name', internal_name) "
                  "FROM gone RETURNING id",
                  2, params);
    if (!res) {
        db_rollback(db);
        return -EIO;
    }
    if (db_commit(db) < 0) {
        PQclear(res);
        return -EIO;
    }
    n = PQntuples(res);
    for (int i = 0; i < n; i++)
        (void) jobs_announce(job->ctx->kv, strtoll(PQgetvalue(res, i, 0), NULL, 10));
    PQclear(res);
    return n;
}

static enum job_result delete_bucket_run(struct job *job)
{
    struct db *db = job->ctx->db;
    char ids[24];
    const char *params[] = {ids};
    int64_t bucket_id, total = 0;
    PGresult *res;
    int n, r;

    if (job_payload_int64(job, "bucket_id", &bucket_id) < 0) {
        job_error(job, "bad payload: needs bucket_id");
        return JOB_FAIL;
    }
    snprintf(ids, sizeof(ids), "%" PRId64, bucket_id);
    res =
        db_exec(db, "SELECT deleted_at IS NOT NULL FROM buckets WHERE id = $1::bigint", 1, params);
    if (!res) {
        job_error(job, "cannot read bucket %s: %s", ids, db_error(db));
        return JOB_RETRY;
    }
    n = PQntuples(res);
    r = n == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (n == 0) {
        log_info("event=bucket_gone bucket_id=%s note=\"already purged\"", ids);
        return JOB_DONE;
    }
    if (!r) {
        job_error(job, "bucket %s is not deleted (deleted_at is NULL): refusing to purge it", ids);
        return JOB_FAIL;
    }
    for (;;) {
        if ((r = job_heartbeat(job)) < 0) {
            job_error(job, "%s after purging %" PRId64 " objects",
                      r == -ESTALE ? "lease lost" : "shutdown", total);
            return JOB_CANCELLED;
        }
        n = delete_bucket_batch(job, ids);
        if (n < 0) {
            job_error(job, "purging bucket %s failed after %" PRId64 " objects: %s", ids, total,
                      db_error(db));
            return JOB_RETRY;
        }
        if (n == 0)
            break;
        total += n;
    }
    /* objects a concurrent writer still held locked make this fail: the retry purges them */
    res = db_exec(db,
                  "DELETE FROM buckets b WHERE id = $1::bigint AND deleted_at IS NOT NULL "
                  "AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.bucket_id = b.id) RETURNING id",
                  1, params);
    if (!res) {
        job_error(job, "removing bucket %s failed: %s", ids, db_error(db));
        return JOB_RETRY;
    }
    n = PQntuples(res);
    PQclear(res);
    if (n != 1) {
        job_error(job, "bucket %s still has objects (being written?) after purging %" PRId64, ids,
                  total);
        return JOB_RETRY;
    }
    log_info("event=bucket_purged bucket_id=%s objects=%" PRId64, ids, total);
    return JOB_DONE;
}

const struct job_kind job_kind_delete_bucket = {
    .name = "delete_bucket",
    .run = delete_bucket_run,
};
