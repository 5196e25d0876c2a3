/* dispatcher/upstream_put.c — the write fan-out: per cluster attempt, one libcurl PUT per
 * writable storage reading the spool at its own offset (paused while it waits for client
 * bytes), MD5 verification of every copy, failover to the next cluster, and removal of the
 * copies an unsuccessful attempt left behind: a copy that was confirmed is DELETEd at once; a
 * copy whose fate is unknown (the whole body went out, no answer came) is recorded as a
 * delete_files job for repaird, since an immediate DELETE could overtake storaged's rename. */
#include "upstream_put.h"

#include "janitor.h"
#include "log.h"
#include "metrics.h"
#include "spool.h"
#include "topology.h"
#include "upstream.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PUT_CONNECT_TIMEOUT_MS 2000L
#define PUT_FINISH_TIMEOUT_MS 60000 /* after the last body byte, every copy must be confirmed */
#define PUT_UPLOAD_BUFFER (128L * 1024)

enum target_state { T_WAIT = 0, T_RUNNING, T_OK, T_FAILED };

struct put_target {
    struct up_xfer x; /* first: routes completions */
    struct put_op *op;
    size_t ci; /* index of its cluster in op->clusters */
    CURL *easy;
    struct curl_slist *hdrs;
    char *uri;
    char *url;
    int64_t storage_id;
    bool spare;
    bool paused;
    bool draining; /* its attempt is over; it runs on only to learn whether it stored a copy */
    bool stored;   /* answered 201: a file exists there (even with a wrong MD5) */
    bool unknown;  /* ended without an answer after the whole body went out */
    uint64_t pos;  /* bytes of the spool handed to curl */
    enum target_state st;
    long status;
    char etag[40];
    char err[CURL_ERROR_SIZE];
};

struct put_cluster {
    int64_t id;
    char internal_name[NAMES_INTERNAL_LEN + 1]; /* fresh for every attempt */
    struct put_target *targets;
    size_t n;
};

struct put_op {
    struct up_task task; /* first */
    struct janitor *janitor;
    struct spool *sp;
    int64_t expected; /* Content-Length, or -1 for a chunked body */
    char *content_md5;
    char rid[65];
    pthread_mutex_t mu;
    /* under mu */
    enum put_state state;
    bool abort_requested;
    bool committed;
    bool md5_set;
    char md5[33];
    struct MHD_Connection *waiting;
    /* loop thread (read by the MHD side only once the op has ended) */
    struct put_cluster *clusters;
    size_t nclusters, cap, cur;
    size_t running; /* easy handles in the multi */
    bool finished;  /* the outcome is decided; the op ends when nothing runs any more */
    int64_t complete_at_ms;
    size_t failed_spares;
};

static struct put_op *op_of(struct up_task *t)
{
    return (struct put_op *) t;
}

/* Removes the target's transfer from the loop (if any) and frees its request state. */
static void target_release(struct put_op *op, struct put_target *t)
{
    if (t->easy) {
        up_remove(&op->task, t->easy);
        op->running--;
    }
    t->easy = NULL;
    curl_slist_free_all(t->hdrs);
    t->hdrs = NULL;
    free(t->url);
    t->url = NULL;
}

static void put_destroy(struct up_task *task)
{
    struct put_op *op = op_of(task);

    for (size_t c = 0; c < op->nclusters; c++) {
        for (size_t i = 0; i < op->clusters[c].n; i++) {
            struct put_target *t = &op->clusters[c].targets[i];

            if (t->easy) /* only when the loop never ran it */
                curl_easy_cleanup(t->easy);
            curl_slist_free_all(t->hdrs);
            free(t->url);
            free(t->uri);
        }
        free(op->clusters[c].targets);
    }
    free(op->clusters);
    free(op->content_md5);
    spool_free(op->sp);
    pthread_mutex_destroy(&op->mu);
    free(op);
}

