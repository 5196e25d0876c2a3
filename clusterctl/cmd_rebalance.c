/* clusterctl/cmd_rebalance.c — `clusterctl rebalance`: plans moves from fuller clusters to
 * emptier ones (capacity from every storaged's /_stats), prints the plan (--dry-run) or records
 * it with its rebalance job, follows the progress (--wait), and pauses, resumes or cancels it. */
#include "buf.h"
#include "config.h"
#include "ctl.h"
#include "db.h"
#include "http_client.h"
#include "jobs.h"
#include "kv.h"
#include "modes.h"
#include "output.h"
#include "progress.h"
#include "rebalance_plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RB_STATS_TIMEOUT_MS 3000u
#define RB_STATS_BODY_MAX 4096
#define RB_WALK_BATCH "5000"
#define RB_POLL_MS 1000
#define RB_DEFAULT_TOLERANCE 5.0

/* ---- what the clusters hold and can hold ----------------------------------------------- */

struct rb_cl {
    int64_t id;
    char name[64];
    enum cluster_mode mode; /* effective */
    uint64_t objects, bytes;
    uint64_t capacity, free;
    bool stats_ok;
    char problem[160]; /* why it does not take part, or "" */
};

struct rb_st {
    size_t cl; /* index of its cluster */
    char name[64];
    enum storage_mode mode;
    char url[300];
    struct buf body;
    bool ok;
    uint64_t total, free;
};

struct rb_world {
    struct rb_cl *c;
    size_t nc;
    struct rb_st *s;
    size_t ns;
    struct rbp_cluster *pc; /* parallel to c */
};

struct rb_opts {
    const char *window;
    uint64_t rate;
    double tolerance;
    bool json;
};

static void rb_world_release(struct rb_world *w)
{
    for (size_t i = 0; i < w->ns; i++)
        buf_release(&w->s[i].body);
    free(w->c);
    free(w->s);
    free(w->pc);
    memset(w, 0, sizeof(*w));
}

static int rb_load_clusters(struct db *db, struct rb_world *w)
{
    PGresult *res;

    res = db_exec(db,
                  "SELECT c.id, c.name, coalesce(c.forced_mode, 'rw'), coalesce(o.n, 0), "
                  "  coalesce(o.bytes, 0) FROM clusters c LEFT JOIN "
                  "  (SELECT cluster_id, count(*) AS n, sum(size) AS bytes FROM objects "
                  "   GROUP BY cluster_id) o ON o.cluster_id = c.id ORDER BY c.name",
                  0, NULL);
    if (!res)
        return -EIO;
    w->nc = (size_t) PQntuples(res);
    w->c = calloc(w->nc + 1, sizeof(*w->c));
    w->pc = calloc(w->nc + 1, sizeof(*w->pc));
    if (!w->c || !w->pc) {
        PQclear(res);
        return -ENOMEM;
    }
    for (size_t i = 0; i < w->nc; i++) {
        struct rb_cl *c = &w->c[i];
        enum cluster_mode forced;

        c->id = strtoll(PQgetvalue(res, (int) i, 0), NULL, 10);
        snprintf(c->name, sizeof(c->name), "%s", PQgetvalue(res, (int) i, 1));
        c->mode =
            cluster_mode_parse(PQgetvalue(res, (int) i, 2), &forced) == 0 ? forced : CMODE_DOWN;
        c->objects = strtoull(PQgetvalue(res, (int) i, 3), NULL, 10);
        c->bytes = strtoull(PQgetvalue(res, (int) i, 4), NULL, 10);
    }
    PQclear(res);
    return 0;
}

static int rb_load_storages(struct db *db, struct rb_world *w)
{
    PGresult *res;

    res = db_exec(db, "SELECT cluster_id, name, uri, mode FROM storages ORDER BY name", 0, NULL);
    if (!res)
        return -EIO;
    w->ns = (size_t) PQntuples(res);
    w->s = calloc(w->ns + 1, sizeof(*w->s));
    if (!w->s) {
        PQclear(res);
        return -ENOMEM;
    }
    for (size_t i = 0; i < w->ns; i++) {
        struct rb_st *s = &w->s[i];
        int64_t cid = strtoll(PQgetvalue(res, (int) i, 0), NULL, 10);
        const char *uri = PQgetvalue(res, (int) i, 2);
        size_t ulen = strlen(uri);

        for (s->cl = 0; s->cl < w->nc && w->c[s->cl].id != cid; s->cl++)
            ;
        snprintf(s->name, sizeof(s->name), "%s", PQgetvalue(res, (int) i, 1));
        if (storage_mode_parse(PQgetvalue(res, (int) i, 3), &s->mode) < 0)
            s->mode = SMODE_DOWN;
        while (ulen > 0 && uri[ulen - 1] == '/')
            ulen--;
        snprintf(s->url, sizeof(s->url), "%.*s/_stats", (int) ulen, uri);
        buf_init(&s->body, RB_STATS_BODY_MAX);
    }
    PQclear(res);
    return 0;
}

static bool rb_holds_copies(enum storage_mode m)
{
    return m == SMODE_RW || m == SMODE_RO || m == SMODE_SPARE;
}

