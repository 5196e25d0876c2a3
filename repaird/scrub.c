/* repaird/scrub.c — the scrub thread: holds the scrub_state lease, walks the objects by id in
 * small batches, reads every rw, ro and spare copy through two throttles (its own rate and
 * max_bytes_per_sec), and queues repair_object for an object whose copy is missing or bad. */
#include "scrub.h"

#include "blob_path.h"
#include "config.h"
#include "db.h"
#include "env_knob.h"
#include "http_client.h"
#include "job.h"
#include "jobs.h"
#include "kv.h"
#include "lease_owner.h"
#include "log.h"
#include "stopflag.h"
#include "storage_list.h"
#include "throttle.h"
#include "transfer.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCRUB_BATCH 16
#define SCRUB_LEASE_MS ((uint64_t) 60000)
#define SCRUB_IDLE_MS 10000ull /* another repaird scrubs, or PostgreSQL is away: look again */
#define SCRUB_KV_TIMEOUT_MS 1000
#define SCRUB_URL_MAX (STORAGE_URI_MAX + BLOB_NAME_MAX + 2)
#define SCRUB_SLICE_MIN ((uint64_t) 64 << 10)

struct scrub {
    const struct cfg *cfg;
    struct scrub_opts opts;
    struct throttle *shared, *own;
    const char *owner;
    pthread_t thread;
    struct db *db;
    struct kv *kv;
    uint64_t lease_renewed_ms;
    bool db_away;
};

struct scrub_object {
    int64_t id, cluster_id;
    char name[BLOB_NAME_MAX + 1];
    uint64_t size;
    char etag[33];
};

struct scrub_counts {
    uint64_t objects, copies, bytes, bad;
};

int scrub_opts_load(struct scrub_opts *o, char *err, size_t errlen)
{
    int r;

    o->start_delay_ms = 60000;
    o->pass_min_ms = 24ull * 3600 * 1000;
    r = env_duration_ms("STF_REPAIRD_SCRUB_START", 0, &o->start_delay_ms, err, errlen);
    if (r == 0)
        r = env_duration_ms("STF_REPAIRD_SCRUB_PASS", 0, &o->pass_min_ms, err, errlen);
    return r;
}

/* How long to wait before asking for the lease again: a short pass interval (tests) is not
 * held up by the usual 10 s. */
static uint64_t scrub_idle_ms(const struct scrub *s)
{
    uint64_t ms = s->opts.pass_min_ms < SCRUB_IDLE_MS ? s->opts.pass_min_ms : SCRUB_IDLE_MS;

    return ms < 100 ? 100 : ms;
}

/* ---- the lease on scrub_state ------------------------------------------------------------ */

/* Takes or renews the lease; a new pass begins only pass_min_ms after the last one began.
 * Returns 1 held (and *ret_after, the cursor), 0 another repaird holds it or the next pass is
 * not due yet, -EIO. */
static int scrub_lease(struct scrub *s, int64_t *ret_after)
{
    char ms[24], pass[24];
    const char *params[] = {s->owner, ms, pass};
    PGresult *res;
    int r = 0;

    snprintf(ms, sizeof(ms), "%" PRIu64, SCRUB_LEASE_MS);
    snprintf(pass, sizeof(pass), "%" PRIu64, s->opts.pass_min_ms);
    res = db_exec(s->db,
                  "UPDATE scrub_state SET locked_by = $1, "
                  "  locked_until = now() + $2::bigint * interval '1 millisecond', "
                  "  pass_started_at = coalesce(pass_started_at, now()), updated_at = now() "
                  "WHERE id = 1 AND (locked_by IS NULL OR locked_by = $1 OR locked_until < now()) "
                  "  AND (pass_started_at IS NOT NULL OR last_pass_started_at IS NULL OR "
                  "       last_pass_started_at <= now() - $3::bigint * interval '1 millisecond') "
                  "RETURNING after_object_id",
                  3, params);
    if (!res)
        return -EIO;
    if (PQntuples(res) == 1) {
        *ret_after = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        s->lease_renewed_ms = job_now_ms();
        r = 1;
    }
    PQclear(res);
    if (r == 0) {
        /* a holder on this host that died (kill -9) need not be waited for */
        res = db_exec(s->db, "SELECT locked_by FROM scrub_state WHERE id = 1", 0, NULL);
        if (res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
            lease_owner_is_dead(s->owner, PQgetvalue(res, 0, 0))) {
            const char *p[] = {PQgetvalue(res, 0, 0)};

            if (db_run(s->db,
                       "UPDATE scrub_state SET locked_by = NULL, locked_until = NULL "
                       "WHERE id = 1 AND locked_by = $1",
                       1, p) == 0)
                log_info("event=scrub_lease_taken_over from=\"%s\" note=\"that repaird is gone\"",
                         p[0]);
        }
        PQclear(res);
    }
    return r;
}

