/* dispatcher/tctx.c — lazily opened, thread-owned PostgreSQL and Redis handles, released by a
 * pthread key destructor when the thread exits. */
#include "tctx.h"

#include "db.h"
#include "kv.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TCTX_KV_TIMEOUT_MS 300

struct tctx {
    struct db *db;
    struct kv *kv;
    time_t db_retry_at;  /* do not try to connect before this (monotonic seconds) */
    bool kv_used;        /* kv has run at least one command */
    int64_t kv_retry_at; /* while Redis is away: next probe (monotonic ms) */
    int64_t kv_lost_at;  /* when this thread found Redis away */
    int64_t kv_given_at; /* when kv was last handed out */
};

/* When some thread last found its Redis connection working (monotonic ms): a thread that lost
 * Redis earlier probes again at once rather than waiting for its next probe, so that a write
 * never skips an invalidation while other threads already read (possibly stale) rows from a
 * Redis that is back. */
static _Atomic int64_t kv_seen_ok_at;

static char *tctx_db_url, *tctx_redis_url;
static pthread_key_t tctx_key;

static void tctx_destroy(void *p)
{
    struct tctx *t = p;

    if (!t)
        return;
    db_free(t->db);
    kv_free(t->kv);
    free(t);
}

int tctx_init(const char *db_url, const char *redis_url)
{
    int r = pthread_key_create(&tctx_key, tctx_destroy);

    if (r)
        return -r;
    tctx_db_url = strdup(db_url);
    tctx_redis_url = strdup(redis_url);
    return tctx_db_url && tctx_redis_url ? 0 : -ENOMEM;
}

void tctx_release(void)
{
    tctx_thread_free();
    pthread_key_delete(tctx_key);
    free(tctx_db_url);
    free(tctx_redis_url);
    tctx_db_url = tctx_redis_url = NULL;
}

static struct tctx *tctx_self(void)
{
    struct tctx *t = pthread_getspecific(tctx_key);

    if (t)
        return t;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (pthread_setspecific(tctx_key, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

static time_t mono_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct db *tctx_db(void)
{
    struct tctx *t = tctx_self();
    char err[256];

    if (!t)
        return NULL;
    if (t->db)
        return t->db;
    if (mono_seconds() < t->db_retry_at)
        return NULL;
    t->db = db_open(tctx_db_url, err, sizeof(err));
    if (!t->db) {
        t->db_retry_at = mono_seconds() + 1;
        log_warn("event=db_connect_failed error=\"%s\"", err);
    }
    return t->db;
}

struct kv *tctx_kv(void)
{
    struct tctx *t = tctx_self();
    char err[256];
    int64_t now;

    if (!t)
        return NULL;
    if (!t->kv) {
        t->kv = kv_open(tctx_redis_url, TCTX_KV_TIMEOUT_MS, err, sizeof(err));
        if (!t->kv) {
            log_error("event=redis_url_invalid error=\"%s\"", err);
            return NULL;
        }
    }
    /* While Redis is away, each thread probes it at most once a second (or as soon as another
     * thread found it working again); in between the callers get NULL and take their no-Redis
     * path at once. */
    now = mono_ms();
    if (t->kv_used && !kv_ok(t->kv)) {
        if (t->kv_lost_at == 0)
            t->kv_lost_at = now;
        if (now < t->kv_retry_at && atomic_load(&kv_seen_ok_at) <= t->kv_lost_at)
            return NULL;
        t->kv_retry_at = now + 1000;
        t->kv_lost_at = now;
    } else if (t->kv_used) {
        /* the last command, sent after kv_given_at, worked */
        t->kv_lost_at = 0;
        if (atomic_load_explicit(&kv_seen_ok_at, memory_order_relaxed) < t->kv_given_at)
            atomic_store_explicit(&kv_seen_ok_at, t->kv_given_at, memory_order_relaxed);
    }
    t->kv_used = true;
    t->kv_given_at = now;
    return t->kv;
}

void tctx_thread_free(void)
{
    struct tctx *t = pthread_getspecific(tctx_key);

    if (!t)
        return;
    pthread_setspecific(tctx_key, NULL);
    tctx_destroy(t);
}
