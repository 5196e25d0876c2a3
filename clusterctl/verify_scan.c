/* clusterctl/verify_scan.c — verify's scans: the manifests streamed line by line and checked in
 * batches against objects and open delete_files jobs, then the objects in id order with every
 * copy read (MD5) or looked at (HEAD), many requests at once, within a byte rate. */
#include "verify_scan.h"

#include "buf.h"
#include "db.h"
#include "digest.h"
#include "http_client.h"
#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define VF_MF_BATCH 500
#define VF_MF_LINE_MAX (BLOB_REL_MAX + 64)
#define VF_MF_TIMEOUT_MS (24u * 3600 * 1000) /* a manifest of millions of files takes a while */
#define VF_OBJ_BATCH 16
#define VF_REQ_TIMEOUT_MS 60000ull
#define VF_REQ_MIN_RATE (1ull << 20) /* bytes/s assumed when sizing a read's timeout */
#define VF_URL_MAX (256 + BLOB_REL_MAX + 32)

static uint64_t vf_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ---- loading --------------------------------------------------------------------------- */

int vf_load(struct db *db, const char *cluster, struct vf *v)
{
    const char *params[] = {cluster};
    char ids[24];
    const char *pid[] = {ids};
    PGresult *res;
    int n;

    res = db_exec(db, "SELECT id, name FROM clusters WHERE name = $1", 1, params);
    if (!res)
        return -EIO;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return -ENOENT;
    }
    v->cluster_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(v->cluster, sizeof(v->cluster), "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    snprintf(ids, sizeof(ids), "%" PRId64, v->cluster_id);
    res = db_exec(db,
                  "SELECT id, name, uri, mode FROM storages WHERE cluster_id = $1::bigint "
                  "ORDER BY name",
                  1, pid);
    if (!res)
        return -EIO;
    n = PQntuples(res);
    v->st = calloc((size_t) n + 1, sizeof(*v->st));
    if (!v->st) {
        PQclear(res);
        return -ENOMEM;
    }
    v->nst = (size_t) n;
    for (int i = 0; i < n; i++) {
        struct vf_storage *s = &v->st[i];
        size_t len;

        s->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        snprintf(s->name, sizeof(s->name), "%s", PQgetvalue(res, i, 1));
        snprintf(s->uri, sizeof(s->uri), "%s", PQgetvalue(res, i, 2));
        len = strlen(s->uri);
        while (len > 0 && s->uri[len - 1] == '/')
            s->uri[--len] = '\0';
        if (storage_mode_parse(PQgetvalue(res, i, 3), &s->mode) < 0)
            s->mode = SMODE_DOWN;
        s->checked = s->mode == SMODE_RW || s->mode == SMODE_RO || s->mode == SMODE_SPARE;
    }
    PQclear(res);
    res = db_exec(db,
                  "SELECT count(*), coalesce(sum(size), 0) FROM objects "
                  "WHERE cluster_id = $1::bigint",
                  1, pid);
    if (!res)
        return -EIO;
    v->objects_total = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    v->bytes_total = 0;
    if (!v->quick) {
        uint64_t sum = strtoull(PQgetvalue(res, 0, 1), NULL, 10);

        for (size_t i = 0; i < v->nst; i++)
            v->bytes_total += v->st[i].checked ? sum : 0;
    }
    PQclear(res);
    return 0;
}

void vf_release(struct vf *v)
{
    free(v->st);
    free(v->extra);
    free(v->bad);
    v->st = NULL;
    v->extra = NULL;
    v->bad = NULL;
}

static void vf_sample(struct vf *v, enum vf_kind kind, size_t storage, int64_t object_id,
                      const char *what, const char *detail)
{
    struct vf_sample *s;

    if (v->per_kind[kind] >= VF_SAMPLES_PER_KIND)
        return;
    v->per_kind[kind]++;
    s = &v->samples[v->nsamples++];
    s->kind = kind;
    s->storage = storage;
    s->object_id = object_id;
    snprintf(s->what, sizeof(s->what), "%s", what);
    snprintf(s->detail, sizeof(s->detail), "%s", detail);
}