/* Every /_stats at once; then each cluster's effective mode, capacity and free space. */
static int rb_measure(struct rb_world *w)
{
    struct http_req *reqs = calloc(w->ns + 1, sizeof(*reqs));
    enum storage_mode *members = calloc(w->ns + 1, sizeof(*members));

    if (!reqs || !members) {
        free(reqs);
        free(members);
        return -ENOMEM;
    }
    for (size_t i = 0; i < w->ns; i++) {
        reqs[i] = (struct http_req){.method = HTTP_GET,
                                    .url = w->s[i].url,
                                    .timeout_ms = RB_STATS_TIMEOUT_MS,
                                    .connect_timeout_ms = RB_STATS_TIMEOUT_MS / 2};
        reqs[i].resp.kind = HTTP_SINK_BUF;
        reqs[i].resp.buf = &w->s[i].body;
    }
    if (w->ns > 0)
        (void) http_multi_run(reqs, w->ns, RB_STATS_TIMEOUT_MS + 1000);
    for (size_t i = 0; i < w->ns; i++) {
        struct rb_st *s = &w->s[i];
        const char *b = s->body.ptr ? s->body.ptr : "";

        s->ok = reqs[i].err == 0 && reqs[i].info.status == 200 &&
                out_json_get_u64(b, s->body.len, "bytes_total", &s->total) == 0 &&
                out_json_get_u64(b, s->body.len, "bytes_free", &s->free) == 0;
    }
    for (size_t k = 0; k < w->nc; k++) {
        struct rb_cl *c = &w->c[k];
        size_t n = 0;
        bool first = true;

        c->stats_ok = true;
        for (size_t i = 0; i < w->ns; i++) {
            const struct rb_st *s = &w->s[i];

            if (s->cl != k)
                continue;
            members[n++] = s->mode;
            if (!rb_holds_copies(s->mode))
                continue;
            if (!s->ok) {
                c->stats_ok = false;
                snprintf(c->problem, sizeof(c->problem), "no /_stats from %s", s->name);
                continue;
            }
            if (first || s->total < c->capacity)
                c->capacity = s->total;
            if (s->mode != SMODE_RO && (first || s->free < c->free))
                c->free = s->free;
            first = false;
        }
        c->mode = modes_cluster_effective(c->mode, members, n);
        if (c->mode == CMODE_DOWN)
            snprintf(c->problem, sizeof(c->problem), "down");
        else if (c->stats_ok && c->capacity == 0)
            snprintf(c->problem, sizeof(c->problem), "no storage holding copies");
        w->pc[k].counted = c->mode != CMODE_DOWN && c->stats_ok && c->capacity > 0;
        w->pc[k].can_receive = w->pc[k].counted && c->mode == CMODE_RW;
        w->pc[k].bytes = c->bytes;
        w->pc[k].capacity = c->capacity;
        w->pc[k].free = c->free;
    }
    free(reqs);
    free(members);
    return 0;
}

/* ---- the plan: moves with the objects they will take ---------------------------------- */

struct rb_planned {
    size_t src, dst;
    uint64_t target;         /* bytes the plan asks for */
    uint64_t objects, bytes; /* what the job will take, walking the source as it does */
};

/* Walks the source's live objects in the job's order ((updated_at, id), oldest first) from
 * *cursor on, taking objects while fewer than target bytes were taken. */
static int rb_walk(struct db *db, int64_t cluster_id, char *cursor_ts, size_t tslen,
                   int64_t *cursor_id, uint64_t target, uint64_t *ret_objects, uint64_t *ret_bytes)
{
    char cid[24], aid[24];
    const char *params[] = {cid, cursor_ts, aid};
    uint64_t objects = 0, bytes = 0;
    int n;

    snprintf(cid, sizeof(cid), "%" PRId64, cluster_id);
    while (bytes < target) {
        PGresult *res;

        snprintf(aid, sizeof(aid), "%" PRId64, *cursor_id);
        res =
            db_exec(db,
                    "SELECT o.size, o.updated_at::text, o.id FROM objects o "
                    "WHERE o.cluster_id = $1::bigint AND o.updated_at >= $2::timestamptz "
                    "  AND (o.updated_at > $2::timestamptz OR o.id > $3::bigint) AND EXISTS "
                    "  (SELECT 1 FROM buckets b WHERE b.id = o.bucket_id AND b.deleted_at IS NULL) "
                    "ORDER BY o.updated_at, o.id LIMIT " RB_WALK_BATCH,
                    3, params);
        if (!res)
            return -EIO;
        n = PQntuples(res);
        for (int i = 0; i < n && bytes < target; i++) {
            bytes += strtoull(PQgetvalue(res, i, 0), NULL, 10);
            objects++;
            snprintf(cursor_ts, tslen, "%s", PQgetvalue(res, i, 1));
            *cursor_id = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        }
        PQclear(res);
        if (n == 0)
            break;
    }
    *ret_objects = objects;
    *ret_bytes = bytes;
    return 0;
}

static int rb_plan_objects(struct db *db, const struct rb_world *w, const struct rbp_plan *plan,
                           struct rb_planned *out)
{
    for (size_t i = 0; i < plan->n; i++) {
        out[i] =
            (struct rb_planned){plan->moves[i].src, plan->moves[i].dst, plan->moves[i].bytes, 0, 0};
    }
    /* moves from one source continue where the previous one stopped, as the job does */
    for (size_t s = 0; s < w->nc; s++) {
        char ts[64] = "-infinity";
        int64_t id = 0;

        for (size_t i = 0; i < plan->n; i++) {
            if (out[i].src == s && rb_walk(db, w->c[s].id, ts, sizeof(ts), &id, out[i].target,
                                           &out[i].objects, &out[i].bytes) < 0)
                return -EIO;
        }
    }
    return 0;
}

/* ---- printing the plan ------------------------------------------------------------------ */

static void rb_pct(double v, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.1f%%", v);
}

