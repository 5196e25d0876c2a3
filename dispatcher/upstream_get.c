/* dispatcher/upstream_get.c — the streaming read path: a GET on the first good copy into a ring
 * buffer with backpressure (curl pause/unpause), suspend/resume of the client connection while
 * the ring is empty, and failover that resumes with a Range at the first missing byte. */
#include "upstream_get.h"

#include "log.h"
#include "upstream.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GET_CONNECT_TIMEOUT_MS 1000L
#define GET_LOW_SPEED_TIME_S 30L /* a copy that sends nothing this long is abandoned */

struct get_op {
    struct up_task task; /* first */
    struct up_xfer x;    /* the one transfer at a time */
    char **urls;
    size_t nurls, next;
    uint64_t off, len;
    bool send_range;
    char rid[65];
    pthread_mutex_t mu;
    /* under mu */
    char *ring;
    size_t cap, head, count;
    uint64_t received; /* bytes of [off, off + len) accepted so far */
    bool curl_paused;
    bool aborted;
    enum get_state state;
    unsigned failed, not_found;
    struct MHD_Connection *waiting;
    /* loop thread */
    CURL *easy;
    struct curl_slist *hdrs;
    bool ranged_now; /* the current transfer asked for a range */
    bool status_ok;  /* the current transfer's status was checked */
    char err[CURL_ERROR_SIZE];
};

static struct get_op *op_of(struct up_task *t)
{
    return (struct get_op *) t;
}

static void get_destroy(struct up_task *task)
{
    struct get_op *op = op_of(task);

    if (op->easy)
        curl_easy_cleanup(op->easy);
    curl_slist_free_all(op->hdrs);
    for (size_t i = 0; i < op->nurls; i++)
        free(op->urls[i]);
    free(op->urls);
    free(op->ring);
    pthread_mutex_destroy(&op->mu);
    free(op);
}

/* Under mu: ready for the MHD side to build (or continue) a response. */
static bool ready_locked(const struct get_op *op)
{
    return op->state != GET_RUNNING || (op->len > op->cap && op->count > 0);
}

static void wake_locked(struct get_op *op)
{
    if (op->waiting && (ready_locked(op) || op->aborted)) {
        MHD_resume_connection(op->waiting);
        op->waiting = NULL;
    }
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct get_op *op = arg;
    size_t len = size * nmemb, room, first;

    if (!op->status_ok) {
        long code = 0;

        curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code != (op->ranged_now ? 206 : 200)) {
            snprintf(op->err, sizeof(op->err), "unexpected status %ld", code);
            return 0; /* fails the transfer: next copy */
        }
        op->status_ok = true;
    }
    pthread_mutex_lock(&op->mu);
    if (op->aborted) {
        pthread_mutex_unlock(&op->mu);
        return 0;
    }
    if (len > op->len - op->received) {
        pthread_mutex_unlock(&op->mu);
        snprintf(op->err, sizeof(op->err), "copy is longer than the object");
        return 0;
    }
    room = op->cap - op->count;
    if (room < len) {
        op->curl_paused = true;
        pthread_mutex_unlock(&op->mu);
        return CURL_WRITEFUNC_PAUSE; /* curl delivers the same bytes again after unpause */
    }
    {
        size_t tail = (op->head + op->count) % op->cap;

        first = op->cap - tail < len ? op->cap - tail : len;
        memcpy(op->ring + tail, data, first);
        memcpy(op->ring, data + first, len - first);
    }
    op->count += len;
    op->received += len;
    if (op->received == op->len)
        op->state = GET_DONE; /* every byte is here: do not wait for the transfer's end */
    wake_locked(op);
    pthread_mutex_unlock(&op->mu);
    return len;
}

static void release_easy(struct get_op *op)
{
    if (op->easy)
        up_remove(&op->task, op->easy);
    op->easy = NULL;
    curl_slist_free_all(op->hdrs);
    op->hdrs = NULL;
}

