/* dispatcher/object_put.c — PUT /b/o: checks before the body (names, size, bucket,
 * If-None-Match), the placement plan, streaming the body into the spool while hashing it, and
 * the commit once every rw copy is confirmed; the old version's files are queued for deletion. */
#include "handlers.h"

#include "cluster_pick.h"
#include "config.h"
#include "digest.h"
#include "janitor.h"
#include "log.h"
#include "meta_cache.h"
#include "meta_db.h"
#include "metrics.h"
#include "put_guard.h"
#include "request.h"
#include "respond.h"
#include "server.h"
#include "spool.h"
#include "tctx.h"
#include "topology.h"
#include "upstream.h"
#include "upstream_put.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUT_MAX_CLUSTERS 64
#define PUT_MAX_TARGETS 64
/* A refused upload's remaining body is read and dropped (MHD can answer only once the request
 * is complete) up to this much; beyond it the connection is closed without an answer. */
#define PUT_DISCARD_MAX ((uint64_t) 64 * 1024 * 1024)

struct put_req {
    struct put_op *op;
    struct spool *sp; /* owned by op */
    struct md5_ctx *md5;
    uint64_t received;
    int64_t expected; /* -1: chunked */
    int64_t bucket_id;
    bool has_md5;
    uint8_t client_md5[16];
    char content_md5[32];
    char content_type[META_CONTENT_TYPE_MAX + 1];
    bool inm_star;
    bool body_done;
    bool committed;
    char md5_hex[33];
    unsigned reject_status; /* refused while the body was arriving: answered at its end */
    const char *reject_reason;
    uint64_t discarded;
    int64_t guards[PUT_MAX_CLUSTERS]; /* put_guard.h: one per cluster the PUT may try */
    size_t nguards;
};

static void put_release(struct request *req, bool completed_ok)
{
    struct put_req *p = req->state;

    (void) completed_ok;
    if (!p)
        return;
    if (p->op) {
        if (!p->committed)
            put_op_abort(p->op);
        put_op_unref(p->op);
    }
    if (!p->committed)
        put_guard_fire(tctx_db(), p->guards, p->nguards);
    md5_free(p->md5);
    free(p);
    req->state = NULL;
}

/* Content-Length as a number (INT64_MAX for 19 digits or more: over any max_object_size); -1
 * when absent/chunked, -2 when malformed. */
static int64_t content_length(struct request *req)
{
    const char *cl = req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    int64_t v = 0;

    if (te)
        return -1; /* chunked: the router refused every other coding */
    if (!cl)
        return 0; /* no body */
    if (!*cl || strspn(cl, "0123456789") != strlen(cl))
        return -2;
    while (cl[0] == '0' && cl[1])
        cl++;
    if (strlen(cl) > 18)
        return INT64_MAX;
    for (const char *s = cl; *s; s++)
        v = v * 10 + (*s - '0');
    return v;
}