/* Ticks of a transfer: keep the lease; stop on shutdown or when the lease is gone. */
static int scrub_tick(void *arg)
{
    struct scrub *s = arg;
    int64_t after;

    if (stopflag_raised())
        return -ECANCELED;
    if (job_now_ms() - s->lease_renewed_ms < SCRUB_LEASE_MS / 3)
        return 0;
    if (scrub_lease(s, &after) == 1)
        return 0;
    if (job_now_ms() - s->lease_renewed_ms < SCRUB_LEASE_MS * 2 / 3)
        return 0; /* PostgreSQL away for a moment: the lease surely holds still */
    return -ESTALE;
}

/* Charges n bytes to the scrub's own rate, a slice at a time so the lease stays renewed. */
static int scrub_take(struct scrub *s, uint64_t n)
{
    uint64_t slice = throttle_rate(s->own) / 4;
    int r;

    if (slice < SCRUB_SLICE_MIN)
        slice = SCRUB_SLICE_MIN;
    while (n > 0) {
        uint64_t take = n < slice ? n : slice;

        r = throttle_take(s->own, (size_t) take);
        if (r == 0)
            r = scrub_tick(s);
        if (r < 0)
            return r;
        n -= take;
    }
    return 0;
}

/* ---- one object -------------------------------------------------------------------------- */

/* True while the row still names this copy (not overwritten, moved or deleted meanwhile). */
static bool scrub_still_current(struct scrub *s, const struct scrub_object *o)
{
    char ids[24], cid[24];
    const char *params[] = {ids, o->name, cid};
    PGresult *res;
    bool r;

    snprintf(ids, sizeof(ids), "%" PRId64, o->id);
    snprintf(cid, sizeof(cid), "%" PRId64, o->cluster_id);
    res = db_exec(s->db,
                  "SELECT 1 FROM objects WHERE id = $1::bigint AND internal_name = $2 "
                  "AND cluster_id = $3::bigint",
                  3, params);
    r = res && PQntuples(res) == 1;
    PQclear(res);
    return r;
}

/* Queues a repair of the object unless one is already waiting. */
static void scrub_queue_repair(struct scrub *s, const struct scrub_object *o, const char *why)
{
    char ids[24], payload[64];
    const char *params[] = {payload, ids};
    int64_t job = 0;
    int r;

    snprintf(ids, sizeof(ids), "%" PRId64, o->id);
    snprintf(payload, sizeof(payload), "{\"object_id\": %" PRId64 "}", o->id);
    r = db_query_int64(s->db,
                       "INSERT INTO jobs (kind, payload) SELECT 'repair_object', $1::jsonb "
                       "WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE kind = 'repair_object' AND "
                       "  state IN ('pending', 'running') AND payload ->> 'object_id' = $2) "
                       "RETURNING id",
                       2, params, &job);
    if (r == 0)
        (void) jobs_announce(s->kv, job);
    if (r == 0 || r == -ENOENT)
        log_warn("event=scrub_bad_copy object_id=%" PRId64 " name=%s %s repair_job=%" PRId64, o->id,
                 o->name, why, job);
    else
        log_error("event=scrub_repair_not_queued object_id=%" PRId64 " err=\"%s\"", o->id,
                  db_error(s->db));
}

/* Reads every copy of o. Returns 0, -ECANCELED, -ESTALE. */
static int scrub_object(struct scrub *s, const struct storage_list *l, const struct scrub_object *o,
                        struct scrub_counts *c)
{
    struct xfer_opts xo = {.throttle = s->shared, .sharers = 1, .tick = scrub_tick, .tick_arg = s};
    char bad[400] = "";
    size_t used = 0;
    int r;

    for (size_t i = 0; i < l->n; i++) {
        const struct storage_info *st = &l->v[i];
        char url[SCRUB_URL_MAX], what[160] = "";
        struct xfer_result res;

        if (st->cluster_id != o->cluster_id ||
            (st->mode != SMODE_RW && st->mode != SMODE_RO && st->mode != SMODE_SPARE) ||
            storage_url(st, o->name, url, sizeof(url)) < 0)
            continue;
        r = scrub_take(s, o->size);
        if (r < 0)
            return r;
        xfer_fetch(&xo, url, o->size, -1, &res);
        if (res.err == -ECANCELED || res.err == -ESTALE)
            return res.err;
        c->bytes += res.bytes;
        if (res.err == -EFBIG)
            snprintf(what, sizeof(what), "longer than %" PRIu64 " bytes", o->size);
        else if (res.err || (res.status != 404 && !http_status_ok(res.status)))
            continue; /* unreachable: the health checks deal with that storage */
        else if (res.status == 404)
            snprintf(what, sizeof(what), "missing");
        else if (res.bytes != o->size)
            snprintf(what, sizeof(what), "%" PRIu64 " bytes, expected %" PRIu64, res.bytes,
                     o->size);
        else if (strcasecmp(res.md5, o->etag) != 0)
            snprintf(what, sizeof(what), "md5 %s, expected %s", res.md5, o->etag);
        c->copies++;
        if (!what[0])
            continue;
        c->bad++;
        used += (size_t) snprintf(bad + used, used < sizeof(bad) ? sizeof(bad) - used : 0,
                                  "%s%s: %s", used ? "; " : "", st->name, what);
        if (used >= sizeof(bad))
            used = sizeof(bad) - 1;
    }
    c->objects++;
    if (bad[0] && scrub_still_current(s, o)) {
        char why[440];

        snprintf(why, sizeof(why), "bad=\"%s\"", bad);
        scrub_queue_repair(s, o, why);
    }
    return 0;
}

