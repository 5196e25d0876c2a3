/* repaird/rebalance_move.c — one object's move between clusters: read a copy whose MD5 matches,
 * guard the new name with a delayed delete_files job, write every destination storage, check
 * them, then switch the row by compare-and-swap and schedule the old copies' deletion. */
#include "rebalance_move.h"

#include "buf.h"
#include "db.h"
#include "hash.h"
#include "http_client.h"
#include "job.h"
#include "jobs.h"
#include "kv.h"
#include "log.h"
#include "modes.h"
#include "names.h"
#include "objcache.h"
#include "throttle.h"
#include "transfer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define RB_URL_MAX (STORAGE_URI_MAX + BLOB_NAME_MAX + 2)
#define RB_GUARD_MIN_MS (3600ull * 1000) /* a guard fires no sooner than this after a copy */
#define RB_GUARD_RATE (1ull << 20)       /* bytes/s assumed when sizing a guard's delay */
#define RB_THROTTLE_SLICE_MIN (64ull << 10)
#define RB_LOCK_TIMEOUT "SET LOCAL lock_timeout = '10s'"

/* ---- topology ------------------------------------------------------------------------ */

int rb_topology_load(struct job *job, const struct rb_target *t, struct rb_topology *ret)
{
    char ids[24];
    const char *params[] = {ids};
    enum cluster_mode forced = CMODE_RW;
    enum storage_mode *members = NULL;
    PGresult *res;
    int r;

    memset(ret, 0, sizeof(*ret));
    r = storage_list_load(job->ctx->db, t->src_cluster_id, &ret->src);
    if (r == 0)
        r = storage_list_load(job->ctx->db, t->dst_cluster_id, &ret->dst);
    if (r < 0)
        goto fail;
    snprintf(ids, sizeof(ids), "%" PRId64, t->dst_cluster_id);
    res = db_exec(job->ctx->db, "SELECT name, forced_mode FROM clusters WHERE id = $1::bigint", 1,
                  params);
    if (!res) {
        r = -EIO;
        goto fail;
    }
    if (PQntuples(res) == 1) {
        snprintf(ret->dst_name, sizeof(ret->dst_name), "%s", PQgetvalue(res, 0, 0));
        if (!PQgetisnull(res, 0, 1) && cluster_mode_parse(PQgetvalue(res, 0, 1), &forced) < 0)
            forced = CMODE_DOWN;
    } else {
        snprintf(ret->dst_name, sizeof(ret->dst_name), "#%" PRId64 " (removed)", t->dst_cluster_id);
        forced = CMODE_DOWN;
    }
    PQclear(res);
    members = calloc(ret->dst.n + 1, sizeof(*members));
    if (!members) {
        r = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < ret->dst.n; i++)
        members[i] = ret->dst.v[i].mode;
    ret->dst_rw = modes_cluster_effective(forced, members, ret->dst.n) == CMODE_RW;
    free(members);
    return 0;
fail:
    rb_topology_release(ret);
    return r;
}

void rb_topology_release(struct rb_topology *topo)
{
    storage_list_release(&topo->src);
    storage_list_release(&topo->dst);
}

/* ---- throttling and ticks -------------------------------------------------------------- */

int rb_throttle_take(struct job *job, struct throttle *t, uint64_t n)
{
    uint64_t rate = throttle_rate(t), slice;
    int r;

    if (!t || rate == 0)
        return 0;
    /* a quarter second's worth at a time: the lease is renewed between the waits */
    slice = rate / 4 > RB_THROTTLE_SLICE_MIN ? rate / 4 : RB_THROTTLE_SLICE_MIN;
    while (n > 0) {
        uint64_t take = n < slice ? n : slice;

        r = throttle_take(t, (size_t) take);
        if (r == 0)
            r = job_heartbeat(job);
        if (r < 0)
            return r;
        n -= take;
    }
    return 0;
}

static int rb_tick(void *arg)
{
    return job_heartbeat(arg);
}