static void vf_progress(struct vf *v, bool force)
{
    char line[512], label[96];
    double rate;
    int64_t eta;

    if (!v->progress)
        return;
    snprintf(label, sizeof(label), "verify %s", v->cluster);
    progress_rate(&v->pg, v->bytes_read, v->bytes_total, &rate, &eta);
    if (v->quick && v->objects_done > 0 && v->objects_total > v->objects_done) {
        /* no bytes to go by: estimate from the objects */
        double secs = (double) v->elapsed_ms / 1000.0;

        eta = (int64_t) (secs / (double) v->objects_done *
                         (double) (v->objects_total - v->objects_done));
    }
    progress_format(line, sizeof(line), label, v->objects_done, v->objects_total, v->bytes_read,
                    v->bytes_total, rate, eta, NULL);
    progress_show(&v->pg, line, force);
}

/* ---- classification against PostgreSQL ------------------------------------------------- */

/* "{\"a\",\"b\"}" of names[0..n) for a text[] parameter (names hold no quotes or commas). */
static int vf_text_array(char (*names)[BLOB_NAME_MAX + 1], size_t n, const bool *skip,
                         struct buf *out)
{
    int r = buf_puts(out, "{");

    for (size_t i = 0; r == 0 && i < n; i++) {
        if (skip && skip[i])
            continue;
        r = buf_printf(out, "%s\"%s\"", out->len > 1 ? "," : "", names[i]);
    }
    return r ?: buf_puts(out, "}");
}

/* Marks mark[i] for each name the query returns (a column of names). */
static int vf_mark(struct db *db, const char *sql, const char *array, const char *cluster,
                   char (*names)[BLOB_NAME_MAX + 1], size_t n, bool *mark)
{
    const char *params[] = {array, cluster};
    PGresult *res = db_exec(db, sql, 2, params);

    if (!res)
        return -EIO;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 0);

        for (size_t k = 0; k < n; k++) {
            if (!mark[k] && strcmp(names[k], name) == 0)
                mark[k] = true;
        }
    }
    PQclear(res);
    return 0;
}

