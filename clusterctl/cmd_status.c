/* clusterctl/cmd_status.c — `clusterctl status [--json]`: clusters with their effective modes,
 * storages with reachability and disk usage (every /_stats fetched in parallel), job counts. */
#include "buf.h"
#include "ctl.h"
#include "db.h"
#include "http_client.h"
#include "modes.h"
#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATS_TIMEOUT_MS 2000u /* per storaged */
#define STATS_CONNECT_TIMEOUT_MS 1000u
#define STATS_OVERALL_TIMEOUT_MS 3000u /* for all of them together */
#define STATS_BODY_MAX 65536

struct st_storage {
    const char *name, *mode, *uri; /* borrowed from the PGresult */
    size_t cluster;                /* index into the clusters */
    char url[300];
    struct buf body;
    bool reachable;
    uint64_t used, free, files;
    char problem[48]; /* why not reachable, for the human table */
};

struct st_cluster {
    const char *name, *forced; /* forced: NULL when not forced */
    int64_t id;
    uint64_t objects, bytes;
    size_t nstorages;
    enum cluster_mode mode; /* effective */
};

struct status {
    PGresult *cres, *sres;
    struct st_cluster *clusters;
    size_t nclusters;
    struct st_storage *storages;
    size_t nstorages;
    int64_t pending, running, failed;
};

static uint64_t st_u64(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoull(PQgetvalue(res, row, col), NULL, 10);
}