/* ---- batches and passes ------------------------------------------------------------------- */

/* Loads up to SCRUB_BATCH objects after the cursor. Returns the count or -EIO. */
static int scrub_batch_load(struct scrub *s, int64_t after, struct scrub_object *v)
{
    char ids[24], lim[16];
    const char *params[] = {ids, lim};
    PGresult *res;
    int n = 0;

    snprintf(ids, sizeof(ids), "%" PRId64, after);
    snprintf(lim, sizeof(lim), "%d", SCRUB_BATCH);
    res = db_exec(s->db,
                  "SELECT id, cluster_id, internal_name, size, etag FROM objects "
                  "WHERE id > $1::bigint ORDER BY id LIMIT $2::int",
                  2, params);
    if (!res)
        return -EIO;
    for (int i = 0; i < PQntuples(res) && n < SCRUB_BATCH; i++) {
        struct scrub_object *o = &v[n];

        o->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        o->cluster_id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        snprintf(o->name, sizeof(o->name), "%s", PQgetvalue(res, i, 2));
        o->size = strtoull(PQgetvalue(res, i, 3), NULL, 10);
        snprintf(o->etag, sizeof(o->etag), "%s", PQgetvalue(res, i, 4));
        if (!blob_name_valid(o->name, strlen(o->name)) || strlen(o->etag) != 32)
            o->id = -o->id; /* never read: only the cursor passes it */
        n++;
    }
    PQclear(res);
    return n;
}

/* Saves the cursor and the counts while holding the lease. Returns 0, -ESTALE, -EIO. */
static int scrub_save(struct scrub *s, int64_t after, const struct scrub_counts *c)
{
    char a[24], o[24], cp[24], b[24], bad[24], ms[24];
    const char *params[] = {s->owner, a, o, cp, b, bad, ms};
    PGresult *res;
    int r;

    snprintf(a, sizeof(a), "%" PRId64, after);
    snprintf(o, sizeof(o), "%" PRIu64, c->objects);
    snprintf(cp, sizeof(cp), "%" PRIu64, c->copies);
    snprintf(b, sizeof(b), "%" PRIu64, c->bytes);
    snprintf(bad, sizeof(bad), "%" PRIu64, c->bad);
    snprintf(ms, sizeof(ms), "%" PRIu64, SCRUB_LEASE_MS);
    res = db_exec(
        s->db,
        "UPDATE scrub_state SET after_object_id = $2::bigint, "
        "  objects_checked = objects_checked + $3::bigint, "
        "  copies_checked = copies_checked + $4::bigint, "
        "  bytes_checked = bytes_checked + $5::bigint, bad_copies = bad_copies + $6::bigint, "
        "  locked_until = now() + $7::bigint * interval '1 millisecond', updated_at = now() "
        "WHERE id = 1 AND locked_by = $1 RETURNING id",
        7, params);
    if (!res)
        return -EIO;
    r = PQntuples(res) == 1 ? 0 : -ESTALE;
    PQclear(res);
    if (r == 0)
        s->lease_renewed_ms = job_now_ms();
    return r;
}

/* The pass reached the last object: log it, start over at the beginning, let the lease go
 * (the next pass is due pass_min_ms after this one began; see scrub_lease). */
