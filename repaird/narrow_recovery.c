/* repaird/narrow_recovery.c — after the whole-disk copy: objects rows changed since it began
 * (copied to the target when it lacks them) and delete_files jobs recorded since then (their
 * files removed from the target), in batches that resume from the last id done. */
#include "narrow_recovery.h"

#include "blob_path.h"
#include "db.h"
#include "http_client.h"
#include "job.h"
#include "log.h"
#include "rsync_copy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NARROW_BATCH 256
#define NARROW_PAR 64 /* HEAD / DELETE requests at once */
#define NARROW_HTTP_TIMEOUT_MS 15000u
#define NARROW_URL_MAX (STORAGE_URI_MAX + BLOB_NAME_MAX + 2)

struct narrow_obj {
    int64_t id;
    char name[BLOB_NAME_MAX + 1];
    uint64_t size;
    char etag[33];
    bool need; /* the target lacks it (or holds a copy of another size) */
    bool copied;
    int err; /* of the last copy attempt */
    char errmsg[256];
};

struct narrow_batch {
    struct narrow_obj *v;
    size_t n;
    uint64_t bytes;
};

static const char *const narrow_step_names[] = {"objects", "deletes", "done"};

const char *narrow_step_name(enum narrow_step s)
{
    return s <= NARROW_DONE ? narrow_step_names[s] : "?";
}

int narrow_step_parse(const char *s, enum narrow_step *ret)
{
    for (int i = 0; i <= NARROW_DONE; i++) {
        if (strcmp(s, narrow_step_names[i]) == 0) {
            *ret = (enum narrow_step) i;
            return 0;
        }
    }
    return -EINVAL;
}

static int narrow_tick(void *arg)
{
    return job_heartbeat(arg);
}

static void narrow_copied_cb(void *arg, const struct rcopy_item *it, const struct rcopy_result *res)
{
    struct narrow_batch *b = arg;
    struct narrow_obj *o = &b->v[it->seq];

    o->err = res->err;
    o->copied = res->err == 0;
    snprintf(o->errmsg, sizeof(o->errmsg), "%s", res->errmsg);
    b->bytes += res->wire_bytes;
}

/* HEADs the batch on the target: sets need for the objects it lacks. Returns 0 or -EIO. */
static int narrow_check_target(const struct narrow_ctx *ctx, struct narrow_batch *b, char *err,
                               size_t errlen)
{
    char(*urls)[NARROW_URL_MAX] = calloc(NARROW_PAR, sizeof(*urls));
    struct http_req *reqs = calloc(NARROW_PAR, sizeof(*reqs));
    int r = 0;

    if (!urls || !reqs) {
        r = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t start = 0; start < b->n; start += NARROW_PAR) {
        size_t k = b->n - start < NARROW_PAR ? b->n - start : NARROW_PAR;

        for (size_t i = 0; i < k; i++) {
            storage_url(ctx->target, b->v[start + i].name, urls[i], NARROW_URL_MAX);
            reqs[i] = (struct http_req){
                .method = HTTP_HEAD, .url = urls[i], .timeout_ms = NARROW_HTTP_TIMEOUT_MS};
        }
        if (http_multi_run(reqs, k, NARROW_HTTP_TIMEOUT_MS + 1000) < 0) {
            r = -ENOMEM;
            snprintf(err, errlen, "cannot start HEAD requests");
            goto out;
        }
        for (size_t i = 0; i < k; i++) {
            struct narrow_obj *o = &b->v[start + i];
            long st = reqs[i].info.status;

            if (reqs[i].err) {
                r = -EIO;
                snprintf(err, errlen, "HEAD %s: %s", urls[i], reqs[i].errmsg);
                goto out;
            }
            if (st == 200 && reqs[i].info.content_length == (int64_t) o->size)
                continue;
            if (st != 200 && st != 404) {
                r = -EIO;
                snprintf(err, errlen, "HEAD %s: HTTP %ld", urls[i], st);
                goto out;
            }
            o->need = true;
        }
    }
out:
    free(urls);
    free(reqs);
    return r;
}

/* Copies what the target needs from the peers in order. Returns 0 or -errno. */
static int narrow_copy(const struct narrow_ctx *ctx, struct narrow_batch *b,
                       struct narrow_progress *p, char *err, size_t errlen)
{
    struct rcopy_opts o = {.lanes = ctx->lanes,
                           .throttle = ctx->throttle,
                           .defer_sync = true,
                           .done = narrow_copied_cb,
                           .done_arg = b,
                           .tick = narrow_tick,
                           .tick_arg = ctx->job,
                           .dst_uri = ctx->target->uri};
    bool any = false;
    int r = 0;