/* Starts a transfer on the next copy; returns -ENOENT when there is none. */
static int start_next(struct get_op *op)
{
    char range[80], ridh[96];
    uint64_t from;

    while (op->next < op->nurls) {
        const char *url = op->urls[op->next++];

        pthread_mutex_lock(&op->mu);
        from = op->off + op->received;
        pthread_mutex_unlock(&op->mu);
        op->easy = curl_easy_init();
        if (!op->easy)
            return -ENOMEM;
        op->ranged_now = op->send_range || from > op->off;
        op->status_ok = false;
        op->err[0] = '\0';
        snprintf(ridh, sizeof(ridh), "X-Request-Id: %s", op->rid);
        op->hdrs = curl_slist_append(NULL, ridh);
        if (op->hdrs && op->ranged_now) {
            snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, from,
                     op->off + op->len - 1);
            op->hdrs = curl_slist_append(op->hdrs, range);
        }
        if (!op->hdrs)
            return -ENOMEM;
        curl_easy_setopt(op->easy, CURLOPT_URL, url);
        curl_easy_setopt(op->easy, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(op->easy, CURLOPT_WRITEDATA, op);
        curl_easy_setopt(op->easy, CURLOPT_HTTPHEADER, op->hdrs);
        curl_easy_setopt(op->easy, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(op->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(op->easy, CURLOPT_CONNECTTIMEOUT_MS, GET_CONNECT_TIMEOUT_MS);
        curl_easy_setopt(op->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(op->easy, CURLOPT_LOW_SPEED_TIME, GET_LOW_SPEED_TIME_S);
        curl_easy_setopt(op->easy, CURLOPT_PRIVATE, &op->x);
        curl_easy_setopt(op->easy, CURLOPT_ERRORBUFFER, op->err);
        curl_easy_setopt(op->easy, CURLOPT_PROTOCOLS_STR, "http,https");
        if (up_add(&op->task, op->easy) == 0)
            return 0;
        release_easy(op);
    }
    return -ENOENT;
}

static void finish(struct get_op *op, enum get_state st)
{
    pthread_mutex_lock(&op->mu);
    if (op->state == GET_RUNNING)
        op->state = st;
    wake_locked(op);
    pthread_mutex_unlock(&op->mu);
    release_easy(op);
    up_task_end(&op->task);
}

static void get_start(struct up_task *task)
{
    struct get_op *op = op_of(task);

    if (start_next(op) < 0)
        finish(op, GET_FAILED);
}

static void get_kick(struct up_task *task)
{
    struct get_op *op = op_of(task);
    bool unpause = false, aborted;

    pthread_mutex_lock(&op->mu);
    aborted = op->aborted;
    if (op->curl_paused && op->cap - op->count >= op->cap / 2) {
        op->curl_paused = false;
        unpause = true;
    }
    pthread_mutex_unlock(&op->mu);
    if (aborted) {
        finish(op, GET_FAILED);
        return;
    }
    if (unpause && op->easy)
        curl_easy_pause(op->easy, CURLPAUSE_CONT); /* may call write_cb: lock not held */
}

static void get_done(struct up_task *task, void *xfer, CURLcode rc)
{
    struct get_op *op = op_of(task);
    long code = 0;
    bool complete;

    (void) xfer;
    curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &code);
    release_easy(op);
    pthread_mutex_lock(&op->mu);
    complete = op->received == op->len;
    if (!complete) {
        op->failed++;
        if (code == 404)
            op->not_found++;
    }
    pthread_mutex_unlock(&op->mu);
    if (complete) {
        finish(op, GET_DONE);
        return;
    }
    log_info("event=read_copy_failed rid=%s url=%s status=%ld error=\"%s\"", op->rid,
             op->urls[op->next - 1], code, op->err[0] ? op->err : curl_easy_strerror(rc));
    if (start_next(op) < 0)
        finish(op, GET_FAILED);
}

static void get_tick(struct up_task *task, int64_t now)
{
    (void) task;
    (void) now;
}

static void get_abort_loop(struct up_task *task)
{
    finish(op_of(task), GET_FAILED);
}

static const struct up_task_ops get_ops = {
    .start = get_start,
    .kick = get_kick,
    .done = get_done,
    .tick = get_tick,
    .abort = get_abort_loop,
    .destroy = get_destroy,
};

struct get_op *get_op_new(const char *const *urls, size_t n, uint64_t off, uint64_t len,
                          bool send_range, const char *rid)
{
    struct get_op *op = calloc(1, sizeof(*op));

    if (!op)
        return NULL;
    up_task_init(&op->task, &get_ops);
    pthread_mutex_init(&op->mu, NULL);
    op->x.task = &op->task;
    op->off = off;
    op->len = len;
    op->send_range = send_range;
    snprintf(op->rid, sizeof(op->rid), "%s", rid);
    op->cap = len < GET_RING_MAX ? (size_t) len : GET_RING_MAX;
    op->ring = malloc(op->cap ? op->cap : 1);
    op->urls = calloc(n ? n : 1, sizeof(*op->urls));
    if (!op->ring || !op->urls)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        op->urls[i] = strdup(urls[i]);
        if (!op->urls[i])
            goto fail;
        op->nurls = i + 1;
    }
    return op;
fail:
    get_destroy(&op->task);
    return NULL;
}

void get_op_ref(struct get_op *op)
{
    up_task_ref(&op->task);
}

void get_op_unref(struct get_op *op)
{
    if (op)
        up_task_unref(&op->task);
}

void get_op_start(struct get_op *op, struct up_loop *loop)
{
    up_submit(loop, &op->task);
}

bool get_op_suspend_until_ready(struct get_op *op, struct MHD_Connection *conn)
{
    bool waiting = false;

    pthread_mutex_lock(&op->mu);
    if (!ready_locked(op)) {
        MHD_suspend_connection(conn);
        op->waiting = conn;
        waiting = true;
    }
    pthread_mutex_unlock(&op->mu);
    return waiting;
}

enum get_state get_op_state(struct get_op *op)
{
    enum get_state st;

    pthread_mutex_lock(&op->mu);
    st = op->state;
    pthread_mutex_unlock(&op->mu);
    return st;
}

void get_op_failures(struct get_op *op, unsigned *ret_failed, unsigned *ret_not_found)
{
    pthread_mutex_lock(&op->mu);
    *ret_failed = op->failed;
    *ret_not_found = op->not_found;
    pthread_mutex_unlock(&op->mu);
}

char *get_op_take_body(struct get_op *op, size_t *ret_len)
{
    char *body = NULL;

    pthread_mutex_lock(&op->mu);
    if (op->state == GET_DONE && op->head == 0 && op->count == op->len) {
        body = op->ring;
        *ret_len = op->count;
        op->ring = NULL;
        op->count = 0;
    }
    pthread_mutex_unlock(&op->mu);
    return body;
}

ssize_t get_op_read(struct get_op *op, struct MHD_Connection *conn, char *buf, size_t max)
{
    bool kick = false;
    ssize_t ret;

    pthread_mutex_lock(&op->mu);
    if (op->count > 0) {
        size_t n = op->count < max ? op->count : max;
        size_t first = op->cap - op->head < n ? op->cap - op->head : n;

        memcpy(buf, op->ring + op->head, first);
        memcpy(buf + first, op->ring, n - first);
        op->head = (op->head + n) % op->cap;
        op->count -= n;
        kick = op->curl_paused && op->cap - op->count >= op->cap / 2;
        ret = (ssize_t) n;
    } else if (op->state == GET_DONE) {
        ret = MHD_CONTENT_READER_END_OF_STREAM;
    } else if (op->state == GET_FAILED || op->aborted) {
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
    } else {
        MHD_suspend_connection(conn);
        op->waiting = conn;
        ret = 0;
    }
    pthread_mutex_unlock(&op->mu);
    if (kick)
        up_kick(&op->task);
    return ret;
}

void get_op_abort(struct get_op *op)
{
    bool kick;

    pthread_mutex_lock(&op->mu);
    kick = !op->aborted && op->state == GET_RUNNING && op->task.loop;
    op->aborted = true;
    if (op->waiting) {
        MHD_resume_connection(op->waiting);
        op->waiting = NULL;
    }
    pthread_mutex_unlock(&op->mu);
    if (kick)
        up_kick(&op->task);
}
