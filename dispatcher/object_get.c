/* dispatcher/object_get.c — GET and HEAD /b/o: metadata from the cache, conditional requests
 * (If-None-Match, If-Modified-Since), single byte ranges (If-Range), then either the bytes
 * streamed from the copies with failover, or (reproxy) a redirect for the front proxy. A read
 * that needed another copy queues a repair of the object. */
#include "handlers.h"

#include "body_cache.h"
#include "cluster_pick.h"
#include "config.h"
#include "fetch_sync.h"
#include "http_date.h"
#include "janitor.h"
#include "log.h"
#include "meta_cache.h"
#include "metrics.h"
#include "range.h"
#include "request.h"
#include "respond.h"
#include "server.h"
#include "topology.h"
#include "upstream.h"
#include "upstream_get.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GET_MAX_COPIES 64
#define GET_READ_BLOCK (64 * 1024)

struct get_req {
    struct get_op *op;
    struct obj_meta m;
    int64_t bucket_id;
    bool cached;    /* m came from a cache */
    bool refetched; /* m was re-read from PostgreSQL after every copy said 404 */
    bool ranged;
    bool failover; /* a repair is due (failover, or nginx could not read the first copy) */
    unsigned sync_failed, sync_not_found; /* copies that failed on the fast path */
    uint64_t off, len;
};

struct stream {
    struct get_op *op;
    struct MHD_Connection *conn;
};

static void get_release(struct request *req, bool completed_ok)
{
    struct get_req *g = req->state;
    unsigned failed = 0, not_found = 0;
    char payload[64];

    (void) completed_ok;
    if (!g)
        return;
    if (g->op) {
        get_op_abort(g->op);
        get_op_failures(g->op, &failed, &not_found);
        get_op_unref(g->op);
    }
    failed += g->sync_failed;
    if (failed > 0 || g->failover) {
        metrics_inc(MC_FAILOVER_READS, 1);
        metrics_inc(MC_REPAIRS_QUEUED, 1);
        snprintf(payload, sizeof(payload), "{\"object_id\": %" PRId64 "}", g->m.id);
        janitor_job(req->srv->janitor, "repair_object", payload);
        log_info("event=repair_queued rid=%s object=%" PRId64 " reason=failover failed_copies=%u",
                 req->rid, g->m.id, failed);
    }
    free(g);
    req->state = NULL;
}

static void add_object_headers(struct MHD_Response *resp, const struct obj_meta *m)
{
    char etag[40], date[HTTP_DATE_LEN];

    snprintf(etag, sizeof(etag), "\"%s\"", m->etag);
    http_date_format((time_t) m->mtime, date);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, m->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
}

/* If-None-Match: a list of entity tags (weak comparison) or "*". */
static bool etag_list_matches(const char *list, const char *etag)
{
    const char *p = list;
    size_t elen = strlen(etag);

    while (*p) {
        const char *q;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"')
            return false;
        q = strchr(p + 1, '"');
        if (!q)
            return false;
        if ((size_t) (q - p - 1) == elen && memcmp(p + 1, etag, elen) == 0)
            return true;
        p = q + 1;
    }
    return false;
}

static bool not_modified(struct request *req, const struct obj_meta *m)
{
    const char *inm = req_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
    const char *ims = req_header(req, MHD_HTTP_HEADER_IF_MODIFIED_SINCE);
    time_t t;

    if (inm)
        return etag_list_matches(inm, m->etag);
    return ims && http_date_parse(ims, &t) == 0 && (int64_t) t >= m->mtime;
}

/* If-Range: the Range applies only while the validator still matches (strong comparison). */
static bool if_range_ok(struct request *req, const struct obj_meta *m)
{
    const char *ir = req_header(req, MHD_HTTP_HEADER_IF_RANGE);
    size_t elen = strlen(m->etag);
    time_t t;

    if (!ir)
        return true;
    if (ir[0] == '"')
        return strlen(ir) == elen + 2 && memcmp(ir + 1, m->etag, elen) == 0 && ir[elen + 1] == '"';
    if (ir[0] == 'W' && ir[1] == '/') /* a weak tag never matches; "Wed, ..." is a date */
        return false;
    return http_date_parse(ir, &t) == 0 && (int64_t) t == m->mtime;
}