/* Under op->mu: ends the wait of the MHD side. */
static void wake_locked(struct put_op *op)
{
    if (op->waiting) {
        MHD_resume_connection(op->waiting);
        op->waiting = NULL;
    }
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    struct put_target *t = arg;
    struct spool *sp = t->op->sp;
    size_t want = size * nitems;

    for (int i = 0; i < 2; i++) {
        ssize_t n = spool_read(sp, t->pos, buf, want);
        bool complete;

        if (n < 0)
            return CURL_READFUNC_ABORT;
        if (n > 0) {
            t->pos += (uint64_t) n;
            return (size_t) n;
        }
        complete = spool_complete(sp);
        if (complete && t->pos >= spool_size(sp))
            return 0; /* end of body */
        if (!complete)
            break;
        /* completed between the read and the check: read again */
    }
    t->paused = true;
    return CURL_READFUNC_PAUSE;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    struct put_target *t = arg;
    size_t len = size * nitems, i = 5, j;

    if (len > 5 && strncasecmp(buf, "ETag:", 5) == 0) {
        while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '"'))
            i++;
        j = i;
        while (j < len && buf[j] != '"' && buf[j] != '\r' && buf[j] != '\n' &&
               j - i < sizeof(t->etag) - 1)
            j++;
        memcpy(t->etag, buf + i, j - i);
        t->etag[j - i] = '\0';
    }
    return len;
}

static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void) ptr;
    (void) arg;
    return size * nmemb;
}

static int target_start(struct put_op *op, struct put_target *t, int64_t infile_size)
{
    const char *name = op->clusters[t->ci].internal_name;
    size_t len = strlen(t->uri) + NAMES_INTERNAL_LEN + 2;
    char md5h[64], ridh[96];

    t->url = malloc(len);
    t->easy = curl_easy_init();
    if (!t->url || !t->easy)
        return -ENOMEM;
    op->running++; /* counted from here: target_release undoes it */
    snprintf(t->url, len, "%s/%s", t->uri, name);
    snprintf(ridh, sizeof(ridh), "X-Request-Id: %s", op->rid);
    t->hdrs = curl_slist_append(NULL, "Expect:");
    if (t->hdrs)
        t->hdrs = curl_slist_append(t->hdrs, ridh);
    if (t->hdrs && op->content_md5) {
        snprintf(md5h, sizeof(md5h), "Content-MD5: %s", op->content_md5);
        t->hdrs = curl_slist_append(t->hdrs, md5h);
    }
    if (!t->hdrs)
        return -ENOMEM;
    t->x.task = &op->task;
    t->op = op;
    curl_easy_setopt(t->easy, CURLOPT_URL, t->url);
    curl_easy_setopt(t->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(t->easy, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(t->easy, CURLOPT_READDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t) infile_size);
    curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->hdrs);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, PUT_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(t->easy, CURLOPT_UPLOAD_BUFFERSIZE, PUT_UPLOAD_BUFFER);
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, &t->x);
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->err);
    curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (up_add(&op->task, t->easy) < 0)
        return -EIO;
    t->st = T_RUNNING;
    return 0;
}

/* Every body byte went to curl: storaged may have (or soon have) the whole file. */
/* Whether t has handed the storage the whole body, so the storage may store it: with a
 * Content-Length that is as soon as that many bytes went out, even before the client's last
 * upload callback marked the spool complete (cutting t then could still leave a file). */
static bool body_sent(const struct put_op *op, const struct put_target *t)
{
    if (op->expected >= 0 && t->pos >= (uint64_t) op->expected)
        return true;
    return spool_complete(op->sp) && t->pos >= spool_size(op->sp);
}

/* A finished target of an attempt that did not win: remove what it may have stored. */
static void target_cleanup(struct put_op *op, struct put_target *t, bool unknown)
{
    const struct put_cluster *c = &op->clusters[t->ci];
    const char *uri = t->uri;
    char payload[128];

    if (t->stored) {
        janitor_cleanup(op->janitor, c->id, c->internal_name, &uri, 1);
    } else if (unknown) {
        snprintf(payload, sizeof(payload),
                 "{\"cluster_id\": %" PRId64 ", \"internal_name\": \"%s\"}", c->id,
                 c->internal_name);
        metrics_inc(MC_CLEANUPS_DEFERRED, 1);
        janitor_job(op->janitor, "delete_files", payload);
    }
}

/* The attempt on c is over without success. Transfers still sending the body are cut (a
 * partial upload never becomes a file); those that sent it all run on (draining) until they
 * answer; confirmed copies are removed now. */
static void cluster_cleanup(struct put_op *op, struct put_cluster *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct put_target *t = &c->targets[i];

        if (t->st == T_RUNNING && !t->draining) {
            if (body_sent(op, t)) {
                t->draining = true;
                continue;
            }
            target_release(op, t);
            t->st = T_FAILED;
        }
        if (t->st == T_OK || t->st == T_FAILED)
            target_cleanup(op, t, t->unknown);
    }
}