static int rb_print_plan_human(const struct rb_world *w, const struct rbp_plan *plan,
                               const struct rb_planned *mv, const struct rb_opts *o)
{
    static const char *const ch[] = {"cluster", "mode",   "capacity", "bytes",
                                     "share",   "target", "note"};
    static const enum out_align ca[] = {OUT_LEFT,  OUT_LEFT,  OUT_RIGHT, OUT_RIGHT,
                                        OUT_RIGHT, OUT_RIGHT, OUT_LEFT};
    static const char *const mh[] = {"from", "to", "objects", "bytes"};
    static const enum out_align ma[] = {OUT_LEFT, OUT_LEFT, OUT_RIGHT, OUT_RIGHT};
    struct out_table *ct = out_table_new(7, ch, ca), *mt = out_table_new(4, mh, ma);
    uint64_t objects = 0, bytes = 0;
    char tb[32];
    int r = -ENOMEM;

    if (!ct || !mt)
        goto out;
    for (size_t i = 0; i < w->nc; i++) {
        const struct rbp_cluster *p = &w->pc[i];
        char cap[32], b[32], share[16], target[16], note[200];

        out_bytes(w->c[i].capacity, cap, sizeof(cap));
        out_bytes(w->c[i].bytes, b, sizeof(b));
        rb_pct(p->share_pct, share, sizeof(share));
        rb_pct(p->target_pct, target, sizeof(target));
        if (!p->counted)
            snprintf(note, sizeof(note), "left out: %s", w->c[i].problem);
        else if (!p->can_receive)
            snprintf(note, sizeof(note), "%s: gives, never receives",
                     cluster_mode_name(w->c[i].mode));
        else
            snprintf(note, sizeof(note), "%s", p->outside ? "outside the tolerance" : "");
        {
            const char *cells[] = {w->c[i].name,
                                   cluster_mode_name(w->c[i].mode),
                                   p->counted ? cap : NULL,
                                   b,
                                   p->counted ? share : NULL,
                                   p->counted ? target : NULL,
                                   note};
            if (out_table_add(ct, cells) < 0)
                goto out;
        }
    }
    for (size_t i = 0; i < plan->n; i++) {
        char n[24], b[32];
        const char *cells[] = {w->c[mv[i].src].name, w->c[mv[i].dst].name, n, b};

        snprintf(n, sizeof(n), "%" PRIu64, mv[i].objects);
        out_bytes(mv[i].bytes, b, sizeof(b));
        if (out_table_add(mt, cells) < 0)
            goto out;
        objects += mv[i].objects;
        bytes += mv[i].bytes;
    }
    printf("clusters (tolerance %.1f percentage points of share):\n", o->tolerance);
    out_table_print(ct, stdout);
    if (plan->balanced || plan->n == 0) {
        printf("\n%s: nothing to move\n",
               plan->balanced ? "every cluster is within the tolerance"
                              : "no cluster can receive (none is rw with room to spare)");
        r = 0;
        goto out;
    }
    out_bytes(bytes, tb, sizeof(tb));
    printf("\nmoves (window %s, %s):\n", o->window,
           o->rate ? "throttled by --max-bytes-per-sec" : "throttled by repaird only");
    out_table_print(mt, stdout);
    printf("total: %" PRIu64 " objects, %s\n", objects, tb);
    r = 0;
out:
    out_table_free(ct);
    out_table_free(mt);
    return r;
}

static int rb_print_plan_json(const struct rb_world *w, const struct rbp_plan *plan,
                              const struct rb_planned *mv, const struct rb_opts *o, int64_t id)
{
    struct out_json j;
    struct buf b;
    uint64_t objects = 0, bytes = 0;
    int r;

    buf_init(&b, 1 << 24);
    out_json_begin(&j, &b);
    out_json_obj_open(&j, NULL);
    if (id > 0)
        out_json_int(&j, "rebalance_id", id);
    else
        out_json_null(&j, "rebalance_id");
    out_json_bool(&j, "balanced", plan->balanced);
    out_json_str(&j, "window", o->window);
    out_json_uint(&j, "max_bytes_per_sec", o->rate);
    out_json_uint(&j, "tolerance_permille", (uint64_t) (o->tolerance * 10 + 0.5));
    out_json_arr_open(&j, "clusters");
    for (size_t i = 0; i < w->nc; i++) {
        const struct rbp_cluster *p = &w->pc[i];

        out_json_obj_open(&j, NULL);
        out_json_str(&j, "name", w->c[i].name);
        out_json_str(&j, "mode", cluster_mode_name(w->c[i].mode));
        out_json_bool(&j, "counted", p->counted);
        out_json_bool(&j, "can_receive", p->can_receive);
        out_json_uint(&j, "objects", w->c[i].objects);
        out_json_uint(&j, "bytes", w->c[i].bytes);
        out_json_uint(&j, "capacity", w->c[i].capacity);
        out_json_uint(&j, "target_bytes", p->target);
        out_json_uint(&j, "share_permille", (uint64_t) (p->share_pct * 10 + 0.5));
        out_json_uint(&j, "target_permille", (uint64_t) (p->target_pct * 10 + 0.5));
        out_json_bool(&j, "outside", p->outside);
        out_json_str(&j, "problem", w->c[i].problem[0] ? w->c[i].problem : NULL);
        out_json_obj_close(&j);
    }
    out_json_arr_close(&j);
    out_json_arr_open(&j, "moves");
    for (size_t i = 0; i < plan->n; i++) {
        out_json_obj_open(&j, NULL);
        out_json_str(&j, "from", w->c[mv[i].src].name);
        out_json_str(&j, "to", w->c[mv[i].dst].name);
        out_json_uint(&j, "objects", mv[i].objects);
        out_json_uint(&j, "bytes", mv[i].bytes);
        out_json_obj_close(&j);
        objects += mv[i].objects;
        bytes += mv[i].bytes;
    }
    out_json_arr_close(&j);
    out_json_uint(&j, "total_objects", objects);
    out_json_uint(&j, "total_bytes", bytes);
    out_json_obj_close(&j);
    r = out_json_end(&j);
    if (r == 0)
        printf("%s\n", b.ptr);
    buf_release(&b);
    return r;
}