static ssize_t reader_none(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) cls;
    (void) pos;
    (void) buf;
    (void) max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static ssize_t reader_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    ssize_t n;

    (void) pos;
    n = get_op_read(st->op, st->conn, buf, max);
    if (n > 0)
        metrics_inc(MC_BYTES_OUT, (uint64_t) n);
    return n;
}

static void reader_free(void *cls)
{
    struct stream *st = cls;

    get_op_unref(st->op);
    free(st);
}

/* Status and headers of a body response of g->len bytes. */
static enum MHD_Result respond_body(struct request *req, struct get_req *g,
                                    struct MHD_Response *resp)
{
    char cr[96];

    if (!resp)
        return MHD_NO;
    add_object_headers(resp, &g->m);
    if (g->ranged) {
        snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, g->off,
                 g->off + g->len - 1, g->m.size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    return respond(req, g->ranged ? 206 : 200, resp);
}

/* The copies of the object in read order (urls and storage ids). Returns how many (0: none
 * readable). */
static size_t copy_urls(struct request *req, const struct obj_meta *m, char **urls, int64_t *ids,
                        size_t max)
{
    const struct topo_storage *st[GET_MAX_COPIES];
    const struct topo_cluster *c;
    struct topo *snap = topology_get(req->srv->topo);
    size_t n = 0, k;

    if (!snap)
        return 0;
    c = topo_cluster_find(snap, m->cluster_id);
    if (max > GET_MAX_COPIES)
        max = GET_MAX_COPIES;
    k = c ? cluster_pick_read(snap, c, m->internal_name, st, max) : 0;
    for (size_t i = 0; i < k; i++) {
        size_t len = strlen(st[i]->uri) + NAMES_INTERNAL_LEN + 2;

        urls[n] = malloc(len);
        if (!urls[n])
            break;
        snprintf(urls[n], len, "%s/%s", st[i]->uri, m->internal_name);
        ids[n] = st[i]->id;
        n++;
    }
    topology_put(snap);
    return n;
}

static void free_urls(char **urls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
}

static enum MHD_Result respond_reproxy(struct request *req, struct get_req *g, char **urls,
                                       size_t n)
{
    enum reproxy_mode mode = req->srv->cfg->dispatcher.reproxy;
    struct MHD_Response *resp;
    char list[4096];
    size_t used = 0;

    if (mode == REPROXY_X_ACCEL_REDIRECT) {
        snprintf(list, sizeof(list), "%s", urls[0]);
    } else { /* Perlbal / mod_reproxy take several: they fail over themselves */
        list[0] = '\0';
        for (size_t i = 0; i < n && used + strlen(urls[i]) + 2 < sizeof(list); i++)
            used +=
                (size_t) snprintf(list + used, sizeof(list) - used, "%s%s", i ? " " : "", urls[i]);
    }
    resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    add_object_headers(resp, &g->m);
    MHD_add_response_header(resp, "X-Reproxy-URL", list);
    if (mode == REPROXY_X_ACCEL_REDIRECT) {
        /* the range the dispatcher decided on (after If-Range): the proxy asks the storage for
         * exactly this instead of passing the client's headers on */
        char range[64];

        MHD_add_response_header(resp, "X-Accel-Redirect", "/reproxy");
        if (g->ranged) {
            snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, g->off,
                     g->off + g->len - 1);
            MHD_add_response_header(resp, "X-STF-Range", range);
        }
    }
    return respond(req, 200, resp);
}

static enum MHD_Result get_failed(struct request *req, struct get_req *g);

/* The fast path for small bodies: read on this thread, copy after copy. A whole object is
 * checked against its MD5 (a corrupt copy counts as failed; the next one is read) and kept in
 * the body cache. Answers, or leaves *start at the first copy the asynchronous path should try
 * (returns MHD_YES without a response then). */