int vf_classify(struct db *db, int64_t cluster_id, char (*names)[BLOB_NAME_MAX + 1], size_t n,
                bool *referenced, bool *pending)
{
    char cid[24];
    struct buf arr;
    int r;

    memset(referenced, 0, n * sizeof(*referenced));
    memset(pending, 0, n * sizeof(*pending));
    snprintf(cid, sizeof(cid), "%" PRId64, cluster_id);
    buf_init(&arr, n * (BLOB_NAME_MAX + 4) + 8);
    /* one snapshot: a move switching a row meanwhile cannot make both checks miss a name */
    if (db_begin_with(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") < 0)
        return -EIO;
    r = vf_text_array(names, n, NULL, &arr);
    if (r == 0)
        r = vf_mark(db,
                    "SELECT o.internal_name FROM objects o WHERE o.internal_name = "
                    "ANY($1::text[]) AND o.cluster_id = $2::bigint",
                    arr.ptr, cid, names, n, referenced);
    buf_reset(&arr);
    if (r == 0)
        r = vf_text_array(names, n, referenced, &arr);
    /* only the names no object holds: open delete_files jobs can be many during a rebalance */
    if (r == 0 && arr.len > 2)
        r = vf_mark(db,
                    "SELECT payload ->> 'internal_name' FROM jobs WHERE kind = 'delete_files' "
                    "AND state IN ('pending', 'running') AND payload ->> 'cluster_id' = $2 "
                    "AND payload ->> 'internal_name' = ANY($1::text[])",
                    arr.ptr, cid, names, n, pending);
    buf_release(&arr);
    if (r < 0) {
        db_rollback(db);
        return r;
    }
    return db_commit(db) < 0 ? -EIO : 0;
}

/* ---- extra files: the manifests ---------------------------------------------------------- */

struct vf_mf {
    struct vf *v;
    struct db *db;
    size_t si;
    char line[VF_MF_LINE_MAX + 1];
    size_t len;
    bool ended; /* the "# end" line arrived */
    char names[VF_MF_BATCH][BLOB_NAME_MAX + 1];
    uint64_t sizes[VF_MF_BATCH];
    int64_t mtimes[VF_MF_BATCH];
    bool referenced[VF_MF_BATCH], pending[VF_MF_BATCH];
    size_t n;
    time_t now;
    int err; /* a failure of ours (PostgreSQL, memory), not of the storage */
};

static int vf_extra_add(struct vf *v, size_t si, const char *name, uint64_t size, int64_t mtime)
{
    if (v->nextra == v->extra_cap) {
        size_t cap = v->extra_cap ? v->extra_cap * 2 : 256;
        struct vf_extra *x;

        if (v->nextra >= VF_EXTRA_MAX) {
            v->extra_truncated = true;
            return 0;
        }
        if (cap > VF_EXTRA_MAX)
            cap = VF_EXTRA_MAX;
        x = realloc(v->extra, cap * sizeof(*x));
        if (!x)
            return -ENOMEM;
        v->extra = x;
        v->extra_cap = cap;
    }
    v->extra[v->nextra].storage = si;
    snprintf(v->extra[v->nextra].name, sizeof(v->extra[v->nextra].name), "%s", name);
    v->extra[v->nextra].size = size;
    v->extra[v->nextra].mtime = mtime;
    v->nextra++;
    return 0;
}

/* "40s", "12m", "5h 3m", "3d 4h". */
static void vf_age(int64_t s, char *out, size_t outlen)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(out, outlen, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(out, outlen, "%" PRId64 "m", s / 60);
    else if (s < 86400)
        snprintf(out, outlen, "%" PRId64 "h %" PRId64 "m", s / 3600, s / 60 % 60);
    else
        snprintf(out, outlen, "%" PRId64 "d %" PRId64 "h", s / 86400, s / 3600 % 24);
}

static int vf_mf_flush(struct vf_mf *m)
{
    struct vf_storage *s = &m->v->st[m->si];
    int r;

    if (m->n == 0)
        return 0;
    r = vf_classify(m->db, m->v->cluster_id, m->names, m->n, m->referenced, m->pending);
    if (r < 0)
        return r;
    for (size_t i = 0; i < m->n; i++) {
        char what[BLOB_REL_MAX + 8], detail[96], size[32], when[32];
        int64_t age = (int64_t) m->now - m->mtimes[i];

        if (m->referenced[i]) {
            s->files++;
            continue;
        }
        if (m->pending[i]) {
            s->pending_delete++;
            continue;
        }
        s->extra++;
        s->extra_bytes += m->sizes[i];
        if (age < (int64_t) m->v->min_age_s)
            s->extra_young++;
        r = vf_extra_add(m->v, m->si, m->names[i], m->sizes[i], m->mtimes[i]);
        if (r < 0)
            return r;
        blob_rel_path(m->names[i], strlen(m->names[i]), what);
        out_bytes(m->sizes[i], size, sizeof(size));
        vf_age(age, when, sizeof(when));
        snprintf(detail, sizeof(detail), "%s, %s old", size, when);
        vf_sample(m->v, VF_EXTRA, m->si, 0, what, detail);
    }
    m->n = 0;
    return 0;
}

/* One manifest line: "aa/bb/NAME SIZE SEC.NSEC" or the closing "# end files=N bytes=B". */
static int vf_mf_line(struct vf_mf *m)
{
    char *sp1, *sp2, *end;
    unsigned long long size;
    long long mtime;

    if (strncmp(m->line, "# end", 5) == 0) {
        m->ended = true;
        return 0;
    }
    sp1 = strchr(m->line, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp2 || !blob_rel_path_valid(m->line, (size_t) (sp1 - m->line)))
        return -EPROTO;
    errno = 0;
    size = strtoull(sp1 + 1, &end, 10);
    if (errno || end != sp2)
        return -EPROTO;
    mtime = strtoll(sp2 + 1, &end, 10);
    if (errno || (*end && *end != '.'))
        return -EPROTO;
    /* blob_rel_path_valid checked "aa/bb/NAME" with 1..BLOB_NAME_MAX bytes of name */
    memcpy(m->names[m->n], m->line + BLOB_FANOUT_LEN, (size_t) (sp1 - m->line) - BLOB_FANOUT_LEN);
    m->names[m->n][(size_t) (sp1 - m->line) - BLOB_FANOUT_LEN] = '\0';
    m->sizes[m->n] = size;
    m->mtimes[m->n] = mtime;
    if (++m->n == VF_MF_BATCH)
        return vf_mf_flush(m);
    return 0;
}

static int vf_mf_sink(void *arg, const void *data, size_t len)
{
    struct vf_mf *m = arg;
    const char *p = data;
    int r;

    for (size_t i = 0; i < len; i++) {
        if (m->ended)
            return -EPROTO; /* nothing may follow the end line */
        if (p[i] != '\n') {
            if (m->len >= VF_MF_LINE_MAX)
                return -EPROTO;
            m->line[m->len++] = p[i];
            continue;
        }
        m->line[m->len] = '\0';
        m->len = 0;
        r = vf_mf_line(m);
        if (r == -EIO || r == -ENOMEM)
            m->err = r;
        if (r < 0)
            return r;
    }
    return 0;
}

static int vf_scan_manifest(struct db *db, struct vf *v, size_t si)
{
    struct vf_storage *s = &v->st[si];
    struct vf_mf *m = calloc(1, sizeof(*m));
    char url[VF_URL_MAX];
    struct http_req req = {.method = HTTP_GET, .url = url, .timeout_ms = VF_MF_TIMEOUT_MS};
    int r = 0;

    if (!m)
        return -ENOMEM;
    m->v = v;
    m->db = db;
    m->si = si;
    m->now = time(NULL);
    snprintf(url, sizeof(url), "%s/_rsync/manifest", s->uri);
    req.resp.kind = HTTP_SINK_CB;
    req.resp.fn = vf_mf_sink;
    req.resp.arg = m;
    (void) http_perform(&req);
    if (m->err) /* PostgreSQL failed, or out of memory: the whole verify stops */
        r = m->err;
    else if (req.err == -EPROTO)
        snprintf(s->error, sizeof(s->error), "malformed manifest");
    else if (req.err)
        snprintf(s->error, sizeof(s->error), "manifest: %s", req.errmsg);
    else if (!http_status_ok(req.info.status))
        snprintf(s->error, sizeof(s->error), "manifest: HTTP %ld %.100s", req.info.status,
                 req.err_body);
    else if (m->len != 0 || !m->ended)
        snprintf(s->error, sizeof(s->error), "manifest cut short");
    else if ((r = vf_mf_flush(m)) == 0)
        s->manifest_ok = true;
    free(m);
    return r;
}

int vf_scan_extra(struct db *db, struct vf *v)
{
    int r;

    for (size_t i = 0; i < v->nst; i++) {
        if (!v->st[i].checked)
            continue;
        r = vf_scan_manifest(db, v, i);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- the objects ------------------------------------------------------------------------- */

struct vf_obj {
    int64_t id;
    char name[BLOB_NAME_MAX + 1];
    uint64_t size;
    char etag[33];
    char what[320];
};

struct vf_read {
    size_t obj, st;
    struct md5_ctx *md5;
    uint64_t bytes, max;
    char url[VF_URL_MAX];
};

static int vf_read_sink(void *arg, const void *data, size_t len)
{
    struct vf_read *rd = arg;

    if (len > rd->max - rd->bytes) {
        rd->bytes = rd->max + 1;
        return -EFBIG;
    }
    md5_update(rd->md5, data, len);
    rd->bytes += len;
    return 0;
}

static int vf_objects_load(struct db *db, const struct vf *v, int64_t after, struct vf_obj *o)
{
    char cid[24], aid[24], lim[16];
    const char *params[] = {cid, aid, lim};
    PGresult *res;
    int n;

    snprintf(cid, sizeof(cid), "%" PRId64, v->cluster_id);
    snprintf(aid, sizeof(aid), "%" PRId64, after);
    snprintf(lim, sizeof(lim), "%d", VF_OBJ_BATCH);
    res = db_exec(db,
                  "SELECT o.id, o.internal_name, o.size, o.etag, b.name || '/' || o.name "
                  "FROM objects o JOIN buckets b ON b.id = o.bucket_id "
                  "WHERE o.cluster_id = $1::bigint AND o.id > $2::bigint ORDER BY o.id "
                  "LIMIT $3::int",
                  3, params);
    if (!res)
        return -EIO;
    n = PQntuples(res);
    for (int i = 0; i < n && i < VF_OBJ_BATCH; i++) {
        o[i].id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        snprintf(o[i].name, sizeof(o[i].name), "%s", PQgetvalue(res, i, 1));
        o[i].size = strtoull(PQgetvalue(res, i, 2), NULL, 10);
        snprintf(o[i].etag, sizeof(o[i].etag), "%s", PQgetvalue(res, i, 3));
        /* a sample description may be cut to the buffer */
        if (snprintf(o[i].what, sizeof(o[i].what), "%.200s (object %" PRId64 ", internal %s)",
                     PQgetvalue(res, i, 4), o[i].id, o[i].name) < 0)
            o[i].what[0] = '\0';
    }
    PQclear(res);
    return n;
}

/* True while the row still names the copies we read (not overwritten, moved or deleted). */
static int vf_still_current(struct db *db, const struct vf *v, const struct vf_obj *o)
{
    char ids[24], cid[24];
    const char *params[] = {ids, o->name, cid};
    PGresult *res;
    int r;

    snprintf(ids, sizeof(ids), "%" PRId64, o->id);
    snprintf(cid, sizeof(cid), "%" PRId64, v->cluster_id);
    res = db_exec(db,
                  "SELECT 1 FROM objects WHERE id = $1::bigint AND internal_name = $2 "
                  "AND cluster_id = $3::bigint",
                  3, params);
    if (!res)
        return -EIO;
    r = PQntuples(res) == 1;
    PQclear(res);
    return r;
}

static int vf_bad_add(struct vf *v, int64_t id)
{
    if (v->nbad == v->bad_cap) {
        size_t cap = v->bad_cap ? v->bad_cap * 2 : 64;
        int64_t *x = realloc(v->bad, cap * sizeof(*x));

        if (!x)
            return -ENOMEM;
        v->bad = x;
        v->bad_cap = cap;
    }
    v->bad[v->nbad++] = id;
    return 0;
}

/* What one read found: VF_MISSING, VF_CORRUPT (detail set), VF__KINDS = good, -1 unchecked. */
static int vf_judge(const struct vf *v, const struct vf_obj *o, const struct http_req *q,
                    struct vf_read *rd, char *detail, size_t len)
{
    uint8_t digest[16];
    char md5[33];

    if (q->err == -EFBIG) {
        snprintf(detail, len, "longer than %" PRIu64 " bytes", o->size);
        return VF_CORRUPT;
    }
    if (q->err) {
        snprintf(detail, len, "%s", q->errmsg);
        return -1;
    }
    if (q->info.status == 404)
        return VF_MISSING;
    if (!http_status_ok(q->info.status)) {
        snprintf(detail, len, "HTTP %ld", q->info.status);
        return -1;
    }
    if (v->quick) {
        if (q->info.content_length >= 0 && (uint64_t) q->info.content_length != o->size) {
            snprintf(detail, len, "%" PRId64 " bytes, expected %" PRIu64, q->info.content_length,
                     o->size);
            return VF_CORRUPT;
        }
        return VF__KINDS;
    }
    if (rd->bytes != o->size) {
        snprintf(detail, len, "%" PRIu64 " bytes, expected %" PRIu64, rd->bytes, o->size);
        return VF_CORRUPT;
    }
    md5_final(rd->md5, digest);
    hex_encode(digest, sizeof(digest), md5);
    if (strcasecmp(md5, o->etag) != 0) {
        snprintf(detail, len, "md5 %s, expected %s", md5, o->etag);
        return VF_CORRUPT;
    }
    return VF__KINDS;
}

/* Records the findings of one object once its row is known to be unchanged. */
static int vf_object_result(struct db *db, struct vf *v, const struct vf_obj *o, const int *kinds,
                            char (*details)[200])
{
    bool bad = false;
    int r;

    for (size_t s = 0; s < v->nst; s++)
        bad = bad || kinds[s] == VF_MISSING || kinds[s] == VF_CORRUPT;
    if (bad) {
        r = vf_still_current(db, v, o);
        if (r < 0)
            return r;
        if (r == 0) {
            v->objects_changed++; /* overwritten, moved or deleted while we read */
            return 0;
        }
        r = vf_bad_add(v, o->id);
        if (r < 0)
            return r;
    }
    for (size_t s = 0; s < v->nst; s++) {
        struct vf_storage *st = &v->st[s];

        if (kinds[s] == -1)
            st->unchecked++;
        else if (kinds[s] == VF_MISSING)
            st->missing++;
        else if (kinds[s] == VF_CORRUPT)
            st->corrupt++;
        if (kinds[s] == VF_MISSING || kinds[s] == VF_CORRUPT)
            vf_sample(v, (enum vf_kind) kinds[s], s, o->id, o->what,
                      kinds[s] == VF_MISSING ? "missing" : details[s]);
    }
    return 0;
}

/* Sleeps as long as the reads ran ahead of the rate. */
static void vf_pace(const struct vf *v, uint64_t t0_ms)
{
    uint64_t due_ms, now;

    if (v->rate == 0)
        return;
    due_ms = (uint64_t) ((double) v->bytes_read * 1000.0 / (double) v->rate);
    now = vf_now_ms() - t0_ms;
    if (due_ms > now)
        progress_sleep_ms((long) (due_ms - now));
}

/* Reads every checked copy of the batch at once and records what was found. */
static int vf_check_batch(struct db *db, struct vf *v, const struct vf_obj *o, int n)
{
    size_t nreq = 0, cap = (size_t) n * v->nst + 1;
    struct http_req *reqs = calloc(cap, sizeof(*reqs));
    struct vf_read *rds = calloc(cap, sizeof(*rds));
    int *kinds = calloc(v->nst + 1, sizeof(*kinds));
    char(*details)[200] = calloc(v->nst + 1, sizeof(*details));
    int r = -ENOMEM;

    if (!reqs || !rds || !kinds || !details)
        goto out;
    for (int i = 0; i < n; i++) {
        for (size_t s = 0; s < v->nst; s++) {
            struct vf_read *rd = &rds[nreq];
            uint64_t ms = o[i].size / VF_REQ_MIN_RATE * 1000 + VF_REQ_TIMEOUT_MS;

            if (!v->st[s].checked)
                continue;
            rd->obj = (size_t) i;
            rd->st = s;
            rd->max = o[i].size;
            snprintf(rd->url, sizeof(rd->url), "%s/%s", v->st[s].uri, o[i].name);
            reqs[nreq] =
                (struct http_req){.method = v->quick ? HTTP_HEAD : HTTP_GET,
                                  .url = rd->url,
                                  .timeout_ms = ms > 0xfffffff ? 0xfffffff : (unsigned) ms};
            if (!v->quick) {
                rd->md5 = md5_new();
                if (!rd->md5)
                    goto out;
                reqs[nreq].resp.kind = HTTP_SINK_CB;
                reqs[nreq].resp.fn = vf_read_sink;
                reqs[nreq].resp.arg = rd;
            }
            nreq++;
        }
    }
    if (nreq > 0 && http_multi_run(reqs, nreq, 0) < 0) {
        r = -EIO;
        goto out;
    }
    for (size_t k = 0; k < nreq; k++)
        v->bytes_read += rds[k].bytes > rds[k].max ? rds[k].max : rds[k].bytes;
    r = 0;
    for (int i = 0; i < n && r == 0; i++) {
        for (size_t s = 0; s < v->nst; s++)
            kinds[s] = -2; /* not checked */
        for (size_t k = 0; k < nreq; k++) {
            if (rds[k].obj == (size_t) i)
                kinds[rds[k].st] =
                    vf_judge(v, &o[i], &reqs[k], &rds[k], details[rds[k].st], sizeof(details[0]));
        }
        r = vf_object_result(db, v, &o[i], kinds, details);
        v->objects_done++;
    }
out:
    for (size_t k = 0; rds && k < cap; k++)
        md5_free(rds[k].md5);
    free(reqs);
    free(rds);
    free(kinds);
    free(details);
    return r;
}

int vf_scan_objects(struct db *db, struct vf *v)
{
    struct vf_obj batch[VF_OBJ_BATCH];
    uint64_t t0 = vf_now_ms();
    int64_t after = 0;
    int n, r;

    progress_init(&v->pg, stderr);
    for (;;) {
        n = vf_objects_load(db, v, after, batch);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        r = vf_check_batch(db, v, batch, n);
        if (r < 0)
            return r;
        after = batch[n - 1].id;
        v->elapsed_ms = vf_now_ms() - t0;
        vf_progress(v, false);
        vf_pace(v, t0);
    }
    v->elapsed_ms = vf_now_ms() - t0;
    if (v->progress)
        progress_end(&v->pg);
    return 0;
}
