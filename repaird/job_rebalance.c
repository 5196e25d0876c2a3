/* repaird/job_rebalance.c — the rebalance job ({"rebalance_id": N}): works through the run's
 * planned moves inside its window, object by object (rebalance_move.c), saving progress in
 * rebalance_moves so that a restarted repaird carries on where the last one stopped. */
#include "job.h"

#include "config.h"
#include "db.h"
#include "log.h"
#include "rebalance_move.h"
#include "stopflag.h"
#include "throttle.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RB_BATCH 32
#define RB_PROGRESS_LOG_MS 30000

struct rb_run {
    int64_t id;
    char ids[24];
    char state[16];
    char window[32];
    uint64_t max_bytes_per_sec;
    uint64_t delete_delay_ms;
    int64_t job_id;
    char note[200]; /* what the run row says now, to write it only when it changes */
    uint64_t moved_objects, moved_bytes, last_log_ms;
};

struct rb_move {
    int64_t id;
    int64_t src, dst;
    uint64_t planned_bytes;
};

/* Reads the run row. Returns 1 found, 0 gone, -EIO. */
static int rb_run_load(struct job *job, struct rb_run *run)
{
    const char *params[] = {run->ids};
    PGresult *res;
    int r = 0;

    res = db_exec(job->ctx->db,
                  "SELECT state, move_window, max_bytes_per_sec, delete_delay_ms, "
                  "  coalesce(job_id, 0), note FROM rebalances WHERE id = $1::bigint",
                  1, params);
    if (!res)
        return -EIO;
    if (PQntuples(res) == 1) {
        snprintf(run->state, sizeof(run->state), "%s", PQgetvalue(res, 0, 0));
        snprintf(run->window, sizeof(run->window), "%s", PQgetvalue(res, 0, 1));
        run->max_bytes_per_sec = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
        run->delete_delay_ms = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
        run->job_id = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
        snprintf(run->note, sizeof(run->note), "%s", PQgetvalue(res, 0, 5));
        r = 1;
    }
    PQclear(res);
    return r;
}

/* Writes the run's note (what it waits for) when it changed. Best effort. */
static void rb_run_note(struct job *job, struct rb_run *run, const char *note)
{
    const char *params[] = {run->ids, note};

    if (strcmp(run->note, note) == 0)
        return;
    if (db_run(job->ctx->db,
               "UPDATE rebalances SET note = $2, updated_at = now() WHERE id = $1::bigint", 2,
               params) == 0) {
        size_t n = strnlen(note, sizeof(run->note) - 1); /* cut short to the cached copy */

        memcpy(run->note, note, n);
        run->note[n] = '\0';
    }
}

/* Whether the run still wants this job to work: it is running and names this job. A paused,
 * cancelled or finished run (or one a newer job took over) ends the job. */
static int rb_run_active(struct job *job, struct rb_run *run)
{
    int r = rb_run_load(job, run);

    if (r <= 0)
        return r;
    return strcmp(run->state, "running") == 0 && run->job_id == job->id;
}

/* True when now (local time) is inside the run's window; otherwise writes when it opens into
 * note. A window that does not parse (the table does not check it) is never open. */
static bool rb_window_open(const struct rb_run *run, char *note, size_t notelen)
{
    time_t now = time(NULL);
    unsigned start, end, t;
    struct tm tm;
    bool in;

    if (parse_window(run->window, &start, &end) < 0) {
        snprintf(note, notelen, "bad window '%s': cancel this rebalance and start another",
                 run->window);
        return false;
    }
    localtime_r(&now, &tm);
    t = (unsigned) (tm.tm_hour * 60 + tm.tm_min);
    if (start < end)
        in = t >= start && t < end;
    else
        in = t >= start || t < end;
    if (!in)
        snprintf(note, notelen, "waiting for the window %s (opens at %02u:%02u local time)",
                 run->window, start / 60, start % 60);
    return in;
}

/* Reads the move's progress: its cursor and the bytes moved. Returns 0 or -EIO. */
static int rb_cursor_load(struct job *job, const struct rb_move *m, char *ts, size_t tslen,
                          char *id, size_t idlen, uint64_t *ret_moved)
{
    char ids[24];
    const char *params[] = {ids};
    PGresult *res;

    snprintf(ids, sizeof(ids), "%" PRId64, m->id);
    res = db_exec(job->ctx->db,
                  "SELECT after_updated_at::text, after_id, moved_bytes FROM rebalance_moves "
                  "WHERE id = $1::bigint",
                  1, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return -EIO;
    }
    snprintf(ts, tslen, "%s", PQgetvalue(res, 0, 0));
    snprintf(id, idlen, "%s", PQgetvalue(res, 0, 1));
    *ret_moved = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    return 0;
}

