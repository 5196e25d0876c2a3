/* test/unit/test_tctx.c — the dispatcher's per-thread Redis handles against a real Redis: a
 * thread that found Redis away waits for its next probe, unless another thread has found Redis
 * working again since; then it probes at once (a write on it must not skip its invalidation
 * while other threads already read rows from the Redis that is back). */
#include "check.h"
#include "kv.h"
#include "svc.h"
#include "tctx.h"

#include <pthread.h>
#include <stdbool.h>

enum step { PING, PING_TWICE, HANDLE_NOW, QUIT };

/* A thread with its own tctx, running one step at a time for the main thread. */
struct worker {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool busy;
    enum step step;
    int ok;       /* PING answered PONG / a handle was given */
    int gave;     /* tctx_kv() returned a handle */
};

static bool ping(void)
{
    struct kv *kv = tctx_kv();
    redisReply *rep = kv ? kv_commandf(kv, "PING") : NULL;
    bool ok = rep && rep->type == REDIS_REPLY_STATUS;

    freeReplyObject(rep);
    return ok;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->busy)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->step == QUIT)
            break;
        pthread_mutex_unlock(&w->mu);
        if (w->step == PING)
            w->ok = ping();
        else if (w->step == PING_TWICE)
            w->ok = ping() + ping();
        else
            w->gave = tctx_kv() != NULL;
        pthread_mutex_lock(&w->mu);
        w->busy = false;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    tctx_thread_free();
    return NULL;
}

static void run(struct worker *w, enum step step)
{
    pthread_mutex_lock(&w->mu);
    w->step = step;
    w->busy = true;
    pthread_cond_broadcast(&w->cv);
    while (w->busy && step != QUIT)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static void start(struct worker *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_create(&w->tid, NULL, worker_main, w);
}

int main(void)
{
    struct worker a = {0}, b = {0};

    CHECK(tctx_init("", svc_env("STF_REDIS_URL")) == 0, "tctx_init");
    start(&a);
    start(&b);
    run(&a, PING);
    run(&b, PING);
    CHECK(a.ok && b.ok, "both threads reach Redis");

    CHECK(svc_redis_stop() == 0, "Redis stopped");
    run(&b, PING_TWICE); /* the failure, then the probe right away: B's next probe in 1 s */
    CHECK(b.ok == 0, "B: Redis away");
    svc_sleep_ms(700);
    run(&a, PING_TWICE); /* A's next probe 1.7 s from B's */
    CHECK(a.ok == 0, "A: Redis away");
    CHECK(svc_redis_start() == 0, "Redis started");
    svc_sleep_ms(400); /* B's probe is due, A's is not */
    run(&b, PING);
    CHECK(b.ok == 1, "B probes when due and finds Redis back");
    run(&b, HANDLE_NOW); /* B's next call notes that Redis works */
    run(&a, PING);
    CHECK(a.ok == 1, "A probes at once (another thread found Redis working after A lost it) "
                     "and reaches it");

    CHECK(svc_redis_stop() == 0, "Redis stopped again");
    run(&a, PING_TWICE);
    run(&b, PING_TWICE);
    run(&a, HANDLE_NOW);
    CHECK(!a.gave, "while nobody reaches Redis, A waits for its next probe");
    CHECK(svc_redis_start() == 0, "Redis started again");

    run(&a, QUIT);
    run(&b, QUIT);
    pthread_join(a.tid, NULL);
    pthread_join(b.tid, NULL);
    tctx_release();
    return check_done();
}
