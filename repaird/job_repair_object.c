/* repaird/job_repair_object.c — the repair_object job: checks every rw, ro and spare copy of one
 * object (size, then MD5 against objects.etag), spools the first good copy to a temp file and
 * writes it, with Content-MD5, to every storage whose copy is missing or wrong. */
#include "job.h"

#include "blob_path.h"
#include "buf.h"
#include "db.h"
#include "hash.h"
#include "http_client.h"
#include "log.h"
#include "storage_list.h"
#include "transfer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define REPAIR_URL_MAX (STORAGE_URI_MAX + BLOB_NAME_MAX + 2)

struct repair_object {
    int64_t id;
    char ids[24];
    char name[BLOB_NAME_MAX + 1];
    uint64_t size;
    char etag[33];
};

enum copy_state { COPY_GOOD = 0, COPY_BAD, COPY_AWAY };

struct repair_copy {
    const struct storage_info *s;
    uint64_t score; /* rendezvous order, as reads use */
    enum copy_state state;
    bool fixed;
    char why[200];
    char url[REPAIR_URL_MAX];
};

static int repair_tick(void *arg)
{
    return job_heartbeat(arg);
}

static int repair_copy_cmp(const void *a, const void *b)
{
    const struct repair_copy *x = a, *y = b;

    return x->score < y->score ? 1 : x->score > y->score ? -1 : 0;
}

/* Reads the object row. Returns 1 found, 0 gone, -EIO. */
static int repair_load_object(struct job *job, struct repair_object *o, int64_t *ret_cluster)
{
    const char *params[] = {o->ids};
    PGresult *res;
    int r = 0;

    res = db_exec(job->ctx->db,
                  "SELECT internal_name, cluster_id, size, etag FROM objects WHERE id = $1::bigint",
                  1, params);
    if (!res)
        return -EIO;
    if (PQntuples(res) == 1) {
        snprintf(o->name, sizeof(o->name), "%s", PQgetvalue(res, 0, 0));
        *ret_cluster = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        o->size = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
        snprintf(o->etag, sizeof(o->etag), "%s", PQgetvalue(res, 0, 3));
        r = 1;
    }
    PQclear(res);
    return r;
}

/* True while the object still has the internal name we repaired (not deleted or replaced). */
static int repair_object_current(struct job *job, const struct repair_object *o)
{
    const char *params[] = {o->ids, o->name};
    PGresult *res;
    int r;

    res = db_exec(job->ctx->db,
                  "SELECT 1 FROM objects WHERE id = $1::bigint AND internal_name = $2", 2, params);
    if (!res)
        return -EIO;
    r = PQntuples(res) == 1;
    PQclear(res);
    return r;
}

/* Checks one copy: HEAD for presence and size, then a full read for the MD5, spooled to fd when
 * fd >= 0. Returns 0 (c->state set) or -ECANCELED / -ESTALE. */
static int repair_check_copy(const struct xfer_opts *xo, const struct repair_object *o,
                             struct repair_copy *c, int fd)
{
    struct xfer_result res;
    int r;