/* Loads the next objects of the move's source after its cursor (live buckets only, oldest
 * first, in (updated_at, id) order: the condition is written so that the index on
 * (cluster_id, updated_at) bounds the scan). Returns the count (0 = the source has no more),
 * or -EIO. */
static int rb_batch_load(struct job *job, const struct rb_move *m, struct rb_object *v,
                         uint64_t *ret_moved)
{
    char cid[24], lim[16], ts[64], aid[24];
    const char *params[] = {cid, ts, aid, lim};
    PGresult *res;
    int n = 0;

    if (rb_cursor_load(job, m, ts, sizeof(ts), aid, sizeof(aid), ret_moved) < 0)
        return -EIO;
    snprintf(cid, sizeof(cid), "%" PRId64, m->src);
    snprintf(lim, sizeof(lim), "%d", RB_BATCH);
    res = db_exec(job->ctx->db,
                  "SELECT o.id, o.internal_name, o.size, o.etag, o.updated_at::text "
                  "FROM objects o WHERE o.cluster_id = $1::bigint "
                  "  AND o.updated_at >= $2::timestamptz "
                  "  AND (o.updated_at > $2::timestamptz OR o.id > $3::bigint) "
                  "  AND EXISTS (SELECT 1 FROM buckets b WHERE b.id = o.bucket_id "
                  "              AND b.deleted_at IS NULL) "
                  "ORDER BY o.updated_at, o.id LIMIT $4::int",
                  4, params);
    if (!res)
        return -EIO;
    for (int i = 0; i < PQntuples(res) && n < RB_BATCH; i++) {
        struct rb_object *o = &v[n];

        o->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        snprintf(o->internal_name, sizeof(o->internal_name), "%s", PQgetvalue(res, i, 1));
        o->size = strtoull(PQgetvalue(res, i, 2), NULL, 10);
        snprintf(o->etag, sizeof(o->etag), "%s", PQgetvalue(res, i, 3));
        snprintf(o->updated_at, sizeof(o->updated_at), "%s", PQgetvalue(res, i, 4));
        if (!blob_name_valid(o->internal_name, strlen(o->internal_name)) || strlen(o->etag) != 32)
            log_warn("event=rebalance_bad_row object_id=%" PRId64 " note=\"invalid internal "
                     "name or etag: counted as failed\"",
                     o->id);
        n++;
    }
    PQclear(res);
    return n;
}

/* Moves the cursor past an object that was not moved and counts it. */
static int rb_progress_skip(struct job *job, const struct rb_move *m, const struct rb_object *o,
                            bool failed)
{
    char ids[24], oid[24];
    const char *params[] = {ids, failed ? "0" : "1", failed ? "1" : "0", o->updated_at, oid};

    snprintf(ids, sizeof(ids), "%" PRId64, m->id);
    snprintf(oid, sizeof(oid), "%" PRId64, o->id);
    return db_run(job->ctx->db,
                  "UPDATE rebalance_moves SET skipped_objects = skipped_objects + $2::bigint, "
                  "  failed_objects = failed_objects + $3::bigint, "
                  "  after_updated_at = $4::timestamptz, after_id = $5::bigint, "
                  "  updated_at = now() WHERE id = $1::bigint",
                  5, params);
}

static int rb_move_finish(struct job *job, const struct rb_move *m, const char *note)
{
    char ids[24];
    const char *params[] = {ids, note};

    snprintf(ids, sizeof(ids), "%" PRId64, m->id);
    return db_run(job->ctx->db,
                  "UPDATE rebalance_moves SET state = 'done', note = $2, updated_at = now() "
                  "WHERE id = $1::bigint",
                  2, params);
}

static void rb_log_progress(struct rb_run *run, bool force)
{
    uint64_t now = job_now_ms();

    if (!force && now - run->last_log_ms < RB_PROGRESS_LOG_MS)
        return;
    run->last_log_ms = now;
    log_info("event=rebalance_progress rebalance_id=%s moved_objects=%" PRIu64
             " moved_bytes=%" PRIu64,
             run->ids, run->moved_objects, run->moved_bytes);
}