/* Reads everything from one consistent snapshot. Returns 0 or -1 (message printed). */
static int status_load(struct db *db, struct status *st)
{
    PGresult *jres = NULL;

    if (db_begin_with(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") < 0)
        goto fail;
    st->cres = db_exec(db,
                       "SELECT c.id, c.name, c.forced_mode, coalesce(o.n, 0), coalesce(o.bytes, 0)"
                       " FROM clusters c LEFT JOIN"
                       " (SELECT cluster_id, count(*) AS n, sum(size) AS bytes FROM objects"
                       "  GROUP BY cluster_id) o ON o.cluster_id = c.id"
                       " ORDER BY c.name",
                       0, NULL);
    if (!st->cres)
        goto fail;
    st->sres = db_exec(db,
                       "SELECT s.name, s.mode, s.uri, s.cluster_id FROM storages s"
                       " JOIN clusters c ON c.id = s.cluster_id ORDER BY c.name, s.name",
                       0, NULL);
    if (!st->sres)
        goto fail;
    jres = db_exec(db,
                   "SELECT count(*) FILTER (WHERE state = 'pending'),"
                   " count(*) FILTER (WHERE state = 'running'),"
                   " count(*) FILTER (WHERE state = 'failed')"
                   " FROM jobs WHERE state IN ('pending', 'running', 'failed')",
                   0, NULL);
    if (!jres || db_commit(db) < 0)
        goto fail;
    st->pending = (int64_t) st_u64(jres, 0, 0);
    st->running = (int64_t) st_u64(jres, 0, 1);
    st->failed = (int64_t) st_u64(jres, 0, 2);
    PQclear(jres);
    return 0;
fail:
    if (strcmp(db_sqlstate(db), "42P01") == 0)
        ctl_err("cannot read the status: %s (run `clusterctl migrate` first)", db_error(db));
    else
        ctl_err("cannot read the status: %s", db_error(db));
    PQclear(jres);
    db_rollback(db);
    return -1;
}

/* Builds the cluster and storage arrays and each cluster's effective mode. */
static int status_build(struct status *st)
{
    enum storage_mode *members = NULL;

    st->nclusters = (size_t) PQntuples(st->cres);
    st->nstorages = (size_t) PQntuples(st->sres);
    st->clusters = calloc(st->nclusters + 1, sizeof(*st->clusters));
    st->storages = calloc(st->nstorages + 1, sizeof(*st->storages));
    members = calloc(st->nstorages + 1, sizeof(*members));
    if (!st->clusters || !st->storages || !members) {
        free(members);
        return -ENOMEM;
    }
    for (size_t i = 0; i < st->nclusters; i++) {
        struct st_cluster *c = &st->clusters[i];

        c->id = (int64_t) st_u64(st->cres, (int) i, 0);
        c->name = PQgetvalue(st->cres, (int) i, 1);
        c->forced = PQgetisnull(st->cres, (int) i, 2) ? NULL : PQgetvalue(st->cres, (int) i, 2);
        c->objects = st_u64(st->cres, (int) i, 3);
        c->bytes = st_u64(st->cres, (int) i, 4);
    }
    for (size_t i = 0; i < st->nstorages; i++) {
        struct st_storage *s = &st->storages[i];
        int64_t cid = (int64_t) st_u64(st->sres, (int) i, 3);

        s->name = PQgetvalue(st->sres, (int) i, 0);
        s->mode = PQgetvalue(st->sres, (int) i, 1);
        s->uri = PQgetvalue(st->sres, (int) i, 2);
        for (s->cluster = 0; s->cluster < st->nclusters; s->cluster++)
            if (st->clusters[s->cluster].id == cid)
                break;
        buf_init(&s->body, STATS_BODY_MAX);
    }
    for (size_t i = 0; i < st->nclusters; i++) {
        struct st_cluster *c = &st->clusters[i];
        enum cluster_mode forced = CMODE_RW;
        size_t n = 0;

        if (c->forced && cluster_mode_parse(c->forced, &forced) < 0)
            forced = CMODE_DOWN; /* unknown forced mode: trust nothing */
        for (size_t j = 0; j < st->nstorages; j++) {
            enum storage_mode m;

            if (st->storages[j].cluster != i)
                continue;
            members[n++] = storage_mode_parse(st->storages[j].mode, &m) == 0 ? m : SMODE_DOWN;
        }
        c->nstorages = n;
        c->mode = modes_cluster_effective(forced, members, n);
    }
    free(members);
    return 0;
}

/* GET /_stats of every storage at once. */
static int status_fetch_stats(struct status *st)
{
    struct http_req *reqs = calloc(st->nstorages + 1, sizeof(*reqs));

    if (!reqs)
        return -ENOMEM;
    for (size_t i = 0; i < st->nstorages; i++) {
        struct st_storage *s = &st->storages[i];

        snprintf(s->url, sizeof(s->url), "%s/_stats", s->uri);
        reqs[i].method = HTTP_GET;
        reqs[i].url = s->url;
        reqs[i].timeout_ms = STATS_TIMEOUT_MS;
        reqs[i].connect_timeout_ms = STATS_CONNECT_TIMEOUT_MS;
        reqs[i].resp.kind = HTTP_SINK_BUF;
        reqs[i].resp.buf = &s->body;
    }
    (void) http_multi_run(reqs, st->nstorages, STATS_OVERALL_TIMEOUT_MS);
    for (size_t i = 0; i < st->nstorages; i++) {
        struct st_storage *s = &st->storages[i];
        const char *b = s->body.ptr ? s->body.ptr : "";

        if (reqs[i].err == -ETIMEDOUT)
            snprintf(s->problem, sizeof(s->problem), "timeout");
        else if (reqs[i].err == -ECONNREFUSED)
            snprintf(s->problem, sizeof(s->problem), "refused");
        else if (reqs[i].err < 0)
            snprintf(s->problem, sizeof(s->problem), "error");
        else if (reqs[i].info.status != 200)
            snprintf(s->problem, sizeof(s->problem), "HTTP %ld", reqs[i].info.status);
        else if (out_json_get_u64(b, s->body.len, "bytes_used", &s->used) < 0 ||
                 out_json_get_u64(b, s->body.len, "bytes_free", &s->free) < 0 ||
                 out_json_get_u64(b, s->body.len, "files", &s->files) < 0)
            snprintf(s->problem, sizeof(s->problem), "bad /_stats");
        else
            s->reachable = true;
    }
    free(reqs);
    return 0;
}

static int status_print_json(const struct status *st)
{
    struct out_json j;
    struct buf b;
    int r;

    buf_init(&b, (size_t) 1 << 30);
    out_json_begin(&j, &b);
    out_json_obj_open(&j, NULL);
    out_json_arr_open(&j, "clusters");
    for (size_t i = 0; i < st->nclusters; i++) {
        const struct st_cluster *c = &st->clusters[i];

        out_json_obj_open(&j, NULL);
        out_json_str(&j, "name", c->name);
        out_json_str(&j, "mode", cluster_mode_name(c->mode));
        out_json_str(&j, "forced_mode", c->forced);
        out_json_uint(&j, "objects", c->objects);
        out_json_uint(&j, "bytes", c->bytes);
        out_json_arr_open(&j, "storages");
        for (size_t k = 0; k < st->nstorages; k++) {
            const struct st_storage *s = &st->storages[k];

            if (s->cluster != i)
                continue;
            out_json_obj_open(&j, NULL);
            out_json_str(&j, "name", s->name);
            out_json_str(&j, "mode", s->mode);
            out_json_str(&j, "uri", s->uri);
            out_json_bool(&j, "reachable", s->reachable);
            /* Unknown when unreachable: null, never a made-up 0. */
            if (s->reachable) {
                out_json_uint(&j, "bytes_used", s->used);
                out_json_uint(&j, "bytes_free", s->free);
                out_json_uint(&j, "files", s->files);
            } else {
                out_json_null(&j, "bytes_used");
                out_json_null(&j, "bytes_free");
                out_json_null(&j, "files");
            }
            out_json_obj_close(&j);
        }
        out_json_arr_close(&j);
        out_json_obj_close(&j);
    }
    out_json_arr_close(&j);
    out_json_obj_open(&j, "jobs");
    out_json_int(&j, "pending", st->pending);
    out_json_int(&j, "running", st->running);
    out_json_int(&j, "failed", st->failed);
    out_json_obj_close(&j);
    out_json_obj_close(&j);
    r = out_json_end(&j);
    if (r == 0)
        printf("%s\n", b.ptr);
    buf_release(&b);
    return r;
}

static int status_print_clusters(const struct status *st)
{
    static const char *const head[] = {"CLUSTER", "MODE", "FORCED", "STORAGES", "OBJECTS", "BYTES"};
    static const enum out_align align[] = {OUT_LEFT,  OUT_LEFT,  OUT_LEFT,
                                           OUT_RIGHT, OUT_RIGHT, OUT_RIGHT};
    struct out_table *t = out_table_new(6, head, align);
    int r = t ? 0 : -ENOMEM;

    for (size_t i = 0; r == 0 && i < st->nclusters; i++) {
        const struct st_cluster *c = &st->clusters[i];
        char n[24], objects[24], bytes[24];

        snprintf(n, sizeof(n), "%zu", c->nstorages);
        snprintf(objects, sizeof(objects), "%" PRIu64, c->objects);
        out_bytes(c->bytes, bytes, sizeof(bytes));
        r = out_table_add(
            t, (const char *[]){c->name, cluster_mode_name(c->mode), c->forced, n, objects, bytes});
    }
    if (r == 0)
        r = out_table_print(t, stdout);
    out_table_free(t);
    return r;
}

static int status_print_storages(const struct status *st)
{
    static const char *const head[] = {"STORAGE",   "CLUSTER", "MODE", "URI",
                                       "REACHABLE", "USED",    "FREE", "FILES"};
    static const enum out_align align[] = {OUT_LEFT, OUT_LEFT,  OUT_LEFT,  OUT_LEFT,
                                           OUT_LEFT, OUT_RIGHT, OUT_RIGHT, OUT_RIGHT};
    struct out_table *t = out_table_new(8, head, align);
    int r = t ? 0 : -ENOMEM;

    for (size_t i = 0; r == 0 && i < st->nstorages; i++) {
        const struct st_storage *s = &st->storages[i];
        char reach[64], used[24], free_[24], files[24];
        const char *cluster = s->cluster < st->nclusters ? st->clusters[s->cluster].name : NULL;

        if (s->reachable) {
            snprintf(reach, sizeof(reach), "yes");
            out_bytes(s->used, used, sizeof(used));
            out_bytes(s->free, free_, sizeof(free_));
            snprintf(files, sizeof(files), "%" PRIu64, s->files);
        } else {
            snprintf(reach, sizeof(reach), "no (%s)", s->problem);
        }
        r = out_table_add(t,
                          (const char *[]){s->name, cluster, s->mode, s->uri, reach,
                                           s->reachable ? used : NULL, s->reachable ? free_ : NULL,
                                           s->reachable ? files : NULL});
    }
    if (r == 0)
        r = out_table_print(t, stdout);
    out_table_free(t);
    return r;
}

static int status_print_human(const struct status *st)
{
    int r;

    if (st->nclusters == 0) {
        printf("no clusters yet (add one with `clusterctl cluster add NAME`)\n");
    } else {
        r = status_print_clusters(st);
        if (r < 0)
            return r;
        printf("\n");
        if (st->nstorages == 0)
            printf("no storages yet (add them with `clusterctl storage add`)\n");
        else if ((r = status_print_storages(st)) < 0)
            return r;
    }
    printf("\njobs: %" PRId64 " pending, %" PRId64 " running, %" PRId64 " failed\n", st->pending,
           st->running, st->failed);
    return 0;
}

static void status_release(struct status *st)
{
    for (size_t i = 0; st->storages && i < st->nstorages; i++)
        buf_release(&st->storages[i].body);
    free(st->storages);
    free(st->clusters);
    PQclear(st->cres);
    PQclear(st->sres);
}

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
    bool json = false;
    const struct ctl_opt opts[] = {
        {"json", false, NULL, &json},
        {0},
    };
    struct status st = {0};
    struct db *db;
    int r;

    r = ctl_parse(ctl, argc, argv, opts, NULL, 0, 0, NULL);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    r = CTL_FAILED;
    if (status_load(db, &st) < 0)
        goto out;
    if (status_build(&st) < 0 || status_fetch_stats(&st) < 0) {
        ctl_err("out of memory");
        goto out;
    }
    if ((json ? status_print_json(&st) : status_print_human(&st)) < 0) {
        ctl_err("cannot format the status");
        goto out;
    }
    r = CTL_OK;
out:
    status_release(&st);
    return r;
}

const struct ctl_cmd ctl_cmd_status = {
    .name = "status",
    .fn = cmd_status,
    .synopsis = "[--json]",
    .summary = "clusters, storages, modes, disk usage, objects and the job queue",
    .help = "A cluster's MODE is its effective mode (rw only with 3+ rw storages, every non-spare\n"
            "member rw, and not forced lower); FORCED is the mode an operator forced it to.\n"
            "Disk usage comes from each storaged's /_stats, fetched in parallel; a storaged that\n"
            "does not answer within 2 s is shown as not reachable.\n\n"
            "options:\n"
            "  --json   one JSON object, for scripts\n",
};