    r = xfer_head(xo, c->url, &res);
    if (r < 0 || (res.status != 404 && !http_status_ok(res.status))) {
        c->state = COPY_AWAY;
        snprintf(c->why, sizeof(c->why), "%s", res.errmsg);
        return 0;
    }
    c->state = COPY_BAD;
    if (res.status == 404) {
        snprintf(c->why, sizeof(c->why), "missing");
        return 0;
    }
    if (res.content_length >= 0 && (uint64_t) res.content_length != o->size) {
        snprintf(c->why, sizeof(c->why), "size %" PRId64 ", expected %" PRIu64, res.content_length,
                 o->size);
        return 0;
    }
    r = xfer_fetch(xo, c->url, o->size, fd, &res);
    if (res.err == -ECANCELED || res.err == -ESTALE)
        return res.err;
    if (res.err == -EFBIG) {
        snprintf(c->why, sizeof(c->why), "longer than %" PRIu64 " bytes", o->size);
        return 0;
    }
    if (r < 0 || (res.status != 404 && !http_status_ok(res.status))) {
        c->state = COPY_AWAY;
        snprintf(c->why, sizeof(c->why), "%s", res.errmsg);
        return 0;
    }
    if (res.status == 404)
        snprintf(c->why, sizeof(c->why), "missing");
    else if (res.bytes != o->size)
        snprintf(c->why, sizeof(c->why), "%" PRIu64 " bytes, expected %" PRIu64, res.bytes,
                 o->size);
    else if (strcasecmp(res.md5, o->etag) != 0)
        snprintf(c->why, sizeof(c->why), "corrupt: md5 %s, expected %s", res.md5, o->etag);
    else
        c->state = COPY_GOOD;
    return 0;
}

/* Writes the spooled good copy to c. Returns 0 (c->fixed or c->why set) or -ECANCELED/-ESTALE. */
static int repair_write_copy(const struct xfer_opts *xo, const struct repair_object *o,
                             struct repair_copy *c, int fd)
{
    struct xfer_result res;
    int r;

    r = xfer_store(xo, c->url, fd, o->size, o->etag, &res);
    if (res.err == -ECANCELED || res.err == -ESTALE)
        return res.err;
    if (r < 0 || !http_status_ok(res.status)) {
        snprintf(c->why, sizeof(c->why), "write failed: %.160s", res.errmsg);
        return 0;
    }
    if (res.etag[0] && strcasecmp(res.etag, o->etag) != 0) {
        snprintf(c->why, sizeof(c->why), "write answered etag %s, expected %s", res.etag, o->etag);
        return 0;
    }
    c->fixed = true;
    return 0;
}

/* The object was deleted or replaced while we wrote: remove what we wrote (its delete_files
 * job may have run before our write). */
static void repair_undo(const struct repair_object *o, struct repair_copy *copies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (copies[i].fixed)
            (void) http_delete(copies[i].url, 10000, NULL);
    }
    log_info("event=repair_undone object_id=%s name=%s note=\"object deleted or replaced "
             "meanwhile\"",
             o->ids, o->name);
}

static void repair_summary(struct buf *b, const struct repair_copy *copies, size_t n,
                           enum copy_state state)
{
    for (size_t i = 0; i < n; i++) {
        if (copies[i].state == state && !copies[i].fixed)
            buf_printf(b, "%s%s: %s", b->len ? "; " : "", copies[i].s->name, copies[i].why);
    }
}

static enum job_result repair_run_copies(struct job *job, const struct repair_object *o,
                                         struct repair_copy *copies, size_t n)
{
    struct xfer_opts xo = {.throttle = job->ctx->throttle,
                           .sharers = job->ctx->workers,
                           .tick = repair_tick,
                           .tick_arg = job};
    size_t bad = 0, away = 0, unfixed = 0;
    bool have_good = false;
    enum job_result res = JOB_RETRY;
    struct buf why;
    int fd, r = 0;