/* What one object's outcome means for the job: JOB_DONE = go on. */
static enum job_result rb_outcome_result(struct job *job, struct rb_run *run,
                                         const struct rb_move *m, const struct rb_object *o,
                                         enum rb_outcome out, const char *why)
{
    switch (out) {
    case RB_MOVED:
        run->moved_objects++;
        run->moved_bytes += o->size;
        return JOB_DONE;
    case RB_SKIPPED:
    case RB_FAILED:
        if (out == RB_FAILED)
            log_warn("event=rebalance_object_failed rebalance_id=%s object_id=%" PRId64
                     " err=\"%s\" note=\"left where it is\"",
                     run->ids, o->id, why);
        else
            log_info("event=rebalance_object_skipped rebalance_id=%s object_id=%" PRId64
                     " why=\"%s\"",
                     run->ids, o->id, why);
        if (rb_progress_skip(job, m, o, out == RB_FAILED) < 0) {
            job_error(job, "cannot record progress: %s", db_error(job->ctx->db));
            return JOB_RETRY;
        }
        return JOB_DONE;
    case RB_DEST_NOT_RW:
        job_error(job, "%s", why);
        rb_run_note(job, run, why);
        return JOB_WAIT;
    case RB_DEST_REFUSED:
        job_error(job, "object %" PRId64 ": %s", o->id, why);
        return JOB_RETRY;
    case RB_CANCELLED:
        job_error(job, "%s", stopflag_raised() ? "shutdown" : "lease lost");
        return JOB_CANCELLED;
    case RB_DB_ERROR:
    default:
        job_error(job, "object %" PRId64 ": %s", o->id, why);
        return JOB_RETRY;
    }
}

/* Works one move until its bytes are moved or its source runs dry: JOB_DONE = move finished.
 * *ret_inactive is set (with JOB_DONE) when the run was paused, cancelled or taken over. */
static enum job_result rb_run_move(struct job *job, struct rb_run *run, const struct rb_target *t,
                                   const struct rb_move *m, bool *ret_inactive)
{
    struct rb_object batch[RB_BATCH];
    struct rb_topology topo;
    char why[512], note[200];
    uint64_t moved = 0;
    int n, r;

    for (;;) {
        n = rb_batch_load(job, m, batch, &moved);
        if (n < 0) {
            job_error(job, "cannot read objects: %s", db_error(job->ctx->db));
            return JOB_RETRY;
        }
        if (n == 0 || moved >= m->planned_bytes) {
            snprintf(note, sizeof(note), "%s", n == 0 ? "the source has no more objects" : "");
            if (rb_move_finish(job, m, note) < 0) {
                job_error(job, "cannot record progress: %s", db_error(job->ctx->db));
                return JOB_RETRY;
            }
            return JOB_DONE;
        }
        if (rb_topology_load(job, t, &topo) < 0) {
            job_error(job, "cannot read the clusters' storages: %s", db_error(job->ctx->db));
            return JOB_RETRY;
        }
        for (int i = 0; i < n && moved < m->planned_bytes; i++) {
            enum job_result res;
            enum rb_outcome out;

            r = job_heartbeat(job);
            if (r < 0) {
                rb_topology_release(&topo);
                job_error(job, "%s", r == -ESTALE ? "lease lost" : "shutdown");
                return JOB_CANCELLED;
            }
            r = rb_run_active(job, run);
            if (r <= 0) {
                rb_topology_release(&topo);
                if (r < 0) {
                    job_error(job, "cannot read the run: %s", db_error(job->ctx->db));
                    return JOB_RETRY;
                }
                *ret_inactive = true;
                return JOB_DONE;
            }
            if (!rb_window_open(run, note, sizeof(note))) {
                rb_topology_release(&topo);
                rb_run_note(job, run, note);
                job_error(job, "%s", note);
                return JOB_WAIT;
            }
            rb_run_note(job, run, "moving");
            if (!blob_name_valid(batch[i].internal_name, strlen(batch[i].internal_name)) ||
                strlen(batch[i].etag) != 32) {
                out = RB_FAILED;
                snprintf(why, sizeof(why), "invalid internal name or etag in its row");
            } else {
                out = rb_move_object(job, t, &topo, &batch[i], why, sizeof(why));
            }
            res = rb_outcome_result(job, run, m, &batch[i], out, why);
            if (res != JOB_DONE) {
                rb_topology_release(&topo);
                return res;
            }
            if (out == RB_MOVED)
                moved += batch[i].size;
            rb_log_progress(run, false);
        }
        rb_topology_release(&topo);
    }
}