static void maybe_end(struct put_op *op)
{
    if (op->finished && op->running == 0)
        up_task_end(&op->task);
}

static void finish(struct put_op *op, enum put_state st)
{
    pthread_mutex_lock(&op->mu);
    op->state = st;
    wake_locked(op);
    pthread_mutex_unlock(&op->mu);
    op->finished = true;
    maybe_end(op);
}

static void attempt_next(struct put_op *op);

static void attempt_fail(struct put_op *op, const char *why)
{
    struct put_cluster *c = &op->clusters[op->cur];

    log_warn("event=put_attempt_failed rid=%s cluster=%" PRId64 " internal=%s reason=\"%s\"",
             op->rid, c->id, c->internal_name, why);
    metrics_inc(MC_WRITE_ATTEMPTS_FAILED, 1);
    cluster_cleanup(op, c);
    op->cur++;
    op->complete_at_ms = 0;
    attempt_next(op);
}

/* Starts the attempt on op->clusters[op->cur], moving on while one cannot even start. */
static void attempt_next(struct put_op *op)
{
    struct put_cluster *c;
    int64_t infile;

    if (op->cur >= op->nclusters) {
        finish(op, PUT_FAILED);
        return;
    }
    c = &op->clusters[op->cur];
    /* a chunked body is sent chunked until it is complete; then its length is known */
    infile = spool_complete(op->sp) ? (int64_t) spool_size(op->sp) : op->expected;
    for (size_t i = 0; i < c->n; i++) {
        struct put_target *t = &c->targets[i];

        if (target_start(op, t, infile) < 0) {
            target_release(op, t);
            t->st = T_FAILED;
            snprintf(t->err, sizeof(t->err), "could not start a transfer");
        }
    }
}

/* Decides the current attempt once enough is known. */
static void evaluate(struct put_op *op)
{
    struct put_cluster *c;
    bool abort_req, md5_set, all_done = true;
    char md5[33];
    size_t spares_failed = 0;

    if (op->finished)
        return;
    pthread_mutex_lock(&op->mu);
    abort_req = op->abort_requested;
    md5_set = op->md5_set;
    memcpy(md5, op->md5, sizeof(md5));
    pthread_mutex_unlock(&op->mu);
    if (abort_req) {
        if (op->cur < op->nclusters)
            cluster_cleanup(op, &op->clusters[op->cur]);
        finish(op, PUT_ABORTED);
        return;
    }
    c = &op->clusters[op->cur];
    for (size_t i = 0; i < c->n; i++) {
        struct put_target *t = &c->targets[i];

        if (t->st == T_OK && md5_set && strcmp(t->etag, md5) != 0) {
            log_warn("event=put_copy_mismatch rid=%s storage=%" PRId64 " internal=%s etag=%s "
                     "md5=%s",
                     op->rid, t->storage_id, c->internal_name, t->etag, md5);
            t->st = T_FAILED;
            snprintf(t->err, sizeof(t->err), "its copy's MD5 %s is not the body's", t->etag);
        }
        if (t->st == T_FAILED && !t->spare) {
            char why[120 + CURL_ERROR_SIZE];

            snprintf(why, sizeof(why), "storage %" PRId64 ": status %ld %s", t->storage_id,
                     t->status, t->err);
            attempt_fail(op, why);
            return;
        }
        if (t->st == T_RUNNING || t->st == T_WAIT)
            all_done = false;
        if (t->st == T_FAILED)
            spares_failed++;
    }
    if (!all_done || !md5_set)
        return;
    /* a spare's wrong copy is a file: it goes, and the repair job brings a good one */
    for (size_t i = 0; i < c->n; i++) {
        if (c->targets[i].spare && c->targets[i].st == T_FAILED && c->targets[i].stored)
            target_cleanup(op, &c->targets[i], false);
    }
    op->failed_spares = spares_failed;
    pthread_mutex_lock(&op->mu);
    abort_req = op->abort_requested;
    pthread_mutex_unlock(&op->mu);
    if (abort_req) {
        cluster_cleanup(op, c);
        finish(op, PUT_ABORTED);
        return;
    }
    if (op->cur > 0)
        metrics_inc(MC_CLUSTER_FALLBACKS, 1);
    finish(op, PUT_STORED);
}

static void put_start(struct up_task *task)
{
    struct put_op *op = op_of(task);

    attempt_next(op);
    evaluate(op);
}