/* ---- the source copy ------------------------------------------------------------------- */

struct rb_source {
    const struct storage_info *s;
    uint64_t score;
};

static int rb_source_cmp(const void *a, const void *b)
{
    const struct rb_source *x = a, *y = b;

    return x->score < y->score ? 1 : x->score > y->score ? -1 : 0;
}

/* Spools a copy whose size and MD5 match the row into fd, trying the readable storages in read
 * order. Returns 0, -ENOENT (no good copy: why says what each storage had), -ECANCELED or
 * -ESTALE, -ENOMEM. */
static int rb_fetch(const struct xfer_opts *xo, const struct rb_topology *topo,
                    const struct rb_object *o, int fd, char *why, size_t whylen)
{
    struct rb_source *src = calloc(topo->src.n + 1, sizeof(*src));
    size_t n = 0, used = 0;
    int r = -ENOENT;

    if (!src)
        return -ENOMEM;
    for (size_t i = 0; i < topo->src.n; i++) {
        if (!storage_mode_readable(topo->src.v[i].mode))
            continue;
        src[n].s = &topo->src.v[i];
        src[n].score = hash_rendezvous(o->internal_name, strlen(o->internal_name), src[n].s->id);
        n++;
    }
    qsort(src, n, sizeof(*src), rb_source_cmp);
    why[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char url[RB_URL_MAX], what[200];
        struct xfer_result res;

        if (storage_url(src[i].s, o->internal_name, url, sizeof(url)) < 0)
            continue;
        xfer_fetch(xo, url, o->size, fd, &res);
        if (res.err == -ECANCELED || res.err == -ESTALE) {
            r = res.err;
            goto out;
        }
        if (res.err == -EFBIG)
            snprintf(what, sizeof(what), "longer than %" PRIu64 " bytes", o->size);
        else if (res.err || !http_status_ok(res.status))
            snprintf(what, sizeof(what), "%s", res.errmsg);
        else if (res.bytes != o->size)
            snprintf(what, sizeof(what), "%" PRIu64 " bytes", res.bytes);
        else if (strcasecmp(res.md5, o->etag) != 0)
            snprintf(what, sizeof(what), "md5 %s", res.md5);
        else {
            r = 0;
            goto out;
        }
        used += (size_t) snprintf(why + used, used < whylen ? whylen - used : 0, "%s%s: %s",
                                  used ? "; " : "", src[i].s->name, what);
        if (used >= whylen)
            used = whylen - 1;
    }
    r = -ENOENT;
    if (n == 0)
        snprintf(why, whylen, "no readable storage in the source cluster");
out:
    free(src);
    return r;
}

/* True (1) while the row still names the copies o describes; 0 changed; -EIO. */
static int rb_still_current(struct job *job, const struct rb_target *t, const struct rb_object *o)
{
    char ids[24], cid[24];
    const char *params[] = {ids, o->internal_name, cid};
    PGresult *res;
    int r;

    snprintf(ids, sizeof(ids), "%" PRId64, o->id);
    snprintf(cid, sizeof(cid), "%" PRId64, t->src_cluster_id);
    res = db_exec(job->ctx->db,
                  "SELECT 1 FROM objects WHERE id = $1::bigint AND internal_name = $2 "
                  "AND cluster_id = $3::bigint",
                  3, params);
    if (!res)
        return -EIO;
    r = PQntuples(res) == 1;
    PQclear(res);
    return r;
}

/* One line for logs and job errors: control characters (a storage's error body) become
 * spaces. */
static void rb_one_line(char *s)
{
    for (; *s; s++) {
        if ((unsigned char) *s < 0x20 || *s == '"')
            *s = *s == '"' ? '\'' : ' ';
    }
}

/* ---- the guard: a delete_files job for the new name, due only if the move never finishes ---- */