static void scrub_pass_done(struct scrub *s)
{
    const char *params[] = {s->owner};
    PGresult *res;

    res = db_exec(s->db,
                  "UPDATE scrub_state s SET after_object_id = 0, pass = s.pass + 1, "
                  "  last_pass_started_at = s.pass_started_at, last_pass_finished_at = now(), "
                  "  pass_started_at = NULL, objects_checked = 0, copies_checked = 0, "
                  "  bytes_checked = 0, bad_copies = 0, locked_by = NULL, locked_until = NULL, "
                  "  updated_at = now() "
                  "FROM (SELECT objects_checked, copies_checked, bytes_checked, bad_copies, "
                  "  pass_started_at FROM scrub_state WHERE id = 1) old "
                  "WHERE s.id = 1 AND s.locked_by = $1 RETURNING s.pass, old.objects_checked, "
                  "  old.copies_checked, old.bytes_checked, old.bad_copies, "
                  "  coalesce(floor(extract(epoch FROM now() - old.pass_started_at) * 1000), 0)",
                  1, params);
    if (res && PQntuples(res) == 1)
        log_info("event=scrub_pass_done pass=%s objects=%s copies=%s bytes=%s bad_copies=%s "
                 "ms=%s",
                 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                 PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5));
    PQclear(res);
}

/* One round: lease, one batch, progress. Returns the milliseconds to sleep before the next. */
static uint64_t scrub_round(struct scrub *s)
{
    struct scrub_object batch[SCRUB_BATCH];
    struct scrub_counts c = {0};
    struct storage_list l = {0};
    int64_t after = 0;
    int n, r;

    r = scrub_lease(s, &after);
    if (r < 0) {
        if (!s->db_away)
            log_warn("event=scrub_db_error err=\"%s\" note=\"scrub resumes when PostgreSQL "
                     "answers (and the migrations are applied)\"",
                     db_error(s->db));
        s->db_away = true;
        return SCRUB_IDLE_MS;
    }
    s->db_away = false;
    if (r == 0)
        return scrub_idle_ms(s);
    n = scrub_batch_load(s, after, batch);
    if (n == 0) {
        scrub_pass_done(s);
        return scrub_idle_ms(s);
    }
    if (n < 0 || storage_list_load(s->db, -1, &l) < 0)
        return SCRUB_IDLE_MS;
    r = 0;
    for (int i = 0; i < n && r == 0; i++) {
        if (batch[i].id > 0)
            r = scrub_object(s, &l, &batch[i], &c);
        if (r == 0)
            after = batch[i].id > 0 ? batch[i].id : -batch[i].id;
    }
    storage_list_release(&l);
    /* what was read before a shutdown counts; after a lost lease another repaird goes on */
    if (r != -ESTALE && scrub_save(s, after, &c) == -ESTALE)
        r = -ESTALE;
    if (r == -ESTALE)
        log_info("event=scrub_lease_lost note=\"another repaird scrubs now\"");
    return r == -ESTALE ? scrub_idle_ms(s) : 0;
}

static void *scrub_main(void *arg)
{
    struct scrub *s = arg;
    char err[256];
    bool logged = false;
    uint64_t wait_ms;

    if (stopflag_sleep_ms(s->opts.start_delay_ms))
        goto out;
    while (!(s->db = db_open(s->cfg->database.url, err, sizeof(err)))) {
        if (!logged)
            log_warn("event=db_unreachable err=\"%s\" note=\"retrying every second\"", err);
        logged = true;
        if (stopflag_sleep_ms(1000))
            goto out;
    }
    log_info("event=scrub_started scrub_bytes_per_sec=%" PRIu64 " pass_min_ms=%" PRIu64,
             s->cfg->repaird.scrub_bytes_per_sec, s->opts.pass_min_ms);
    while (!stopflag_raised()) {
        wait_ms = scrub_round(s);
        if (wait_ms > 0 && stopflag_sleep_ms(wait_ms))
            break;
    }
out:
    http_thread_cleanup();
    return NULL;
}

int scrub_start(const struct cfg *cfg, const struct scrub_opts *o, struct throttle *shared,
                const char *owner, struct scrub **ret)
{
    struct scrub *s;
    char err[256];
    int r;

    *ret = NULL;
    if (cfg->repaird.scrub_bytes_per_sec == 0) {
        log_info("event=scrub_off note=\"[repaird] scrub_bytes_per_sec is 0\"");
        return 0;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cfg = cfg;
    s->opts = *o;
    s->shared = shared;
    s->owner = owner;
    s->own = throttle_new(cfg->repaird.scrub_bytes_per_sec);
    s->kv = kv_open(cfg->redis.url, SCRUB_KV_TIMEOUT_MS, err, sizeof(err));
    if (!s->own || !s->kv) {
        r = s->own ? -EINVAL : -ENOMEM;
        goto fail;
    }
    r = -pthread_create(&s->thread, NULL, scrub_main, s);
    if (r < 0)
        goto fail;
    *ret = s;
    return 0;
fail:
    throttle_free(s->own);
    kv_free(s->kv);
    free(s);
    return r;
}

void scrub_join(struct scrub *s)
{
    if (!s)
        return;
    pthread_join(s->thread, NULL);
    db_free(s->db);
    kv_free(s->kv);
    throttle_free(s->own);
    free(s);
}