/* ---- recording a run ---------------------------------------------------------------------- */

static int rb_active_id(struct db *db, int64_t *ret_id)
{
    return db_query_int64(db,
                          "SELECT id FROM rebalances WHERE state IN ('running', 'paused') "
                          "ORDER BY id DESC LIMIT 1",
                          0, NULL, ret_id);
}

/* Inserts the run, its moves and its job in one transaction. Returns 0 (ids set), -EEXIST
 * (another run is active), -EIO. */
static int rb_record(struct ctl *ctl, struct db *db, const struct rb_world *w,
                     const struct rb_planned *mv, size_t n, const struct rb_opts *o,
                     int64_t *ret_id, int64_t *ret_job)
{
    char rate[24], delay[24], tol[32], ids[24], payload[64];
    const char *prun[] = {o->window, rate, delay, tol, ctl_actor()};
    int r;

    snprintf(rate, sizeof(rate), "%" PRIu64, o->rate);
    snprintf(delay, sizeof(delay), "%" PRIu64, ctl->cfg->repaird.rebalance_delete_delay_ms);
    snprintf(tol, sizeof(tol), "%.3f", o->tolerance);
    if (db_begin(db) < 0)
        return -EIO;
    r = db_query_int64(db,
                       "INSERT INTO rebalances (move_window, max_bytes_per_sec, delete_delay_ms, "
                       "  tolerance_pct, created_by) VALUES ($1, $2::bigint, $3::bigint, "
                       "  $4::numeric, $5) RETURNING id",
                       5, prun, ret_id);
    if (r < 0) {
        r = db_is_unique_violation(db) ? -EEXIST : -EIO;
        goto fail;
    }
    snprintf(ids, sizeof(ids), "%" PRId64, *ret_id);
    for (size_t i = 0; i < n; i++) {
        char src[24], dst[24], pb[24], po[24];
        const char *pm[] = {ids, src, dst, pb, po};

        snprintf(src, sizeof(src), "%" PRId64, w->c[mv[i].src].id);
        snprintf(dst, sizeof(dst), "%" PRId64, w->c[mv[i].dst].id);
        snprintf(pb, sizeof(pb), "%" PRIu64, mv[i].bytes);
        snprintf(po, sizeof(po), "%" PRIu64, mv[i].objects);
        if (mv[i].objects == 0)
            continue;
        r = db_run(db,
                   "INSERT INTO rebalance_moves (rebalance_id, src_cluster_id, dst_cluster_id, "
                   "  planned_bytes, planned_objects) VALUES ($1::bigint, $2::bigint, "
                   "  $3::bigint, $4::bigint, $5::bigint)",
                   5, pm);
        if (r < 0)
            goto fail;
    }
    snprintf(payload, sizeof(payload), "{\"rebalance_id\": %" PRId64 "}", *ret_id);
    r = jobs_insert(db, "rebalance", payload, ret_job);
    if (r == 0) {
        const char *pj[] = {ids, payload};

        snprintf(payload, sizeof(payload), "%" PRId64, *ret_job);
        r = db_run(db, "UPDATE rebalances SET job_id = $2::bigint WHERE id = $1::bigint", 2, pj);
    }
    if (r < 0)
        goto fail;
    if (db_commit(db) < 0)
        return db_is_unique_violation(db) ? -EEXIST : -EIO;
    jobs_announce(ctl_kv(ctl), *ret_job);
    return 0;
fail:
    db_rollback(db);
    return r == -EEXIST ? -EEXIST : -EIO;
}

/* ---- progress of a run -------------------------------------------------------------------- */

struct rb_status {
    int64_t id, job_id;
    char state[16], window[32], note[256], job_state[16], job_error[512];
    char created_by[64], created_at[64], finished_at[64];
    uint64_t rate;
    uint64_t planned_objects, planned_bytes, moved_objects, moved_bytes, skipped, failed;
    uint64_t moves, moves_left;
};