static enum MHD_Result get_sync(struct request *req, struct get_req *g, char **urls,
                                const int64_t *ids, size_t n, size_t *start)
{
    struct MHD_Response *resp;
    char *buf = malloc(g->len ? g->len : 1);
    size_t at = 0;

    if (!buf)
        return MHD_YES;
    while (at < n) {
        unsigned failed = 0, not_found = 0;
        size_t next = at;
        int r = fetch_sync(req->rid, (const char *const *) (urls + at), ids + at, n - at, g->off,
                           g->len, g->ranged, buf, &next, &failed, &not_found);

        g->sync_failed += failed;
        g->sync_not_found += not_found;
        next += at;
        if (r < 0) {
            at = next;
            if (r == -EAGAIN)
                break;
            continue;
        }
        if (!g->ranged && !body_cache_put(req->srv->bodies, g->m.internal_name, g->m.etag, buf,
                                          (size_t) g->len)) {
            log_error("event=corrupt_copy rid=%s url=%s object=%" PRId64 " etag=%s", req->rid,
                      urls[next], g->m.id, g->m.etag);
            metrics_inc(MC_CORRUPT_COPIES, 1);
            g->sync_failed++;
            at = next + 1;
            continue;
        }
        resp = MHD_create_response_from_buffer(g->len, buf, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(buf);
            return MHD_NO;
        }
        metrics_inc(MC_BYTES_OUT, g->len);
        return respond_body(req, g, resp);
    }
    free(buf);
    *start = at;
    return MHD_YES;
}

/* Answers from metadata, or starts the transfer. Called again after a refetch. */
static enum MHD_Result get_serve(struct request *req, struct get_req *g)
{
    char *urls[GET_MAX_COPIES];
    int64_t ids[GET_MAX_COPIES];
    uint64_t off = 0, len = 0;
    size_t start = 0;
    enum range_result rr = RANGE_NONE;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    size_t n;

    if (not_modified(req, &g->m)) {
        resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        add_object_headers(resp, &g->m);
        return respond(req, 304, resp);
    }
    if (req->m == RM_HEAD)
        return respond_body(
            req, g, MHD_create_response_from_callback(g->m.size, 4096, reader_none, NULL, NULL));
    if (if_range_ok(req, &g->m))
        rr = range_parse(req_header(req, MHD_HTTP_HEADER_RANGE), g->m.size, &off, &len);
    if (rr == RANGE_UNSATISFIABLE) {
        char cr[48];

        resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        snprintf(cr, sizeof(cr), "bytes */%" PRIu64, g->m.size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
        add_object_headers(resp, &g->m);
        return respond(req, 416, resp);
    }
    g->ranged = rr == RANGE_OK;
    g->off = g->ranged ? off : 0;
    g->len = g->ranged ? len : g->m.size;
    if (g->len == 0)
        return respond_body(
            req, g, MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT));
    if (g->m.size <= BODY_CACHE_OBJECT_MAX && (req->srv->cfg->dispatcher.reproxy == REPROXY_OFF ||
                                               req_header(req, "X-STF-Reproxy-Failed"))) {
        char *hit = body_cache_get(req->srv->bodies, g->m.internal_name, g->m.size, g->off, g->len);

        if (hit) {
            resp = MHD_create_response_from_buffer(g->len, hit, MHD_RESPMEM_MUST_FREE);
            if (!resp) {
                free(hit);
                return MHD_NO;
            }
            metrics_inc(MC_BODY_CACHE_HITS, 1);
            metrics_inc(MC_BYTES_OUT, g->len);
            return respond_body(req, g, resp);
        }
    }
    n = copy_urls(req, &g->m, urls, ids, GET_MAX_COPIES);
    if (n == 0) {
        metrics_inc(MC_READS_UNAVAILABLE, 1);
        return respond_text(req, 503, "no readable copy: the object's cluster is down");
    }
    if (req->srv->cfg->dispatcher.reproxy != REPROXY_OFF &&
        !req_header(req, "X-STF-Reproxy-Failed")) {
        ret = respond_reproxy(req, g, urls, n);
        free_urls(urls, n);
        return ret;
    }
    if (req_header(req, "X-STF-Reproxy-Failed"))
        g->failover = true; /* the front proxy could not read the first copy */
    if (g->len <= FETCH_SYNC_MAX && !fetch_sync_avoid(ids[0])) {
        ret = get_sync(req, g, urls, ids, n, &start);
        if (ret != MHD_YES || req->status) {
            free_urls(urls, n);
            return ret;
        }
    }
    if (start >= n) {
        free_urls(urls, n);
        return get_failed(req, g);
    }
    g->op = get_op_new((const char *const *) (urls + start), n - start, g->off, g->len, g->ranged,
                       req->rid);
    free_urls(urls, n);
    if (!g->op)
        return respond_text(req, 500, "out of memory");
    get_op_start(g->op, upstream_pick(req->srv->up));
    if (get_op_suspend_until_ready(g->op, req->conn))
        return MHD_YES;
    return MHD_YES; /* ready already: MHD calls again at once */
}

