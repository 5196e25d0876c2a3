/* dispatcher/janitor.c — a thread that carries out deferred, retryable work for the request
 * paths: job rows (repairs, deletions), DELETEs of a failed attempt's copies, and cache
 * invalidations that Redis missed. Retries with backoff while PostgreSQL/Redis are away. */
#include "janitor.h"

#include "db.h"
#include "http_client.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "objcache.h"
#include "tctx.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JANITOR_MAX_TASKS 100000
#define CLEANUP_TIMEOUT_MS 5000

enum jtask_kind { JT_JOB, JT_CLEANUP, JT_INVAL };

struct jtask {
    struct jtask *next;
    enum jtask_kind kind;
    char *a; /* JOB: kind; CLEANUP: internal name; INVAL: key */
    char *b; /* JOB: payload */
    int64_t cluster_id;
    char **uris; /* CLEANUP */
    size_t nuris;
    int64_t due_ms;     /* not before */
    int64_t expires_ms; /* INVAL: pointless after this */
    unsigned attempts;
};

struct janitor {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct jtask *head, *tail;
    size_t n;
    bool stopping;
    int64_t drain_until_ms;
    pthread_t thread;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void jtask_free(struct jtask *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nuris; i++)
        free(t->uris[i]);
    free(t->uris);
    free(t->a);
    free(t->b);
    free(t);
}

static void push(struct janitor *j, struct jtask *t)
{
    pthread_mutex_lock(&j->mu);
    if (j->n >= JANITOR_MAX_TASKS) {
        pthread_mutex_unlock(&j->mu);
        log_error("event=janitor_full dropped_kind=%d what=%s", (int) t->kind, t->a);
        jtask_free(t);
        return;
    }
    t->next = NULL;
    if (j->tail)
        j->tail->next = t;
    else
        j->head = t;
    j->tail = t;
    j->n++;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->mu);
}

static void retry_later(struct janitor *j, struct jtask *t)
{
    int64_t delay = 250LL << (t->attempts < 6 ? t->attempts : 6); /* 0.25 s .. 16 s */

    t->attempts++;
    t->due_ms = now_ms() + delay;
    push(j, t);
}

/* Returns 0 when done, -EAGAIN to retry. */
static int run_job(struct jtask *t)
{
    struct db *db = tctx_db();
    int64_t id = 0;

    if (!db || jobs_enqueue(db, tctx_kv(), t->a, t->b, &id) < 0)
        return -EAGAIN;
    log_info("event=job_recorded kind=%s job=%" PRId64 " payload=%s", t->a, id, t->b);
    return 0;
}

static int run_cleanup(struct janitor *j, struct jtask *t)
{
    struct http_req *reqs = calloc(t->nuris, sizeof(*reqs));
    char **urls = calloc(t->nuris, sizeof(*urls));
    bool all_done = true;
    int r = 0;

    if (!reqs || !urls) {
        r = -EAGAIN;
        goto out;
    }
    for (size_t i = 0; i < t->nuris; i++) {
        size_t len = strlen(t->uris[i]) + strlen(t->a) + 2;

        urls[i] = malloc(len);
        if (!urls[i]) {
            r = -EAGAIN;
            goto out;
        }
        snprintf(urls[i], len, "%s/%s", t->uris[i], t->a);
        reqs[i].method = HTTP_DELETE;
        reqs[i].url = urls[i];
        reqs[i].timeout_ms = CLEANUP_TIMEOUT_MS;
    }
    http_multi_run(reqs, t->nuris, CLEANUP_TIMEOUT_MS + 1000);
    for (size_t i = 0; i < t->nuris; i++) {
        long st = reqs[i].err == 0 ? reqs[i].info.status : 0;

        if (!(http_status_ok(st) || st == 404)) {
            all_done = false;
            log_warn("event=cleanup_failed url=%s status=%ld error=\"%s\"", urls[i], st,
                     reqs[i].errmsg);
        }
    }
    if (!all_done) {
        /* repaird removes them from every storage of the cluster, retrying until done */
        struct jtask *job = calloc(1, sizeof(*job));
        char payload[128];

        snprintf(payload, sizeof(payload),
                 "{\"cluster_id\": %" PRId64 ", \"internal_name\": \"%s\"}", t->cluster_id, t->a);
        if (job) {
            job->kind = JT_JOB;
            job->a = strdup("delete_files");
            job->b = strdup(payload);
        }
        if (!job || !job->a || !job->b) {
            jtask_free(job);
            r = -EAGAIN;
            goto out;
        }
        metrics_inc(MC_CLEANUPS_DEFERRED, 1);
        push(j, job);
    }
out:
    for (size_t i = 0; urls && i < t->nuris; i++)
        free(urls[i]);
    free(urls);
    free(reqs);
    return r;
}