/* Reads run id (0: the active one, else the last one). Returns 0, -ENOENT, -EIO. */
static int rb_status_read(struct db *db, int64_t id, struct rb_status *st)
{
    char ids[24];
    const char *params[] = {ids};
    PGresult *res;

    snprintf(ids, sizeof(ids), "%" PRId64, id);
    res = db_exec(db,
                  "SELECT r.id, r.state, r.move_window, r.note, coalesce(j.state, ''), "
                  "  coalesce(j.last_error, ''), coalesce(r.job_id, 0), r.max_bytes_per_sec, "
                  "  r.created_by, to_char(r.created_at, 'YYYY-MM-DD HH24:MI:SS'), "
                  "  coalesce(to_char(r.finished_at, 'YYYY-MM-DD HH24:MI:SS'), ''), "
                  "  coalesce(sum(m.planned_objects), 0), coalesce(sum(m.planned_bytes), 0), "
                  "  coalesce(sum(m.moved_objects), 0), coalesce(sum(m.moved_bytes), 0), "
                  "  coalesce(sum(m.skipped_objects), 0), coalesce(sum(m.failed_objects), 0), "
                  "  count(m.id), count(m.id) FILTER (WHERE m.state = 'pending') "
                  "FROM rebalances r LEFT JOIN jobs j ON j.id = r.job_id "
                  "LEFT JOIN rebalance_moves m ON m.rebalance_id = r.id "
                  "WHERE ($1::bigint > 0 AND r.id = $1::bigint) OR ($1::bigint = 0 AND r.id = "
                  "  (SELECT id FROM rebalances ORDER BY state IN ('running', 'paused') DESC, "
                  "   id DESC LIMIT 1)) "
                  "GROUP BY r.id, j.id",
                  1, params);
    if (!res)
        return -EIO;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return -ENOENT;
    }
    memset(st, 0, sizeof(*st));
    st->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(st->state, sizeof(st->state), "%s", PQgetvalue(res, 0, 1));
    snprintf(st->window, sizeof(st->window), "%s", PQgetvalue(res, 0, 2));
    snprintf(st->note, sizeof(st->note), "%s", PQgetvalue(res, 0, 3));
    snprintf(st->job_state, sizeof(st->job_state), "%s", PQgetvalue(res, 0, 4));
    snprintf(st->job_error, sizeof(st->job_error), "%s", PQgetvalue(res, 0, 5));
    st->job_id = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
    st->rate = strtoull(PQgetvalue(res, 0, 7), NULL, 10);
    snprintf(st->created_by, sizeof(st->created_by), "%s", PQgetvalue(res, 0, 8));
    snprintf(st->created_at, sizeof(st->created_at), "%s", PQgetvalue(res, 0, 9));
    snprintf(st->finished_at, sizeof(st->finished_at), "%s", PQgetvalue(res, 0, 10));
    st->planned_objects = strtoull(PQgetvalue(res, 0, 11), NULL, 10);
    st->planned_bytes = strtoull(PQgetvalue(res, 0, 12), NULL, 10);
    st->moved_objects = strtoull(PQgetvalue(res, 0, 13), NULL, 10);
    st->moved_bytes = strtoull(PQgetvalue(res, 0, 14), NULL, 10);
    st->skipped = strtoull(PQgetvalue(res, 0, 15), NULL, 10);
    st->failed = strtoull(PQgetvalue(res, 0, 16), NULL, 10);
    st->moves = strtoull(PQgetvalue(res, 0, 17), NULL, 10);
    st->moves_left = strtoull(PQgetvalue(res, 0, 18), NULL, 10);
    PQclear(res);
    return 0;
}

static int rb_json_progress(const struct rb_status *st, const char *event, double rate, int64_t eta)
{
    struct out_json j;
    struct buf b;
    int r;

    buf_init(&b, 8192);
    out_json_begin(&j, &b);
    out_json_obj_open(&j, NULL);
    out_json_str(&j, "event", event);
    out_json_int(&j, "rebalance_id", st->id);
    out_json_str(&j, "state", st->state);
    out_json_str(&j, "window", st->window);
    out_json_str(&j, "note", st->note);
    out_json_int(&j, "job", st->job_id);
    out_json_str(&j, "job_state", st->job_state[0] ? st->job_state : NULL);
    out_json_str(&j, "job_error", st->job_error[0] ? st->job_error : NULL);
    out_json_uint(&j, "planned_objects", st->planned_objects);
    out_json_uint(&j, "planned_bytes", st->planned_bytes);
    out_json_uint(&j, "moved_objects", st->moved_objects);
    out_json_uint(&j, "moved_bytes", st->moved_bytes);
    out_json_uint(&j, "skipped_objects", st->skipped);
    out_json_uint(&j, "failed_objects", st->failed);
    out_json_uint(&j, "moves", st->moves);
    out_json_uint(&j, "moves_left", st->moves_left);
    out_json_uint(&j, "rate_bytes_per_sec", (uint64_t) rate);
    if (eta >= 0)
        out_json_int(&j, "eta_seconds", eta);
    else
        out_json_null(&j, "eta_seconds");
    out_json_obj_close(&j);
    r = out_json_end(&j);
    if (r == 0)
        printf("%s\n", b.ptr);
    fflush(stdout);
    buf_release(&b);
    return r;
}

/* The run's note, or what its job says while it waits. */
static const char *rb_waiting_for(const struct rb_status *st)
{
    if (strcmp(st->job_state, "pending") == 0 && st->job_error[0])
        return st->job_error;
    if (strcmp(st->note, "moving") == 0)
        return "";
    return st->note;
}

static void rb_summary(const struct rb_status *st)
{
    char b[32];

    out_bytes(st->moved_bytes, b, sizeof(b));
    printf("rebalance %" PRId64 " %s: %" PRIu64 " objects (%s) moved, %" PRIu64
           " skipped (changed meanwhile), %" PRIu64 " failed\n",
           st->id, st->state, st->moved_objects, b, st->skipped, st->failed);
}

/* Follows run id until it ends. Returns CTL_OK when it finished, CTL_FAILED otherwise. */
static int rb_follow(struct db *db, int64_t id, bool json)
{
    struct progress pg;
    struct rb_status st;
    char line[1024], label[48];
    double rate;
    int64_t eta;
    int r;

    progress_init(&pg, stdout);
    snprintf(label, sizeof(label), "rebalance %" PRId64, id);
    for (;;) {
        r = rb_status_read(db, id, &st);
        if (progress_retry(&pg, r < 0 && r != -ENOENT)) {
            progress_sleep_ms(RB_POLL_MS);
            continue;
        }
        if (r < 0) {
            progress_end(&pg);
            ctl_err("cannot read rebalance %" PRId64 ": %s", id,
                    r == -ENOENT ? "it is gone" : db_error(db));
            return CTL_FAILED;
        }
        progress_rate(&pg, st.moved_bytes, st.planned_bytes, &rate, &eta);
        if (strcmp(st.state, "running") != 0 || strcmp(st.job_state, "failed") == 0 ||
            (strcmp(st.job_state, "pending") != 0 && strcmp(st.job_state, "running") != 0))
            break;
        if (json) {
            rb_json_progress(&st, "progress", rate, eta);
        } else {
            progress_format(line, sizeof(line), label, st.moved_objects + st.skipped + st.failed,
                            st.planned_objects, st.moved_bytes, st.planned_bytes, rate, eta,
                            rb_waiting_for(&st));
            progress_show(&pg, line, false);
        }
        progress_sleep_ms(RB_POLL_MS);
    }
    progress_end(&pg);
    if (json)
        rb_json_progress(&st, strcmp(st.state, "done") == 0 ? "done" : "stopped", rate, eta);
    else
        rb_summary(&st);
    if (strcmp(st.state, "done") == 0)
        return CTL_OK;
    if (strcmp(st.job_state, "failed") == 0)
        ctl_err("rebalance %" PRId64 ": its job %" PRId64 " failed: %s (fix the cause, then "
                "`clusterctl rebalance --resume`)",
                id, st.job_id, st.job_error);
    else if (strcmp(st.state, "running") == 0)
        ctl_err("rebalance %" PRId64 ": no job drives it any more (resume it with "
                "`clusterctl rebalance --resume`)",
                id);
    else
        ctl_err("rebalance %" PRId64 " is %s", id, st.state);
    return CTL_FAILED;
}