static int rb_guard_insert(struct job *job, const struct rb_target *t, const struct rb_object *o,
                           const char *new_name, int64_t *ret_id)
{
    char payload[256], delay[24];
    const char *params[] = {payload, delay};
    uint64_t ms = o->size / RB_GUARD_RATE * 4000;

    if (ms < RB_GUARD_MIN_MS)
        ms = RB_GUARD_MIN_MS;
    snprintf(payload, sizeof(payload),
             "{\"cluster_id\": %" PRId64 ", \"internal_name\": \"%s\", \"rebalance_id\": %" PRId64
             ", \"object_id\": %" PRId64 ", \"why\": \"rebalance copy guard\"}",
             t->dst_cluster_id, new_name, t->rebalance_id, o->id);
    snprintf(delay, sizeof(delay), "%" PRIu64, ms);
    return db_query_int64(job->ctx->db,
                          "INSERT INTO jobs (kind, payload, run_after) VALUES ('delete_files', "
                          "$1::jsonb, now() + $2::bigint * interval '1 millisecond') RETURNING id",
                          2, params, ret_id) < 0
               ? -EIO
               : 0;
}

/* The move did not happen: the guard removes the new copies now (or, if this fails, when it
 * comes due by itself). */
static void rb_guard_fire(struct job *job, int64_t guard_id)
{
    char ids[24];
    const char *params[] = {ids};

    snprintf(ids, sizeof(ids), "%" PRId64, guard_id);
    if (db_run(job->ctx->db,
               "UPDATE jobs SET run_after = now() WHERE id = $1::bigint AND state = 'pending'", 1,
               params) == 0)
        (void) jobs_announce(job->ctx->kv, guard_id);
}

/* ---- the destination copies -------------------------------------------------------------- */

/* Writes the spooled copy to every rw and spare storage of the destination and checks the rw
 * ones with HEAD. Marks written[i] for the destination storages holding it. Returns 0, -EIO
 * (an rw storage failed: why says which), -ECANCELED / -ESTALE. *ret_spare_missed is set when
 * a spare did not take it (repaired later, as for client writes). */
static int rb_store(struct job *job, const struct xfer_opts *xo, const struct rb_target *t,
                    const struct rb_topology *topo, const struct rb_object *o, const char *new_name,
                    int fd, bool *written, bool *ret_spare_missed, char *why, size_t whylen)
{
    int r;

    *ret_spare_missed = false;
    for (size_t i = 0; i < topo->dst.n; i++) {
        const struct storage_info *s = &topo->dst.v[i];
        bool spare = s->mode == SMODE_SPARE;
        struct xfer_result res;
        char url[RB_URL_MAX];

        if (s->mode != SMODE_RW && !spare)
            continue;
        if (storage_url(s, new_name, url, sizeof(url)) < 0) {
            snprintf(why, whylen, "%s: uri too long", s->name);
            return -EIO;
        }
        r = rb_throttle_take(job, t->run_throttle, o->size);
        if (r < 0)
            return r;
        xfer_store(xo, url, fd, o->size, o->etag, &res);
        if (res.err == -ECANCELED || res.err == -ESTALE)
            return res.err;
        if (!res.err && http_status_ok(res.status) &&
            (!res.etag[0] || strcasecmp(res.etag, o->etag) == 0))
            res.err = xfer_head(xo, url, &res) == 200 && res.content_length == (int64_t) o->size
                          ? 0
                          : -EIO;
        else if (!res.err)
            res.err = -EIO;
        if (res.err == 0) {
            written[i] = true;
            continue;
        }
        if (spare) {
            *ret_spare_missed = true;
            log_info("event=rebalance_spare_missed object_id=%" PRId64 " storage=%s err=\"%s\"",
                     o->id, s->name, res.errmsg);
            continue;
        }
        snprintf(why, whylen, "writing to %s failed: %s", s->name,
                 res.errmsg[0] ? res.errmsg : "the copy did not check out");
        return -EIO;
    }
    return 0;
}

/* ---- the switch ---------------------------------------------------------------------------- */