    for (size_t k = 0; k < ctx->npeers; k++) {
        struct rcopy *c = NULL;

        o.src_uri = ctx->peers[k].uri;
        r = rcopy_new(&o, &c);
        if (r < 0) {
            snprintf(err, errlen, "out of memory");
            return r;
        }
        for (size_t i = 0; i < b->n && r == 0; i++) {
            struct narrow_obj *ob = &b->v[i];
            struct rcopy_item it = {.op = RCOPY_FETCH, .size = ob->size, .seq = i};

            if (!ob->need || ob->copied || (k > 0 && ob->err != -ENOENT && ob->err != -EBADMSG))
                continue;
            snprintf(it.name, sizeof(it.name), "%s", ob->name);
            snprintf(it.expect_md5, sizeof(it.expect_md5), "%s", ob->etag);
            while (!rcopy_has_free_lane(c) && (r = rcopy_run(c, 1000)) == 0)
                ;
            if (r == 0)
                r = rcopy_submit(c, &it);
            any = true;
        }
        if (r == 0)
            r = rcopy_drain(c);
        rcopy_free(c);
        if (r < 0) {
            snprintf(err, errlen, "narrow recovery stopped: %s", strerror(-r));
            return r;
        }
        for (size_t i = 0; i < b->n; i++) {
            struct narrow_obj *ob = &b->v[i];

            if (ob->need && !ob->copied && ob->err && ob->err != -ENOENT && ob->err != -EBADMSG) {
                snprintf(err, errlen, "copying %s from %s: %s", ob->name, ctx->peers[k].name,
                         ob->errmsg);
                return -EIO;
            }
        }
    }
    if (any && (r = rcopy_sync(ctx->target->uri, err, errlen)) < 0)
        return r;
    for (size_t i = 0; i < b->n; i++) {
        struct narrow_obj *ob = &b->v[i];
        char ids[24];
        const char *params[] = {ids, ob->name};
        PGresult *res;

        if (!ob->need)
            continue;
        if (ob->copied) {
            p->copied++;
            continue;
        }
        snprintf(ids, sizeof(ids), "%" PRId64, ob->id);
        res = db_exec(ctx->job->ctx->db,
                      "SELECT 1 FROM objects WHERE id = $1::bigint AND internal_name = $2", 2,
                      params);
        if (!res) {
            snprintf(err, errlen, "database: %s", db_error(ctx->job->ctx->db));
            return -EIO;
        }
        if (PQntuples(res) > 0) { /* still live, and no peer has a good copy */
            p->lost++;
            log_warn("event=recover_object_lost object_id=%" PRId64 " name=%s reason=\"%s\"",
                     ob->id, ob->name, ob->errmsg);
        }
        PQclear(res);
    }
    p->bytes += b->bytes;
    return 0;
}

/* One batch of live objects changed since the copy began. Returns rows done (0: step over). */
static int narrow_objects_batch(const struct narrow_ctx *ctx, struct narrow_progress *p, char *err,
                                size_t errlen)
{
    char cid[24], after[24];
    const char *params[] = {cid, ctx->since, p->after_ts, after};
    struct narrow_batch b = {0};
    PGresult *res;
    int n, r;

    snprintf(cid, sizeof(cid), "%" PRId64, ctx->cluster_id);
    snprintf(after, sizeof(after), "%" PRId64, p->after_id);
    /* (updated_at, id) order follows objects_cluster_idx (cluster_id, updated_at) */
    res = db_exec(ctx->job->ctx->db,
                  "SELECT id, internal_name, size, etag, updated_at::text FROM objects"
                  " WHERE cluster_id = $1::bigint AND (updated_at, id) > (COALESCE(NULLIF($3, "
                  "'')::timestamptz, $2::timestamptz - interval '" NARROW_MARGIN "'), $4::bigint)"
                  " ORDER BY updated_at, id LIMIT 256",
                  4, params);
    if (!res) {
        snprintf(err, errlen, "database: %s", db_error(ctx->job->ctx->db));
        return -EIO;
    }
    n = PQntuples(res);
    b.v = calloc((size_t) n + 1, sizeof(*b.v));
    if (!b.v) {
        PQclear(res);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        struct narrow_obj *o = &b.v[b.n];
        const char *name = PQgetvalue(res, i, 1);

        o->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        p->after_id = o->id;
        snprintf(p->after_ts, sizeof(p->after_ts), "%s", PQgetvalue(res, i, 4));
        if (!blob_name_valid(name, strlen(name)))
            continue; /* nothing such can be on a disk */
        snprintf(o->name, sizeof(o->name), "%s", name);
        o->size = strtoull(PQgetvalue(res, i, 2), NULL, 10);
        snprintf(o->etag, sizeof(o->etag), "%s", PQgetvalue(res, i, 3));
        b.n++;
    }
    PQclear(res);
    r = narrow_check_target(ctx, &b, err, errlen);
    if (r == 0)
        r = narrow_copy(ctx, &b, p, err, errlen);
    p->checked += b.n;
    free(b.v);
    return r < 0 ? r : n;
}