static int run_inval(struct jtask *t)
{
    if (now_ms() > t->expires_ms)
        return 0; /* the cached entry has expired by itself */
    return objcache_invalidate(tctx_kv(), t->a) < 0 ? -EAGAIN : 0;
}

/* Takes the first due task, or returns NULL and the ms to wait. */
static struct jtask *pop_due(struct janitor *j, int64_t *ret_wait)
{
    int64_t now = now_ms(), wait = 1000;
    struct jtask *prev = NULL;

    for (struct jtask *t = j->head; t; prev = t, t = t->next) {
        if (t->due_ms <= now) {
            if (prev)
                prev->next = t->next;
            else
                j->head = t->next;
            if (j->tail == t)
                j->tail = prev;
            j->n--;
            return t;
        }
        if (t->due_ms - now < wait)
            wait = t->due_ms - now;
    }
    *ret_wait = wait;
    return NULL;
}

static void *janitor_thread(void *arg)
{
    struct janitor *j = arg;

    pthread_mutex_lock(&j->mu);
    for (;;) {
        int64_t wait = 1000;
        struct jtask *t;
        int r = 0;

        if (j->stopping && (j->n == 0 || now_ms() >= j->drain_until_ms))
            break;
        t = pop_due(j, &wait);
        if (!t) {
            struct timespec until;

            if (j->stopping && wait > j->drain_until_ms - now_ms())
                wait = j->drain_until_ms - now_ms();
            if (wait < 1)
                wait = 1;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += wait / 1000;
            until.tv_nsec += (wait % 1000) * 1000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&j->cond, &j->mu, &until);
            continue;
        }
        pthread_mutex_unlock(&j->mu);
        if (t->kind == JT_JOB)
            r = run_job(t);
        else if (t->kind == JT_CLEANUP)
            r = run_cleanup(j, t);
        else
            r = run_inval(t);
        if (r == -EAGAIN)
            retry_later(j, t);
        else
            jtask_free(t);
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    tctx_thread_free();
    http_thread_cleanup();
    return NULL;
}

struct janitor *janitor_new(void)
{
    struct janitor *j = calloc(1, sizeof(*j));
    pthread_condattr_t ca;

    if (!j)
        return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&j->thread, NULL, janitor_thread, j) != 0) {
        pthread_cond_destroy(&j->cond);
        pthread_mutex_destroy(&j->mu);
        free(j);
        return NULL;
    }
    return j;
}

void janitor_free(struct janitor *j, unsigned drain_ms)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->stopping = true;
    j->drain_until_ms = now_ms() + drain_ms;
    /* make everything due now: the drain is the last chance */
    for (struct jtask *t = j->head; t; t = t->next)
        t->due_ms = 0;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    while (j->head) {
        struct jtask *t = j->head;

        j->head = t->next;
        if (t->kind != JT_INVAL)
            log_error("event=janitor_task_lost kind=%s what=%s payload=%s",
                      t->kind == JT_JOB ? "job" : "cleanup", t->a, t->b ? t->b : "");
        jtask_free(t);
    }
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

void janitor_job(struct janitor *j, const char *kind, const char *payload_json)
{
    struct jtask *t = calloc(1, sizeof(*t));

    if (t) {
        t->kind = JT_JOB;
        t->a = strdup(kind);
        t->b = strdup(payload_json);
    }
    if (!t || !t->a || !t->b) {
        log_error("event=janitor_oom kind=%s payload=%s", kind, payload_json);
        jtask_free(t);
        return;
    }
    push(j, t);
}

void janitor_cleanup(struct janitor *j, int64_t cluster_id, const char *internal_name,
                     const char *const *uris, size_t n)
{
    struct jtask *t = calloc(1, sizeof(*t));
    bool ok = t != NULL;

    if (ok) {
        t->kind = JT_CLEANUP;
        t->cluster_id = cluster_id;
        t->a = strdup(internal_name);
        t->uris = calloc(n ? n : 1, sizeof(*t->uris));
        ok = t->a && t->uris;
        for (size_t i = 0; ok && i < n; i++) {
            t->uris[i] = strdup(uris[i]);
            ok = t->uris[i] != NULL;
            t->nuris = i + 1;
        }
    }
    if (!ok) {
        log_error("event=janitor_oom cleanup=%s", internal_name);
        jtask_free(t);
        return;
    }
    push(j, t);
}

void janitor_invalidate(struct janitor *j, const char *key)
{
    struct jtask *t = calloc(1, sizeof(*t));

    if (!t || !(t->a = strdup(key))) {
        jtask_free(t);
        return;
    }
    t->kind = JT_INVAL;
    t->expires_ms = now_ms() + OBJCACHE_TTL_S * 1000;
    t->due_ms = now_ms() + 200;
    push(j, t);
}

size_t janitor_backlog(struct janitor *j)
{
    size_t n;

    pthread_mutex_lock(&j->mu);
    n = j->n;
    pthread_mutex_unlock(&j->mu);
    return n;
}