/* Inside the switch transaction: the destination is still rw and every rw storage of it is
 * one we wrote to. Locks the cluster and storage rows (FOR SHARE, in the order mode changes
 * lock them) so no mode change slips in before COMMIT. Returns 1 ok, 0 changed, -EIO. */
static int rb_dest_still_good(struct job *job, const struct rb_target *t,
                              const struct rb_topology *topo, const bool *written)
{
    char ids[24];
    const char *params[] = {ids};
    enum cluster_mode forced = CMODE_RW;
    enum storage_mode *members = NULL;
    PGresult *res;
    int n, r = 1;

    snprintf(ids, sizeof(ids), "%" PRId64, t->dst_cluster_id);
    res = db_exec(job->ctx->db, "SELECT forced_mode FROM clusters WHERE id = $1::bigint FOR SHARE",
                  1, params);
    if (!res)
        return -EIO;
    if (PQntuples(res) != 1)
        r = 0;
    else if (!PQgetisnull(res, 0, 0) && cluster_mode_parse(PQgetvalue(res, 0, 0), &forced) < 0)
        forced = CMODE_DOWN;
    PQclear(res);
    if (r == 0)
        return 0;
    res = db_exec(job->ctx->db,
                  "SELECT id, mode FROM storages WHERE cluster_id = $1::bigint ORDER BY id "
                  "FOR SHARE",
                  1, params);
    if (!res)
        return -EIO;
    n = PQntuples(res);
    members = calloc((size_t) n + 1, sizeof(*members));
    if (!members) {
        PQclear(res);
        return -EIO;
    }
    for (int i = 0; i < n && r == 1; i++) {
        int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        bool ours = false;

        if (storage_mode_parse(PQgetvalue(res, i, 1), &members[i]) < 0)
            members[i] = SMODE_DOWN;
        for (size_t k = 0; k < topo->dst.n; k++)
            ours = ours || (topo->dst.v[k].id == id && written[k]);
        if (members[i] == SMODE_RW && !ours)
            r = 0; /* an rw storage joined, or came back, after we wrote */
    }
    if (r == 1 && modes_cluster_effective(forced, members, (size_t) n) != CMODE_RW)
        r = 0;
    free(members);
    PQclear(res);
    return r;
}

struct rb_switched {
    int64_t bucket_id;
    char name[NAMES_OBJECT_MAX + 1];
    int64_t delete_job, repair_job;
};

/* Schedules the old copies' deletion and records the progress, inside the switch. */
static int rb_switch_records(struct job *job, const struct rb_target *t, const struct rb_object *o,
                             bool spare_missed, struct rb_switched *sw)
{
    char payload[320], delay[24], ids[5][24];
    const char *pdel[] = {payload, delay};
    const char *pmv[] = {ids[0], ids[1], o->updated_at, ids[2]};
    int r;

    snprintf(payload, sizeof(payload),
             "{\"cluster_id\": %" PRId64 ", \"internal_name\": \"%s\", \"rebalance_id\": %" PRId64
             ", \"object_id\": %" PRId64 ", \"why\": \"moved by rebalance\"}",
             t->src_cluster_id, o->internal_name, t->rebalance_id, o->id);
    snprintf(delay, sizeof(delay), "%" PRIu64, t->delete_delay_ms);
    r = db_query_int64(job->ctx->db,
                       "INSERT INTO jobs (kind, payload, run_after) VALUES ('delete_files', "
                       "$1::jsonb, now() + $2::bigint * interval '1 millisecond') RETURNING id",
                       2, pdel, &sw->delete_job);
    if (r < 0)
        return -EIO;
    snprintf(ids[0], sizeof(ids[0]), "%" PRId64, t->move_id);
    snprintf(ids[1], sizeof(ids[1]), "%" PRIu64, o->size);
    snprintf(ids[2], sizeof(ids[2]), "%" PRId64, o->id);
    r = db_run(job->ctx->db,
               "UPDATE rebalance_moves SET moved_bytes = moved_bytes + $2::bigint, "
               "  moved_objects = moved_objects + 1, after_updated_at = $3::timestamptz, "
               "  after_id = $4::bigint, updated_at = now() WHERE id = $1::bigint",
               4, pmv);
    if (r < 0)
        return -EIO;
    if (spare_missed) {
        snprintf(payload, sizeof(payload), "{\"object_id\": %" PRId64 "}", o->id);
        if (jobs_insert(job->ctx->db, "repair_object", payload, &sw->repair_job) < 0)
            return -EIO;
    }
    return 0;
}