/* One batch of files deleted since the copy began. Returns rows done (0: step over). */
static int narrow_deletes_batch(const struct narrow_ctx *ctx, struct narrow_progress *p, char *err,
                                size_t errlen)
{
    char cid[24], after[24], (*urls)[NARROW_URL_MAX] = NULL;
    const char *params[] = {cid, after};
    struct http_req *reqs = NULL;
    PGresult *res;
    int n, r = 0;
    size_t k = 0;

    if (p->after_id == 0) { /* the first job recorded since the copy began (ids only grow) */
        const char *since[] = {ctx->since};

        r = db_query_int64(ctx->job->ctx->db,
                           "SELECT COALESCE(min(id), 1) - 1 FROM jobs WHERE created_at >= "
                           "$1::timestamptz - interval '" NARROW_MARGIN "'",
                           1, since, &p->after_id);
        if (r < 0) {
            snprintf(err, errlen, "database: %s", db_error(ctx->job->ctx->db));
            return -EIO;
        }
        if (p->after_id == 0)
            p->after_id = -1; /* (0 means "not started") */
    }
    snprintf(cid, sizeof(cid), "%" PRId64, ctx->cluster_id);
    snprintf(after, sizeof(after), "%" PRId64, p->after_id);
    /* every delete_files job names a dead file (internal names are never reused); the
     * NOT EXISTS only guards against a payload naming a live one */
    res = db_exec(ctx->job->ctx->db,
                  "SELECT j.id, j.payload ->> 'internal_name' FROM jobs j"
                  " WHERE j.id > $2::bigint AND j.kind = 'delete_files'"
                  " AND j.payload ->> 'cluster_id' = $1 AND NOT EXISTS (SELECT 1 FROM objects o"
                  " WHERE o.internal_name = j.payload ->> 'internal_name')"
                  " ORDER BY j.id LIMIT 256",
                  2, params);
    if (!res) {
        snprintf(err, errlen, "database: %s", db_error(ctx->job->ctx->db));
        return -EIO;
    }
    n = PQntuples(res);
    urls = calloc((size_t) n + 1, sizeof(*urls));
    reqs = calloc((size_t) n + 1, sizeof(*reqs));
    if (!urls || !reqs) {
        r = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const char *name = PQgetvalue(res, i, 1);

        if (PQgetisnull(res, i, 1) || !blob_name_valid(name, strlen(name)) ||
            storage_url(ctx->target, name, urls[k], NARROW_URL_MAX) < 0)
            continue;
        reqs[k] = (struct http_req){
            .method = HTTP_DELETE, .url = urls[k], .timeout_ms = NARROW_HTTP_TIMEOUT_MS};
        k++;
    }
    for (size_t start = 0; start < k; start += NARROW_PAR) {
        size_t m = k - start < NARROW_PAR ? k - start : NARROW_PAR;

        if (http_multi_run(reqs + start, m, NARROW_HTTP_TIMEOUT_MS + 1000) < 0) {
            r = -ENOMEM;
            snprintf(err, errlen, "cannot start DELETE requests");
            goto out;
        }
        r = job_heartbeat(ctx->job);
        if (r < 0) {
            snprintf(err, errlen, "stopped");
            goto out;
        }
    }
    for (size_t i = 0; i < k; i++) {
        long st = reqs[i].info.status;

        if (reqs[i].err) {
            r = -EIO;
            snprintf(err, errlen, "DELETE %s: %s", urls[i], reqs[i].errmsg);
            goto out;
        }
        if (http_status_ok(st))
            p->deleted++;
        else if (st != 404) {
            r = -EIO;
            snprintf(err, errlen, "DELETE %s: HTTP %ld", urls[i], st);
            goto out;
        }
    }
    if (n > 0)
        p->after_id = strtoll(PQgetvalue(res, n - 1, 0), NULL, 10);
out:
    PQclear(res);
    free(urls);
    free(reqs);
    return r < 0 ? r : n;
}

int narrow_recover(const struct narrow_ctx *ctx, struct narrow_progress *p, char *err,
                   size_t errlen)
{
    int n, r;

    while (p->step != NARROW_DONE) {
        r = job_heartbeat(ctx->job);
        if (r < 0) {
            snprintf(err, errlen, "stopped");
            return r;
        }
        if (p->step == NARROW_OBJECTS)
            n = narrow_objects_batch(ctx, p, err, errlen);
        else
            n = narrow_deletes_batch(ctx, p, err, errlen);
        if (n < 0)
            return n;
        if (n == 0) {
            p->step = p->step == NARROW_OBJECTS ? NARROW_DELETES : NARROW_DONE;
            p->after_id = 0;
            p->after_ts[0] = '\0';
        }
        r = ctx->save(ctx->save_arg, p);
        if (r < 0) {
            snprintf(err, errlen, "cannot save the progress: %s", strerror(-r));
            return r;
        }
    }
    return 0;
}
