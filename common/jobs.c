/* common/jobs.c — records background jobs in PostgreSQL (the durable record) and announces
 * them on the Redis stream stf:jobs (the fast path, best effort). */
#include "jobs.h"

#include "db.h"
#include "kv.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

/* The stream is trimmed to about this many entries: PostgreSQL holds every job, and repaird
 * re-announces pending ones, so an entry trimmed before it was read is never lost work. */
#define JOBS_STREAM_MAXLEN "1000000"

int jobs_insert(struct db *db, const char *kind, const char *payload_json, int64_t *ret_id)
{
    const char *params[2] = {kind, payload_json && *payload_json ? payload_json : "{}"};
    int64_t id;
    int r;

    if (!kind || !*kind)
        return -EINVAL;
    r = db_query_int64(db, "INSERT INTO jobs (kind, payload) VALUES ($1, $2::jsonb) RETURNING id",
                       2, params, &id);
    if (r < 0) {
        log_debug("event=job_insert_failed kind=%s err=\"%s\"", kind, db_error(db));
        return -EIO;
    }
    if (ret_id)
        *ret_id = id;
    return 0;
}

int jobs_announce(struct kv *kv, int64_t id)
{
    char ids[24];
    const char *argv[] = {"XADD", JOBS_STREAM, "MAXLEN", "~", JOBS_STREAM_MAXLEN, "*", "id", ids};
    redisReply *rep;

    if (!kv)
        return -EIO;
    snprintf(ids, sizeof(ids), "%" PRId64, id);
    rep = kv_command(kv, (int) (sizeof(argv) / sizeof(argv[0])), argv, NULL);
    if (!rep) {
        log_debug("event=job_announce_failed id=%" PRId64 " err=\"%s\"", id, kv_error(kv));
        return -EIO;
    }
    freeReplyObject(rep);
    return 0;
}

int jobs_enqueue(struct db *db, struct kv *kv, const char *kind, const char *payload_json,
                 int64_t *ret_id)
{
    int64_t id;
    int r;

    r = jobs_insert(db, kind, payload_json, &id);
    if (r < 0)
        return r;
    /* Announcing an uncommitted row would let repaird look for it too early. */
    if (kv && !db_in_transaction(db))
        (void) jobs_announce(kv, id);
    if (ret_id)
        *ret_id = id;
    return 0;
}