    buf_init(&why, 480);
    fd = xfer_spool_open();
    if (fd < 0) {
        job_error(job, "cannot create a spool file: %s", strerror(-fd));
        return JOB_RETRY;
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        r = repair_check_copy(&xo, o, &copies[i], have_good ? -1 : fd);
        if (r == 0 && copies[i].state == COPY_GOOD)
            have_good = true;
        bad += r == 0 && copies[i].state == COPY_BAD;
        away += r == 0 && copies[i].state == COPY_AWAY;
    }
    if (r == 0 && bad > 0 && !have_good) {
        repair_summary(&why, copies, n, COPY_BAD);
        repair_summary(&why, copies, n, COPY_AWAY);
        job_error(job, "no good copy of object %s (%s) on any storage: %s", o->ids, o->name,
                  why.ptr ? why.ptr : "");
        goto out;
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        if (copies[i].state != COPY_BAD)
            continue;
        r = repair_write_copy(&xo, o, &copies[i], fd);
        if (r == 0 && copies[i].fixed)
            log_info("event=copy_repaired object_id=%s name=%s storage=%s was=\"%s\"", o->ids,
                     o->name, copies[i].s->name, copies[i].why);
        unfixed += r == 0 && !copies[i].fixed;
    }
    if (r < 0)
        goto out;
    if (bad > unfixed && repair_object_current(job, o) == 0) {
        repair_undo(o, copies, n);
        res = JOB_DONE;
        goto out;
    }
    repair_summary(&why, copies, n, COPY_BAD);
    repair_summary(&why, copies, n, COPY_AWAY);
    if (unfixed > 0) {
        job_error(job, "%zu copies of object %s could not be repaired: %s", unfixed, o->ids,
                  why.ptr ? why.ptr : "");
        res = JOB_RETRY;
    } else if (away > 0) {
        job_error(job, "%zu copies of object %s could not be checked: %s", away, o->ids,
                  why.ptr ? why.ptr : "");
        res = JOB_WAIT;
    } else {
        res = JOB_DONE;
    }
out:
    if (r < 0) {
        job_error(job, "%s", r == -ESTALE ? "lease lost" : "shutdown");
        res = JOB_CANCELLED;
    }
    close(fd);
    buf_release(&why);
    return res;
}

static enum job_result repair_object_run(struct job *job)
{
    struct repair_object o = {0};
    struct storage_list l = {0};
    struct repair_copy *copies = NULL;
    enum job_result res = JOB_RETRY;
    int64_t cluster_id = 0;
    size_t n = 0;
    int r;

    if (job_payload_int64(job, "object_id", &o.id) < 0) {
        job_error(job, "bad payload: needs object_id");
        return JOB_FAIL;
    }
    snprintf(o.ids, sizeof(o.ids), "%" PRId64, o.id);
    r = repair_load_object(job, &o, &cluster_id);
    if (r < 0) {
        job_error(job, "cannot read object %s: %s", o.ids, db_error(job->ctx->db));
        return JOB_RETRY;
    }
    if (r == 0) {
        log_info("event=repair_skipped object_id=%s note=\"object deleted meanwhile\"", o.ids);
        return JOB_DONE;
    }
    if (!blob_name_valid(o.name, strlen(o.name)) || strlen(o.etag) != 32) {
        job_error(job, "object %s has an invalid internal name or etag", o.ids);
        return JOB_FAIL;
    }
    if (storage_list_load(job->ctx->db, cluster_id, &l) < 0) {
        job_error(job, "cannot read the storages of cluster %" PRId64 ": %s", cluster_id,
                  db_error(job->ctx->db));
        return JOB_RETRY;
    }
    copies = calloc(l.n + 1, sizeof(*copies));
    if (!copies) {
        job_error(job, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < l.n; i++) {
        const struct storage_info *s = &l.v[i];

        if (s->mode != SMODE_RW && s->mode != SMODE_RO && s->mode != SMODE_SPARE)
            continue;
        if (storage_url(s, o.name, copies[n].url, sizeof(copies[n].url)) < 0)
            continue;
        copies[n].s = s;
        copies[n].score = hash_rendezvous(o.name, strlen(o.name), s->id);
        n++;
    }
    qsort(copies, n, sizeof(*copies), repair_copy_cmp);
    if (n == 0) {
        job_error(job, "cluster %" PRId64 " has no rw, ro or spare storage to hold object %s",
                  cluster_id, o.ids);
        res = JOB_WAIT;
        goto out;
    }
    res = repair_run_copies(job, &o, copies, n);
out:
    free(copies);
    storage_list_release(&l);
    return res;
}

const struct job_kind job_kind_repair_object = {
    .name = "repair_object",
    .run = repair_object_run,
};