/* ---- --status ----------------------------------------------------------------------------- */

static int rb_status_moves(struct db *db, int64_t id)
{
    static const char *const h[] = {"from",  "to",      "state",  "moved", "of",
                                    "bytes", "skipped", "failed", "note"};
    static const enum out_align a[] = {OUT_LEFT,  OUT_LEFT,  OUT_LEFT,  OUT_RIGHT, OUT_RIGHT,
                                       OUT_RIGHT, OUT_RIGHT, OUT_RIGHT, OUT_LEFT};
    char ids[24];
    const char *params[] = {ids};
    struct out_table *t = out_table_new(9, h, a);
    PGresult *res;
    int r = -ENOMEM;

    snprintf(ids, sizeof(ids), "%" PRId64, id);
    res = db_exec(db,
                  "SELECT coalesce(cs.name, '#' || m.src_cluster_id), "
                  "  coalesce(cd.name, '#' || m.dst_cluster_id), m.state, m.moved_objects, "
                  "  m.planned_objects, m.moved_bytes, m.planned_bytes, m.skipped_objects, "
                  "  m.failed_objects, m.note FROM rebalance_moves m "
                  "LEFT JOIN clusters cs ON cs.id = m.src_cluster_id "
                  "LEFT JOIN clusters cd ON cd.id = m.dst_cluster_id "
                  "WHERE m.rebalance_id = $1::bigint ORDER BY m.id",
                  1, params);
    if (!res || !t)
        goto out;
    for (int i = 0; i < PQntuples(res); i++) {
        char done[32], total[32], bytes[80];
        const char *cells[9];

        out_bytes(strtoull(PQgetvalue(res, i, 5), NULL, 10), done, sizeof(done));
        out_bytes(strtoull(PQgetvalue(res, i, 6), NULL, 10), total, sizeof(total));
        snprintf(bytes, sizeof(bytes), "%s/%s", done, total);
        for (int k = 0; k < 5; k++)
            cells[k] = PQgetvalue(res, i, k);
        cells[5] = bytes;
        cells[6] = PQgetvalue(res, i, 7);
        cells[7] = PQgetvalue(res, i, 8);
        cells[8] = PQgetvalue(res, i, 9);
        if (out_table_add(t, cells) < 0)
            goto out;
    }
    r = out_table_print(t, stdout);
out:
    PQclear(res);
    out_table_free(t);
    return r;
}

static int rb_cmd_status(struct db *db, bool wait, bool json)
{
    struct rb_status st;
    char mb[32], pb[32];
    int r = rb_status_read(db, 0, &st);

    if (r == -ENOENT) {
        if (json)
            printf("{\"rebalance_id\":null}\n");
        else
            printf("no rebalance has been run\n");
        return CTL_OK;
    }
    if (r < 0) {
        ctl_err("cannot read the rebalances: %s", db_error(db));
        return CTL_FAILED;
    }
    if (wait && (strcmp(st.state, "running") == 0))
        return rb_follow(db, st.id, json);
    if (json)
        return rb_json_progress(&st, "status", 0, -1) == 0 ? CTL_OK : CTL_FAILED;
    out_bytes(st.moved_bytes, mb, sizeof(mb));
    out_bytes(st.planned_bytes, pb, sizeof(pb));
    printf("rebalance %" PRId64 ": %s  (started %s by %s%s%s)\n", st.id, st.state, st.created_at,
           st.created_by, st.finished_at[0] ? ", ended " : "", st.finished_at);
    printf("window %s, max_bytes_per_sec %" PRIu64 "%s\n", st.window, st.rate,
           st.rate ? "" : " (repaird's only)");
    printf("moved %" PRIu64 " of %" PRIu64 " objects, %s of %s; %" PRIu64 " skipped, %" PRIu64
           " failed\n",
           st.moved_objects, st.planned_objects, mb, pb, st.skipped, st.failed);
    if (st.job_id)
        printf("job %" PRId64 ": %s%s%s\n", st.job_id, st.job_state[0] ? st.job_state : "gone",
               st.job_error[0] ? ": " : "", st.job_error);
    if (st.note[0] && strcmp(st.note, "moving") != 0)
        printf("note: %s\n", st.note);
    printf("\n");
    return rb_status_moves(db, st.id) == 0 ? CTL_OK : CTL_FAILED;
}

/* ---- --pause, --resume, --cancel ---------------------------------------------------------- */

/* A job waiting for this run (pending) is finished at once: it would only find the run
 * stopped. A running one stops by itself after its current object. */
static void rb_end_waiting_job(struct db *db, int64_t job_id)
{
    char ids[24];
    const char *params[] = {ids};

    snprintf(ids, sizeof(ids), "%" PRId64, job_id);
    (void) db_run(db,
                  "UPDATE jobs SET state = 'done', last_error = NULL, updated_at = now() "
                  "WHERE id = $1::bigint AND kind = 'rebalance' AND state = 'pending'",
                  1, params);
}