static void put_kick(struct up_task *task)
{
    struct put_op *op = op_of(task);

    if (!op->finished && op->cur < op->nclusters) {
        struct put_cluster *c = &op->clusters[op->cur];
        uint64_t size = spool_size(op->sp);
        bool complete = spool_complete(op->sp);

        for (size_t i = 0; i < c->n; i++) {
            struct put_target *t = &c->targets[i];

            if (t->st == T_RUNNING && t->paused && (t->pos < size || complete)) {
                t->paused = false; /* before: curl may call read_cb from inside */
                curl_easy_pause(t->easy, CURLPAUSE_CONT);
            }
        }
    }
    evaluate(op);
}

static void put_done(struct up_task *task, void *xfer, CURLcode rc)
{
    struct put_op *op = op_of(task);
    struct put_target *t = xfer;

    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    target_release(op, t);
    t->stored = rc == CURLE_OK && t->status == 201;
    t->unknown = t->status == 0 && body_sent(op, t);
    if (t->stored) {
        t->st = T_OK;
    } else {
        t->st = T_FAILED;
        if (!t->err[0])
            snprintf(t->err, sizeof(t->err), "%s", curl_easy_strerror(rc));
        log_info("event=put_copy_failed rid=%s storage=%" PRId64 " spare=%d status=%ld "
                 "error=\"%s\"",
                 op->rid, t->storage_id, t->spare, t->status, t->err);
    }
    if (t->draining) { /* its attempt is over: only what it left behind matters */
        target_cleanup(op, t, t->unknown);
        maybe_end(op);
        return;
    }
    evaluate(op);
    maybe_end(op);
}

/* Ends every transfer still running. A draining one's possible copy is recorded for repaird
 * now; the current attempt's are judged by evaluate()/cluster_cleanup() (t->unknown). */
static void cut_all(struct put_op *op, const char *why)
{
    for (size_t ci = 0; ci < op->nclusters; ci++) {
        struct put_cluster *c = &op->clusters[ci];

        for (size_t i = 0; i < c->n; i++) {
            struct put_target *t = &c->targets[i];

            if (t->st != T_RUNNING)
                continue;
            t->unknown = body_sent(op, t);
            target_release(op, t);
            t->st = T_FAILED;
            snprintf(t->err, sizeof(t->err), "%s", why);
            if (t->draining)
                target_cleanup(op, t, t->unknown);
        }
    }
}

static void put_tick(struct up_task *task, int64_t now)
{
    struct put_op *op = op_of(task);

    if (!spool_complete(op->sp))
        return;
    if (op->complete_at_ms == 0)
        op->complete_at_ms = now;
    if (now - op->complete_at_ms < PUT_FINISH_TIMEOUT_MS)
        return;
    op->complete_at_ms = now; /* a next attempt gets its own time */
    cut_all(op, "no answer in time after the whole body was sent");
    evaluate(op);
    maybe_end(op);
}

static void put_abort_loop(struct up_task *task)
{
    struct put_op *op = op_of(task);

    cut_all(op, "dispatcher shutting down");
    if (!op->finished) {
        if (op->cur < op->nclusters)
            cluster_cleanup(op, &op->clusters[op->cur]);
        finish(op, PUT_ABORTED);
    }
    maybe_end(op);
}

static const struct up_task_ops put_ops = {
    .start = put_start,
    .kick = put_kick,
    .done = put_done,
    .tick = put_tick,
    .abort = put_abort_loop,
    .destroy = put_destroy,
};

struct put_op *put_op_new(struct spool *sp, int64_t expected, const char *content_md5,
                          struct janitor *j, const char *rid)
{
    struct put_op *op = calloc(1, sizeof(*op));

    if (!op)
        return NULL;
    up_task_init(&op->task, &put_ops);
    op->sp = sp;
    op->expected = expected;
    snprintf(op->rid, sizeof(op->rid), "%s", rid);
    op->janitor = j;
    pthread_mutex_init(&op->mu, NULL);
    if (content_md5 && !(op->content_md5 = strdup(content_md5))) {
        op->sp = NULL; /* not taken on failure */
        put_destroy(&op->task);
        return NULL;
    }
    return op;
}

void put_op_unref(struct put_op *op)
{
    if (op)
        up_task_unref(&op->task);
}