/* No copy could be read. If every copy said 404 and the row came from a cache, the row may be
 * stale (overwritten or deleted meanwhile): read it again and serve what it says now. */
static enum MHD_Result get_failed(struct request *req, struct get_req *g)
{
    unsigned failed = g->sync_failed, not_found = g->sync_not_found;
    struct obj_meta m;
    int r;

    if (g->op) {
        unsigned f = 0, nf = 0;

        get_op_failures(g->op, &f, &nf);
        failed += f;
        not_found += nf;
    }
    if (failed > 0 && failed == not_found && g->cached && !g->refetched) {
        g->refetched = true;
        r = meta_cache_object_fresh(req->srv->cache, g->bucket_id, req->object, &m);
        if (r == -ENOENT || (r == 0 && strcmp(m.internal_name, g->m.internal_name) != 0)) {
            /* what failed belonged to an old version: no repair for it */
            get_op_unref(g->op);
            g->op = NULL;
            g->sync_failed = g->sync_not_found = 0;
            if (r == -ENOENT)
                return respond_text(req, 404, "no such object");
            g->m = m;
            return get_serve(req, g);
        }
    }
    metrics_inc(MC_READS_UNAVAILABLE, 1);
    return respond_text(req, 503, "no readable copy of the object could be reached");
}

/* After the transfer got ready: the response, or a failure. */
static enum MHD_Result get_respond(struct request *req, struct get_req *g)
{
    enum get_state st = get_op_state(g->op);
    struct stream *s;
    struct MHD_Response *resp;
    char *body;
    size_t len;

    if (st == GET_FAILED)
        return get_failed(req, g);
    if (st == GET_DONE && g->len <= GET_RING_MAX) {
        body = get_op_take_body(g->op, &len);
        if (body) {
            resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
            if (!resp) {
                free(body);
                return MHD_NO;
            }
            metrics_inc(MC_BYTES_OUT, len);
            return respond_body(req, g, resp);
        }
    }
    s = malloc(sizeof(*s));
    if (!s)
        return MHD_NO;
    s->op = g->op;
    s->conn = req->conn;
    get_op_ref(g->op);
    resp = MHD_create_response_from_callback(g->len, GET_READ_BLOCK, reader_stream, s, reader_free);
    if (!resp) {
        reader_free(s);
        return MHD_NO;
    }
    return respond_body(req, g, resp);
}

enum MHD_Result object_get(struct request *req, const char *data, size_t *size)
{
    struct get_req *g = req->state;
    int r;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES;
    if (req->status)
        return MHD_YES;
    if (g && g->op) {
        if (get_op_suspend_until_ready(g->op, req->conn))
            return MHD_YES;
        return get_respond(req, g);
    }
    g = calloc(1, sizeof(*g));
    if (!g)
        return MHD_NO;
    req->state = g;
    req->release = get_release;
    r = meta_cache_bucket(req->srv->cache, req->bucket, &g->bucket_id);
    if (r == -ENOENT)
        return respond_text(req, 404, "no such bucket");
    if (r == 0)
        r = meta_cache_object(req->srv->cache, g->bucket_id, req->object, &g->m, &g->cached);
    if (r == -ENOENT)
        return respond_text(req, 404, "no such object");
    if (r < 0)
        return respond_errno(req, r, "cannot read the object");
    return get_serve(req, g);
}