static int rb_cmd_stop(struct db *db, bool cancel)
{
    int64_t id = 0, job = 0;
    PGresult *res;

    res = db_exec(db,
                  cancel ? "UPDATE rebalances SET state = 'cancelled', finished_at = now(), "
                           "  updated_at = now() WHERE state IN ('running', 'paused') "
                           "RETURNING id, coalesce(job_id, 0)"
                         : "UPDATE rebalances SET state = 'paused', updated_at = now() "
                           "WHERE state = 'running' RETURNING id, coalesce(job_id, 0)",
                  0, NULL);
    if (!res) {
        ctl_err("cannot change the rebalance: %s", db_error(db));
        return CTL_FAILED;
    }
    if (PQntuples(res) == 1) {
        id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        job = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    if (id == 0) {
        ctl_err("refused: no rebalance is %s", cancel ? "running or paused" : "running");
        return CTL_FAILED;
    }
    rb_end_waiting_job(db, job);
    printf("rebalance %" PRId64 " %s: repaird stops it after the object it is moving%s\n", id,
           cancel ? "cancelled" : "paused",
           cancel ? "" : "; go on with `clusterctl rebalance --resume`");
    return CTL_OK;
}

/* Running again (with new settings when given) under a fresh job. */
static int rb_cmd_resume(struct ctl *ctl, struct db *db, const char *window, const char *rate,
                         int64_t *ret_id)
{
    const char *params[] = {window, rate, NULL};
    char ids[24], payload[64];
    int64_t id = 0, old_job = 0, job = 0;
    PGresult *res;

    if (db_begin(db) < 0)
        goto fail;
    res = db_exec(db,
                  "UPDATE rebalances SET state = 'running', note = '', updated_at = now(), "
                  "  move_window = coalesce($1, move_window), "
                  "  max_bytes_per_sec = coalesce($2::bigint, max_bytes_per_sec) "
                  "WHERE state IN ('running', 'paused') RETURNING id, coalesce(job_id, 0)",
                  2, params);
    if (!res)
        goto fail;
    if (PQntuples(res) == 1) {
        id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        old_job = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    if (id == 0) {
        db_rollback(db);
        ctl_err("refused: no rebalance is running or paused (start one with "
                "`clusterctl rebalance`)");
        return CTL_FAILED;
    }
    snprintf(payload, sizeof(payload), "{\"rebalance_id\": %" PRId64 "}", id);
    if (jobs_insert(db, "rebalance", payload, &job) < 0)
        goto fail;
    snprintf(ids, sizeof(ids), "%" PRId64, id);
    snprintf(payload, sizeof(payload), "%" PRId64, job);
    params[0] = ids;
    params[1] = payload;
    if (db_run(db, "UPDATE rebalances SET job_id = $2::bigint WHERE id = $1::bigint", 2, params) <
            0 ||
        db_commit(db) < 0)
        goto fail;
    rb_end_waiting_job(db, old_job);
    jobs_announce(ctl_kv(ctl), job);
    printf("rebalance %" PRId64 " resumed (job %" PRId64 ")\n", id, job);
    fflush(stdout);
    *ret_id = id;
    return CTL_OK;
fail:
    ctl_err("cannot resume the rebalance: %s", db_error(db));
    db_rollback(db);
    return CTL_FAILED;
}

/* ---- planning and starting ------------------------------------------------------------------ */

static bool rb_window_now(const char *window)
{
    unsigned start, end, t;
    time_t now = time(NULL);
    struct tm tm;

    if (parse_window(window, &start, &end) < 0)
        return false;
    localtime_r(&now, &tm);
    t = (unsigned) (tm.tm_hour * 60 + tm.tm_min);
    return start < end ? t >= start && t < end : t >= start || t < end;
}

static int rb_cmd_plan(struct ctl *ctl, struct db *db, const struct rb_opts *o, bool dry_run,
                       bool wait)
{
    struct rb_world w = {0};
    struct rbp_plan plan = {0};
    struct rb_planned *mv = NULL;
    int64_t id = 0, job = 0, active = 0;
    uint64_t total_objects = 0;
    size_t nmv = 0;
    int rc = CTL_FAILED, r;

    if (!dry_run && rb_active_id(db, &active) == 0) {
        ctl_err("refused: rebalance %" PRId64 " is active; follow it with `clusterctl rebalance "
                "--status --wait`, or stop it with --pause or --cancel",
                active);
        return CTL_FAILED;
    }
    r = rb_load_clusters(db, &w);
    if (r == 0)
        r = rb_load_storages(db, &w);
    if (r == 0)
        r = rb_measure(&w);
    if (r == 0)
        r = rbp_compute(w.pc, w.nc, o->tolerance, &plan);
    if (r == 0 && !plan.balanced && plan.n > 0) {
        mv = calloc(plan.n, sizeof(*mv));
        r = mv ? rb_plan_objects(db, &w, &plan, mv) : -ENOMEM;
        nmv = mv ? plan.n : 0;
    }
    if (r < 0) {
        ctl_err("cannot plan the rebalance: %s", r == -ENOMEM ? "out of memory" : db_error(db));
        goto out;
    }
    for (size_t i = 0; i < nmv; i++)
        total_objects += mv[i].objects;
    if (!dry_run && total_objects > 0) {
        r = rb_record(ctl, db, &w, mv, nmv, o, &id, &job);
        if (r == -EEXIST) {
            ctl_err("refused: another rebalance became active meanwhile (see `clusterctl "
                    "rebalance --status`)");
            goto out;
        }
        if (r < 0) {
            ctl_err("cannot record the rebalance: %s", db_error(db));
            goto out;
        }
    }
    r = o->json ? rb_print_plan_json(&w, &plan, mv, o, id) : rb_print_plan_human(&w, &plan, mv, o);
    if (r < 0)
        goto out;
    if (id > 0 && !o->json && rb_window_now(o->window))
        printf("rebalance %" PRId64 " started (job %" PRId64 ")\n", id, job);
    else if (id > 0 && !o->json)
        printf("rebalance %" PRId64 " started (job %" PRId64 "); the window %s is closed now: "
               "repaird moves nothing before it opens\n",
               id, job, o->window);
    fflush(stdout);
    rc = id > 0 && wait ? rb_follow(db, id, o->json) : CTL_OK;
out:
    free(mv);
    rbp_plan_release(&plan);
    rb_world_release(&w);
    return rc;
}

static int rb_parse_tolerance(const char *s, double *ret)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || (*end && strcmp(end, "%") != 0) || !(v >= 0 && v <= 100))
        return -EINVAL;
    *ret = v;
    return 0;
}