int put_op_add_cluster(struct put_op *op, int64_t cluster_id, const struct topo_storage *const *t,
                       const bool *spare, size_t n)
{
    struct put_cluster *c;

    if (op->nclusters == op->cap) {
        size_t cap = op->cap ? op->cap * 2 : 4;
        struct put_cluster *nc = realloc(op->clusters, cap * sizeof(*nc));

        if (!nc)
            return -ENOMEM;
        op->clusters = nc;
        op->cap = cap;
    }
    c = &op->clusters[op->nclusters];
    c->id = cluster_id;
    c->n = 0;
    if (names_internal_new(c->internal_name) < 0)
        return -EIO;
    c->targets = calloc(n ? n : 1, sizeof(*c->targets));
    if (!c->targets)
        return -ENOMEM;
    op->nclusters++;
    for (size_t i = 0; i < n; i++) {
        struct put_target *pt = &c->targets[i];

        pt->uri = strdup(t[i]->uri);
        if (!pt->uri)
            return -ENOMEM;
        pt->ci = op->nclusters - 1;
        pt->storage_id = t[i]->id;
        pt->spare = spare[i];
        c->n++;
    }
    return 0;
}

void put_op_start(struct put_op *op, struct up_loop *loop)
{
    up_submit(loop, &op->task);
}

void put_op_data(struct put_op *op)
{
    up_kick(&op->task);
}

void put_op_set_md5(struct put_op *op, const char *md5_hex)
{
    pthread_mutex_lock(&op->mu);
    snprintf(op->md5, sizeof(op->md5), "%s", md5_hex);
    op->md5_set = true;
    pthread_mutex_unlock(&op->mu);
}

enum put_state put_op_state(struct put_op *op)
{
    enum put_state st;

    pthread_mutex_lock(&op->mu);
    st = op->state;
    pthread_mutex_unlock(&op->mu);
    return st;
}

bool put_op_suspend_until_done(struct put_op *op, struct MHD_Connection *conn)
{
    bool waiting = false;

    pthread_mutex_lock(&op->mu);
    if (op->state == PUT_RUNNING) {
        MHD_suspend_connection(conn);
        op->waiting = conn;
        waiting = true;
    }
    pthread_mutex_unlock(&op->mu);
    return waiting;
}

int64_t put_op_attempt_name(struct put_op *op, size_t i,
                            char ret_internal_name[NAMES_INTERNAL_LEN + 1])
{
    int64_t id = 0;

    pthread_mutex_lock(&op->mu);
    if (i < op->nclusters) {
        id = op->clusters[i].id;
        memcpy(ret_internal_name, op->clusters[i].internal_name, NAMES_INTERNAL_LEN + 1);
    }
    pthread_mutex_unlock(&op->mu);
    return id;
}

void put_op_result(struct put_op *op, int64_t *ret_cluster_id,
                   char ret_internal_name[NAMES_INTERNAL_LEN + 1], size_t *ret_failed_spares,
                   unsigned *ret_attempt)
{
    pthread_mutex_lock(&op->mu);
    *ret_cluster_id = op->cur < op->nclusters ? op->clusters[op->cur].id : 0;
    memcpy(ret_internal_name, op->cur < op->nclusters ? op->clusters[op->cur].internal_name : "",
           op->cur < op->nclusters ? NAMES_INTERNAL_LEN + 1 : 1);
    *ret_failed_spares = op->failed_spares;
    *ret_attempt = (unsigned) op->cur;
    pthread_mutex_unlock(&op->mu);
}

void put_op_abort(struct put_op *op)
{
    bool kick = false;

    pthread_mutex_lock(&op->mu);
    if (op->committed || op->state == PUT_ABORTED || op->state == PUT_FAILED) {
        pthread_mutex_unlock(&op->mu);
        return;
    }
    if (op->state == PUT_STORED) {
        /* the loop is done with the op: remove the stored copies from here */
        op->state = PUT_ABORTED;
        pthread_mutex_unlock(&op->mu);
        cluster_cleanup(op, &op->clusters[op->cur]);
        return;
    }
    if (op->task.loop && !op->abort_requested) {
        op->abort_requested = true;
        kick = true;
    } else if (!op->task.loop) {
        op->state = PUT_ABORTED; /* never started */
    }
    pthread_mutex_unlock(&op->mu);
    if (kick)
        up_kick(&op->task);
}

void put_op_committed(struct put_op *op)
{
    pthread_mutex_lock(&op->mu);
    op->committed = true;
    pthread_mutex_unlock(&op->mu);
}
