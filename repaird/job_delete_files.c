/* repaird/job_delete_files.c — the delete_files job: removes one internal name from every
 * storage of its cluster, remembering in the payload which storages are done, until all are. */
#include "job.h"

#include "blob_path.h"
#include "buf.h"
#include "db.h"
#include "http_client.h"
#include "log.h"
#include "storage_list.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELETE_TIMEOUT_MS 10000u
#define DELETE_URL_MAX (STORAGE_URI_MAX + BLOB_NAME_MAX + 2)

/* The storage ids listed in payload.done_storage_ids, as a bitmap over l's entries. */
static int delete_files_load_done(struct job *job, const struct storage_list *l, bool *done)
{
    const char *params[] = {job->payload};
    PGresult *res;

    res = db_exec(job->ctx->db,
                  "SELECT x FROM jsonb_array_elements_text(CASE WHEN "
                  "jsonb_typeof($1::jsonb -> 'done_storage_ids') = 'array' "
                  "THEN $1::jsonb -> 'done_storage_ids' ELSE '[]'::jsonb END) x",
                  1, params);
    if (!res)
        return -EIO;
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);

        for (size_t k = 0; k < l->n; k++) {
            if (l->v[k].id == id)
                done[k] = true;
        }
    }
    PQclear(res);
    return 0;
}

/* Rewrites payload.done_storage_ids to the storages done so far. */
static int delete_files_save_done(struct job *job, const struct storage_list *l, const bool *done)
{
    struct buf ids;
    const char *params[2];
    PGresult *res = NULL;
    int r;

    buf_init(&ids, 64 + l->n * 24);
    r = buf_puts(&ids, "[");
    for (size_t k = 0; r == 0 && k < l->n; k++) {
        if (done[k])
            r = buf_printf(&ids, "%s%" PRId64, ids.len > 1 ? "," : "", l->v[k].id);
    }
    if (r == 0)
        r = buf_puts(&ids, "]");
    if (r < 0)
        goto out;
    params[0] = job->payload;
    params[1] = ids.ptr;
    res = db_exec(job->ctx->db,
                  "SELECT jsonb_set($1::jsonb, '{done_storage_ids}', $2::jsonb)::text", 2, params);
    if (!res || PQntuples(res) != 1) {
        r = -EIO;
        goto out;
    }
    r = job_save_payload(job, PQgetvalue(res, 0, 0));
out:
    PQclear(res);
    buf_release(&ids);
    return r;
}

static enum job_result delete_files_run(struct job *job)
{
    char name[BLOB_NAME_MAX + 2], (*urls)[DELETE_URL_MAX] = NULL;
    struct storage_list l = {0};
    struct http_req *reqs = NULL;
    size_t *which = NULL, nreq = 0, pending = 0, refused = 0;
    bool *done = NULL, progress = false;
    enum job_result res = JOB_RETRY;
    struct buf why;
    int64_t cluster_id;
    int r;

    buf_init(&why, 400);
    if (job_payload_int64(job, "cluster_id", &cluster_id) < 0 ||
        job_payload_text(job, "internal_name", name, sizeof(name)) < 0 ||
        !blob_name_valid(name, strlen(name))) {
        job_error(job, "bad payload: needs cluster_id and a valid internal_name");
        res = JOB_FAIL;
        goto out;
    }
    r = storage_list_load(job->ctx->db, cluster_id, &l);
    if (r < 0) {
        job_error(job, "cannot read the storages of cluster %" PRId64 ": %s", cluster_id,
                  db_error(job->ctx->db));
        goto out;
    }
    done = calloc(l.n + 1, sizeof(*done));
    which = calloc(l.n + 1, sizeof(*which));
    reqs = calloc(l.n + 1, sizeof(*reqs));
    urls = calloc(l.n + 1, sizeof(*urls));
    if (!done || !which || !reqs || !urls) {
        job_error(job, "out of memory");
        goto out;
    }
    if (delete_files_load_done(job, &l, done) < 0) {
        job_error(job, "cannot read the payload: %s", db_error(job->ctx->db));
        goto out;
    }
    for (size_t k = 0; k < l.n; k++) {
        if (done[k])
            continue;
        if (l.v[k].mode == SMODE_DOWN) { /* no traffic to a down storage: wait for it */
            pending++;
            buf_printf(&why, "%s%s is down", why.len ? "; " : "", l.v[k].name);
            continue;
        }
        if (storage_url(&l.v[k], name, urls[nreq], DELETE_URL_MAX) < 0)
            continue;
        reqs[nreq] = (struct http_req){
            .method = HTTP_DELETE, .url = urls[nreq], .timeout_ms = DELETE_TIMEOUT_MS};
        which[nreq++] = k;
    }
    if (nreq > 0 && http_multi_run(reqs, nreq, DELETE_TIMEOUT_MS + 1000) < 0) {
        job_error(job, "cannot start the DELETE requests");
        goto out;
    }
    for (size_t i = 0; i < nreq; i++) {
        const struct storage_info *s = &l.v[which[i]];
        long st = reqs[i].info.status;

        if (reqs[i].err == 0 && (http_status_ok(st) || st == 404)) {
            done[which[i]] = true;
            progress = true;
            log_debug("event=file_deleted storage=%s name=%s status=%ld", s->name, name, st);
            continue;
        }
        pending++;
        if (reqs[i].err == 0)
            refused++;
        buf_printf(&why, "%s%s: %s", why.len ? "; " : "", s->name,
                   reqs[i].err ? reqs[i].errmsg : "unexpected HTTP status");
        if (reqs[i].err == 0)
            buf_printf(&why, " %ld", st);
    }
    if (pending == 0) {
        res = JOB_DONE;
        goto out;
    }
    if (progress && delete_files_save_done(job, &l, done) == -ESTALE) {
        job_error(job, "lease lost");
        res = JOB_CANCELLED;
        goto out;
    }
    job_error(job, "%zu of %zu storages still hold %s: %s", pending, l.n, name,
              why.ptr ? why.ptr : "");
    /* a storage that is down or unreachable is waited for; one that answers with an error
     * is a failure that uses up attempts */
    res = refused ? JOB_RETRY : JOB_WAIT;
out:
    buf_release(&why);
    storage_list_release(&l);
    free(done);
    free(which);
    free(reqs);
    free(urls);
    return res;
}

const struct job_kind job_kind_delete_files = {
    .name = "delete_files",
    .run = delete_files_run,
};