/* The compare-and-swap. Returns RB_MOVED, RB_SKIPPED (the row changed), RB_DEST_NOT_RW,
 * RB_FAILED (the guard already ran: the copy took too long), RB_DB_ERROR. */
static enum rb_outcome rb_switch(struct job *job, const struct rb_target *t,
                                 const struct rb_topology *topo, const struct rb_object *o,
                                 const char *new_name, int64_t guard_id, const bool *written,
                                 bool spare_missed, struct rb_switched *sw, char *why,
                                 size_t whylen)
{
    char gid[24], oid[24], src[24], dst[24];
    const char *pguard[] = {gid};
    const char *pcas[] = {oid, o->internal_name, src, new_name, dst};
    enum rb_outcome out = RB_DB_ERROR;
    PGresult *res = NULL;
    int r;

    snprintf(gid, sizeof(gid), "%" PRId64, guard_id);
    snprintf(oid, sizeof(oid), "%" PRId64, o->id);
    snprintf(src, sizeof(src), "%" PRId64, t->src_cluster_id);
    snprintf(dst, sizeof(dst), "%" PRId64, t->dst_cluster_id);
    if (db_begin(job->ctx->db) < 0)
        goto fail;
    if (db_run(job->ctx->db, RB_LOCK_TIMEOUT, 0, NULL) < 0)
        goto fail;
    r = rb_dest_still_good(job, t, topo, written);
    if (r < 0)
        goto fail;
    if (r == 0) {
        snprintf(why, whylen,
                 "destination %s changed during the copy (no longer rw, or a new "
                 "rw storage)",
                 topo->dst_name);
        out = RB_DEST_NOT_RW;
        goto fail;
    }
    r = db_query_int64(job->ctx->db,
                       "DELETE FROM jobs WHERE id = $1::bigint AND state = 'pending' RETURNING id",
                       1, pguard, NULL);
    if (r == -ENOENT) {
        snprintf(why, whylen, "the copy took so long that its guard job ran");
        out = RB_FAILED;
        goto fail;
    }
    if (r < 0)
        goto fail;
    res = db_exec(job->ctx->db,
                  "UPDATE objects SET internal_name = $4, cluster_id = $5::bigint "
                  "WHERE id = $1::bigint AND internal_name = $2 AND cluster_id = $3::bigint "
                  "RETURNING bucket_id, name",
                  5, pcas);
    if (!res)
        goto fail;
    if (PQntuples(res) != 1) {
        snprintf(why, whylen, "overwritten, deleted or moved meanwhile");
        out = RB_SKIPPED;
        goto fail;
    }
    sw->bucket_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(sw->name, sizeof(sw->name), "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    res = NULL;
    if (rb_switch_records(job, t, o, spare_missed, sw) < 0)
        goto fail;
    if (db_commit(job->ctx->db) < 0) {
        snprintf(why, whylen, "commit failed: %s", db_error(job->ctx->db));
        return RB_DB_ERROR;
    }
    return RB_MOVED;
fail:
    if (out == RB_DB_ERROR)
        snprintf(why, whylen, "database: %s", db_error(job->ctx->db));
    PQclear(res);
    db_rollback(job->ctx->db);
    return out;
}

/* After COMMIT: every dispatcher drops its cached row, and the new jobs are announced (the
 * delayed delete is announced by repaird's sweep when it comes due). */
static void rb_after_switch(struct job *job, const struct rb_target *t, const struct rb_object *o,
                            const struct rb_switched *sw, const char *new_name)
{
    struct buf key;

    buf_init(&key, NAMES_OBJECT_MAX + 64);
    if (objcache_object_key(sw->bucket_id, sw->name, &key) == 0 &&
        objcache_invalidate(job->ctx->kv, key.ptr) < 0)
        log_warn("event=rebalance_cache_invalidate_failed object_id=%" PRId64
                 " note=\"Redis away: cached rows expire within %d s, before the old copies go\"",
                 o->id, OBJCACHE_TTL_S);
    buf_release(&key);
    if (t->delete_delay_ms == 0)
        (void) jobs_announce(job->ctx->kv, sw->delete_job);
    if (sw->repair_job > 0)
        (void) jobs_announce(job->ctx->kv, sw->repair_job);
    log_debug("event=object_moved object_id=%" PRId64 " from=%" PRId64 " to=%" PRId64
              " bytes=%" PRIu64 " old=%s new=%s",
              o->id, t->src_cluster_id, t->dst_cluster_id, o->size, o->internal_name, new_name);
}

enum rb_outcome rb_move_object(struct job *job, const struct rb_target *t,
                               const struct rb_topology *topo, const struct rb_object *o, char *why,
                               size_t whylen)
{
    struct xfer_opts xo = {.throttle = job->ctx->throttle,
                           .sharers = job->ctx->workers,
                           .tick = rb_tick,
                           .tick_arg = job};
    char new_name[NAMES_INTERNAL_LEN + 1];
    struct rb_switched sw = {0};
    enum rb_outcome out;
    bool *written = NULL, spare_missed = false;
    int64_t guard_id = 0;
    int fd = -1, r;

    why[0] = '\0';
    if (!topo->dst_rw) {
        snprintf(why, whylen, "destination %s is not rw", topo->dst_name);
        return RB_DEST_NOT_RW;
    }
    written = calloc(topo->dst.n + 1, sizeof(*written));
    fd = xfer_spool_open();
    if (!written || fd < 0) {
        snprintf(why, whylen, "cannot create a spool file: %s", strerror(fd < 0 ? -fd : ENOMEM));
        out = RB_DEST_REFUSED;
        goto out;
    }
    r = rb_throttle_take(job, t->run_throttle, o->size);
    if (r == 0)
        r = rb_fetch(&xo, topo, o, fd, why, whylen);
    if (r == -ECANCELED || r == -ESTALE) {
        out = RB_CANCELLED;
        goto out;
    }
    if (r < 0) {
        /* no good copy: most often the object was overwritten or deleted since we chose it */
        r = rb_still_current(job, t, o);
        out = r == 0 ? RB_SKIPPED : r < 0 ? RB_DB_ERROR : RB_FAILED;
        if (r == 0)
            snprintf(why, whylen, "overwritten, deleted or moved meanwhile");
        goto out;
    }
    if (names_internal_new(new_name) < 0 || rb_guard_insert(job, t, o, new_name, &guard_id) < 0) {
        snprintf(why, whylen, "cannot record the copy's guard job: %s", db_error(job->ctx->db));
        out = RB_DB_ERROR;
        goto out;
    }
    r = rb_store(job, &xo, t, topo, o, new_name, fd, written, &spare_missed, why, whylen);
    if (r == -ECANCELED || r == -ESTALE)
        out = RB_CANCELLED;
    else if (r < 0)
        out = RB_DEST_REFUSED;
    else
        out =
            rb_switch(job, t, topo, o, new_name, guard_id, written, spare_missed, &sw, why, whylen);
    if (out == RB_MOVED)
        rb_after_switch(job, t, o, &sw, new_name);
    else if (out != RB_FAILED) /* RB_FAILED here: the guard ran already */
        rb_guard_fire(job, guard_id);
out:
    if (fd >= 0)
        close(fd);
    free(written);
    rb_one_line(why);
    return out;
}