/* Loads the run's pending moves in plan order. Returns the count, or -EIO / -ENOMEM. */
static int rb_moves_load(struct job *job, const struct rb_run *run, struct rb_move **ret)
{
    const char *params[] = {run->ids};
    struct rb_move *v = NULL;
    PGresult *res;
    int n;

    res = db_exec(job->ctx->db,
                  "SELECT id, src_cluster_id, dst_cluster_id, planned_bytes FROM rebalance_moves "
                  "WHERE rebalance_id = $1::bigint AND state = 'pending' ORDER BY id",
                  1, params);
    if (!res)
        return -EIO;
    n = PQntuples(res);
    v = calloc((size_t) n + 1, sizeof(*v));
    if (!v) {
        PQclear(res);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        v[i].id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        v[i].src = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        v[i].dst = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        v[i].planned_bytes = strtoull(PQgetvalue(res, i, 3), NULL, 10);
    }
    PQclear(res);
    *ret = v;
    return n;
}

/* Every move is done: the run is too (unless it was paused or cancelled meanwhile). */
static int rb_run_finish(struct job *job, const struct rb_run *run)
{
    const char *params[] = {run->ids};

    return db_run(job->ctx->db,
                  "UPDATE rebalances SET state = 'done', note = '', finished_at = now(), "
                  "  updated_at = now() WHERE id = $1::bigint AND state = 'running'",
                  1, params);
}

static enum job_result rebalance_run(struct job *job)
{
    struct rb_run run = {0};
    struct rb_move *moves = NULL;
    struct throttle *own = NULL;
    enum job_result res = JOB_DONE;
    bool inactive = false;
    char note[200];
    int n, r;

    if (job_payload_int64(job, "rebalance_id", &run.id) < 0) {
        job_error(job, "bad payload: needs rebalance_id");
        return JOB_FAIL;
    }
    snprintf(run.ids, sizeof(run.ids), "%" PRId64, run.id);
    r = rb_run_active(job, &run);
    if (r < 0) {
        job_error(job, "cannot read rebalance %s: %s", run.ids, db_error(job->ctx->db));
        return JOB_RETRY;
    }
    if (r == 0) {
        log_info("event=rebalance_job_ends rebalance_id=%s state=%s note=\"the run is not "
                 "running, or another job drives it\"",
                 run.ids, run.state[0] ? run.state : "gone");
        return JOB_DONE;
    }
    if (!rb_window_open(&run, note, sizeof(note))) {
        rb_run_note(job, &run, note);
        job_error(job, "%s", note);
        return JOB_WAIT;
    }
    if (run.max_bytes_per_sec > 0 && !(own = throttle_new(run.max_bytes_per_sec))) {
        job_error(job, "out of memory");
        return JOB_RETRY;
    }
    n = rb_moves_load(job, &run, &moves);
    if (n < 0) {
        job_error(job, "cannot read the moves of rebalance %s: %s", run.ids,
                  db_error(job->ctx->db));
        res = JOB_RETRY;
        goto out;
    }
    log_info("event=rebalance_working rebalance_id=%s moves_left=%d window=%s "
             "max_bytes_per_sec=%" PRIu64,
             run.ids, n, run.window, run.max_bytes_per_sec);
    for (int i = 0; i < n && res == JOB_DONE && !inactive; i++) {
        struct rb_target t = {.move_id = moves[i].id,
                              .rebalance_id = run.id,
                              .src_cluster_id = moves[i].src,
                              .dst_cluster_id = moves[i].dst,
                              .delete_delay_ms = run.delete_delay_ms,
                              .run_throttle = own};

        res = rb_run_move(job, &run, &t, &moves[i], &inactive);
    }
    rb_log_progress(&run, true);
    if (res != JOB_DONE || inactive)
        goto out;
    if (rb_run_finish(job, &run) < 0) {
        job_error(job, "cannot record the end of rebalance %s: %s", run.ids,
                  db_error(job->ctx->db));
        res = JOB_RETRY;
        goto out;
    }
    log_info("event=rebalance_done rebalance_id=%s", run.ids);
out:
    if (inactive)
        log_info("event=rebalance_job_ends rebalance_id=%s state=%s", run.ids, run.state);
    throttle_free(own);
    free(moves);
    return res;
}

const struct job_kind job_kind_rebalance = {
    .name = "rebalance",
    .run = rebalance_run,
};