/* Valid Content-Type: printable ASCII/UTF-8 text, bounded. */
static bool content_type_ok(const char *ct)
{
    size_t len = strlen(ct);

    if (len == 0 || len > META_CONTENT_TYPE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) ct[i];

        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* Records the guards of every attempt of the plan before any byte moves. 0 or -EIO. */
static int put_guards(struct put_req *p, size_t n)
{
    int64_t cids[PUT_MAX_CLUSTERS];
    char names[PUT_MAX_CLUSTERS][NAMES_INTERNAL_LEN + 1];
    struct db *db = tctx_db();
    int r;

    for (size_t i = 0; i < n; i++)
        cids[i] = put_op_attempt_name(p->op, i, names[i]);
    r = db ? put_guard_insert(db, n, cids, (const char(*)[NAMES_INTERNAL_LEN + 1]) names,
                              put_guard_delay_ms(), p->guards)
           : -EIO;
    if (r == 0)
        p->nguards = n;
    return r;
}

/* Builds the placement plan, records its guards and starts the first attempt. Returns 0,
 * -EAGAIN (no cluster) or -EIO. */
static int plan_and_start(struct request *req, struct put_req *p)
{
    const struct topo_cluster *clusters[PUT_MAX_CLUSTERS];
    const struct topo_storage *targets[PUT_MAX_TARGETS];
    bool spare[PUT_MAX_TARGETS];
    size_t key_len = strlen(req->bucket) + 1 + strlen(req->object), nc, nt;
    char *key = malloc(key_len + 1);
    struct topo *snap = topology_get(req->srv->topo);
    int r = 0;

    if (!key || !snap) {
        r = key ? -EAGAIN : -ENOMEM;
        goto out;
    }
    snprintf(key, key_len + 1, "%s/%s", req->bucket, req->object);
    nc = cluster_pick_write(snap, key, key_len, clusters, PUT_MAX_CLUSTERS);
    for (size_t i = 0; i < nc && r == 0; i++) {
        nt = cluster_write_targets(snap, clusters[i], targets, spare, PUT_MAX_TARGETS);
        r = put_op_add_cluster(p->op, clusters[i]->id, targets, spare, nt);
    }
    if (r == 0 && nc == 0)
        r = -EAGAIN;
    if (r == 0)
        r = put_guards(p, nc);
    if (r == 0)
        put_op_start(p->op, upstream_pick(req->srv->up));
out:
    topology_put(snap);
    free(key);
    return r;
}

/* The first call: everything that can be refused before the body is read. */
static enum MHD_Result put_begin(struct request *req)
{
    const struct cfg *cfg = req->srv->cfg;
    const char *ct = req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *cmd5 = req_header(req, "Content-MD5");
    const char *inm = req_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
    struct put_req *p;
    struct spool *sp;
    struct obj_meta m;
    int r;

    p = calloc(1, sizeof(*p));
    if (!p)
        return MHD_NO;
    req->state = p;
    req->release = put_release;
    p->expected = content_length(req);
    if (p->expected == -2)
        return respond_text(req, 400, "malformed Content-Length");
    if (p->expected >= 0 && (uint64_t) p->expected > cfg->dispatcher.max_object_size)
        return respond_text(req, 413, "object is larger than max_object_size");
    if (ct && !content_type_ok(ct))
        return respond_text(req, 400, "Content-Type is too long or holds control characters");
    snprintf(p->content_type, sizeof(p->content_type), "%s", ct ? ct : "application/octet-stream");
    if (cmd5) {
        if (strlen(cmd5) >= sizeof(p->content_md5) || md5_from_base64(cmd5, p->client_md5) < 0)
            return respond_text(req, 400, "Content-MD5 is not the base64 of an MD5 digest");
        p->has_md5 = true;
        snprintf(p->content_md5, sizeof(p->content_md5), "%s", cmd5);
    }
    p->inm_star = inm && strcmp(inm, "*") == 0;
    r = meta_cache_bucket(req->srv->cache, req->bucket, &p->bucket_id);
    if (r == -ENOENT)
        return respond_text(req, 404, "no such bucket");
    if (r < 0)
        return respond_errno(req, r, "cannot store the object");
    if (p->inm_star) {
        r = meta_cache_object_fresh(req->srv->cache, p->bucket_id, req->object, &m);
        if (r == 0)
            return respond_text(req, 412, "object exists (If-None-Match: *)");
        if (r != -ENOENT)
            return respond_errno(req, r, "cannot store the object");
    }
    p->md5 = md5_new();
    sp = spool_new(p->expected >= 0 ? (uint64_t) p->expected : SPOOL_UNKNOWN);
    if (!p->md5 || !sp) {
        spool_free(sp);
        return respond_text(req, 500, "out of memory");
    }
    p->op = put_op_new(sp, p->expected, p->has_md5 ? p->content_md5 : NULL, req->srv->janitor,
                       req->rid);
    if (!p->op) {
        spool_free(sp);
        return respond_text(req, 500, "out of memory");
    }
    p->sp = sp;
    r = plan_and_start(req, p);
    if (r == -EAGAIN) {
        metrics_inc(MC_WRITES_UNAVAILABLE, 1);
        return respond_text(req, 503, "no writable cluster");
    }
    if (r < 0)
        return respond_errno(req, r, "cannot store the object");
    return MHD_YES;
}

/* Stops storing; the rest of the body is dropped and status is the answer. */
static void put_reject(struct put_req *p, unsigned status, const char *reason)
{
    if (p->reject_status)
        return;
    p->reject_status = status;
    p->reject_reason = reason;
    put_op_abort(p->op);
}

static enum MHD_Result put_body(struct request *req, struct put_req *p, const char *data,
                                size_t *size)
{
    size_t n = *size;
    int r;

    *size = 0;
    if (p->reject_status) {
        p->discarded += n;
        return p->discarded > PUT_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (p->received + n > req->srv->cfg->dispatcher.max_object_size) {
        put_reject(p, 413, "object is larger than max_object_size");
        return MHD_YES;
    }
    r = spool_write(p->sp, data, n);
    if (r < 0) {
        put_reject(p, 503, "cannot spool the upload");
        return MHD_YES;
    }
    md5_update(p->md5, data, n);
    p->received += n;
    put_op_data(p->op);
    if (put_op_state(p->op) == PUT_FAILED) {
        metrics_inc(MC_WRITES_UNAVAILABLE, 1);
        put_reject(p, 503, "no writable cluster could store the object");
    }
    return MHD_YES;
}

/* The whole body is here: verify, let the copies finish, commit. */
static enum MHD_Result put_finish(struct request *req, struct put_req *p)
{
    char internal[NAMES_INTERNAL_LEN + 1], etag[40], payload[64];
    struct obj_commit c = {0};
    struct obj_meta m;
    size_t failed_spares;
    unsigned attempt;
    uint8_t digest[16];
    struct MHD_Response *resp;
    enum put_state st;
    struct db *db;
    int r;

    if (p->reject_status)
        return respond_text(req, p->reject_status, p->reject_reason);
    if (!p->body_done) {
        p->body_done = true;
        md5_final(p->md5, digest);
        hex_encode(digest, 16, p->md5_hex);
        if (p->has_md5 && memcmp(digest, p->client_md5, 16) != 0) {
            put_op_abort(p->op);
            return respond_text(req, 400, "Content-MD5 does not match the body");
        }
        put_op_set_md5(p->op, p->md5_hex);
        spool_finish(p->sp);
        put_op_data(p->op);
    }
    if (put_op_suspend_until_done(p->op, req->conn))
        return MHD_YES; /* resumed when the copies are done */
    st = put_op_state(p->op);
    if (st != PUT_STORED) {
        metrics_inc(MC_WRITES_UNAVAILABLE, st == PUT_FAILED);
        return respond_text(req, 503,
                            st == PUT_FAILED ? "no writable cluster could store the object"
                                             : "the upload was aborted");
    }
    put_op_result(p->op, &c.cluster_id, internal, &failed_spares, &attempt);
    c.bucket_id = p->bucket_id;
    c.name = req->object;
    c.internal_name = internal;
    c.size = p->received;
    c.etag = p->md5_hex;
    c.content_type = p->content_type;
    c.if_none_match_star = p->inm_star;
    c.guards = p->guards;
    c.nguards = p->nguards;
    c.attempt = attempt;
    db = tctx_db();
    /* before the commit too: a dispatcher killed after it leaves no stale cached row */
    meta_cache_mark_object(req->srv->cache, p->bucket_id, req->object, internal);
    r = db ? meta_db_object_commit(db, tctx_kv(), &c, &m) : -EIO;
    if (r == -EIO && db) {
        put_op_committed(p->op); /* the outcome may be unknown: the guard alone decides */
        meta_cache_invalidate_object(req->srv->cache, p->bucket_id, req->object);
    } else if (r < 0)
        put_op_abort(p->op); /* the copies go */
    if (r < 0) {
        if (r == -ESTALE)
            return respond_text(req, 503, "the upload outlived its guard");
        if (r == -ENOENT)
            return respond_text(req, 404, "no such bucket");
        if (r == -EEXIST)
            return respond_text(req, 412, "object exists (If-None-Match: *)");
        return respond_errno(req, r, "cannot store the object");
    }
    p->committed = true;
    put_op_committed(p->op);
    /* the first read after the upload then needs no PostgreSQL */
    meta_cache_settle_object(req->srv->cache, p->bucket_id, req->object, internal, &m);
    if (failed_spares > 0) {
        snprintf(payload, sizeof(payload), "{\"object_id\": %" PRId64 "}", m.id);
        janitor_job(req->srv->janitor, "repair_object", payload);
        metrics_inc(MC_SPARE_FAILURES, failed_spares);
        metrics_inc(MC_REPAIRS_QUEUED, 1);
    }
    log_info("event=object_stored rid=%s bucket=%s id=%" PRId64 " internal=%s cluster=%" PRId64
             " size=%" PRIu64 " attempt=%u",
             req->rid, req->bucket, m.id, internal, c.cluster_id, c.size, attempt + 1);
    snprintf(etag, sizeof(etag), "\"%s\"", m.etag);
    resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    return respond(req, 201, resp);
}

enum MHD_Result object_put(struct request *req, const char *data, size_t *size)
{
    struct put_req *p = req->state;

    if (req->calls == 1)
        return put_begin(req);
    if (!p || !p->op) {
        *size = 0; /* answered on the first call; MHD closes after the response */
        return MHD_YES;
    }
    if (*size > 0)
        return put_body(req, p, data, size);
    if (req->status)
        return MHD_YES;
    return put_finish(req, p);
}