static int cmd_rebalance(struct ctl *ctl, int argc, char **argv)
{
    const char *window = NULL, *rate = NULL, *tolerance = NULL;
    bool dry_run = false, wait = false, json = false, status = false, pause = false;
    bool resume = false, cancel = false;
    const struct ctl_opt opts[] = {
        {"window", true, &window, NULL},
        {"max-bytes-per-sec", true, &rate, NULL},
        {"tolerance", true, &tolerance, NULL},
        {"dry-run", false, NULL, &dry_run},
        {"wait", false, NULL, &wait},
        {"json", false, NULL, &json},
        {"status", false, NULL, &status},
        {"pause", false, NULL, &pause},
        {"resume", false, NULL, &resume},
        {"cancel", false, NULL, &cancel},
        {0},
    };
    struct rb_opts o = {.tolerance = RB_DEFAULT_TOLERANCE};
    char rate_text[24];
    unsigned start, end;
    struct db *db;
    int64_t id = 0;
    int r = ctl_parse(ctl, argc, argv, opts, NULL, 0, 0, NULL);

    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (dry_run + status + pause + resume + cancel > 1)
        return ctl_usage_err(ctl, "--dry-run, --status, --pause, --resume and --cancel exclude "
                                  "each other");
    if (window && parse_window(window, &start, &end) < 0)
        return ctl_usage_err(ctl, "bad --window '%s' (HH:MM-HH:MM, may wrap midnight)", window);
    if (rate && parse_size(rate, &o.rate) < 0)
        return ctl_usage_err(ctl,
                             "bad --max-bytes-per-sec '%s' (a size such as 64M; 0 = only "
                             "repaird's limit)",
                             rate);
    if (tolerance && rb_parse_tolerance(tolerance, &o.tolerance) < 0)
        return ctl_usage_err(ctl, "bad --tolerance '%s' (percentage points, 0 to 100)", tolerance);
    if ((status || pause || cancel) && (window || rate || tolerance))
        return ctl_usage_err(ctl, "--window, --max-bytes-per-sec and --tolerance plan or resume "
                                  "a rebalance; they do not go with --status, --pause or "
                                  "--cancel");
    if ((pause || cancel) && wait)
        return ctl_usage_err(ctl, "--wait does not go with --pause or --cancel");
    if (resume && tolerance)
        return ctl_usage_err(ctl, "--tolerance applies to a new plan, not to --resume");
    if (!(db = ctl_db(ctl)) || !ctl_config(ctl))
        return CTL_FAILED;
    if (status)
        return rb_cmd_status(db, wait, json);
    if (pause || cancel)
        return rb_cmd_stop(db, cancel);
    if (resume) {
        if (rate)
            snprintf(rate_text, sizeof(rate_text), "%" PRIu64, o.rate);
        r = rb_cmd_resume(ctl, db, window, rate ? rate_text : NULL, &id);
        return r == CTL_OK && wait ? rb_follow(db, id, json) : r;
    }
    o.window = window ? window : ctl->cfg->repaird.rebalance_window;
    o.json = json;
    return rb_cmd_plan(ctl, db, &o, dry_run, wait);
}

const struct ctl_cmd ctl_cmd_rebalance = {
    .name = "rebalance",
    .fn = cmd_rebalance,
    .synopsis = "[--window HH:MM-HH:MM] [--max-bytes-per-sec N] [--dry-run] [--wait]",
    .summary = "move objects from fuller clusters to emptier ones, off-peak",
    .help =
        "Plans moves until each cluster's share of the stored bytes is within the tolerance of\n"
        "its share of the capacity (its smallest storage's size, from /_stats), records the\n"
        "plan and lets repaird carry it out inside the window, throttled. Every object is\n"
        "copied to the whole destination cluster, checked, and switched over atomically; reads\n"
        "never fail, and an object overwritten or deleted meanwhile is left alone.\n\n"
        "options:\n"
        "  --window HH:MM-HH:MM    when repaird may move objects, in its local time\n"
        "                          (default [repaird] rebalance_window)\n"
        "  --max-bytes-per-sec N   this rebalance's own limit (bytes read plus written), on\n"
        "                          top of [repaird] max_bytes_per_sec; 0 = that one only\n"
        "  --tolerance PCT         percentage points of share a cluster may be off (default 5)\n"
        "  --dry-run               print the plan (objects and bytes per source -> destination)\n"
        "                          and change nothing\n"
        "  --wait                  follow the progress until the rebalance ends\n"
        "  --json                  the plan as one JSON object; with --wait one per second\n"
        "  --status                the active (else the last) rebalance and its moves\n"
        "  --pause                 stop moving after the current object; keeps the progress\n"
        "  --resume                go on (with a new --window or --max-bytes-per-sec if given)\n"
        "  --cancel                stop for good\n",
};
