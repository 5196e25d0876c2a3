/* dispatcher/upstream.c — loop threads around libcurl multi handles: submit and kick queues
 * woken with curl_multi_wakeup, completion routing through CURLOPT_PRIVATE, periodic ticks for
 * task deadlines, and an orderly stop. */
#include "upstream.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define TICK_MS 100

struct up_loop {
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    struct up_task *submit_head, *submit_tail;
    struct up_task *kick_head;
    bool stopping;
    bool abort_now;
    int64_t abort_at_ms;
    struct up_task *active; /* loop thread only */
};

struct upstream {
    struct up_loop *loops;
    unsigned n;
    unsigned next;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void up_task_init(struct up_task *t, const struct up_task_ops *ops)
{
    t->ops = ops;
    t->loop = NULL;
    t->refs = 1;
    t->kick_pending = false;
    t->active = false;
    t->next_queue = t->next_kick = t->prev_active = t->next_active = NULL;
}

void up_task_ref(struct up_task *t)
{
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
}

void up_task_unref(struct up_task *t)
{
    if (t && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
        t->ops->destroy(t);
}

void up_submit(struct up_loop *loop, struct up_task *t)
{
    up_task_ref(t);
    t->loop = loop;
    pthread_mutex_lock(&loop->mu);
    t->next_queue = NULL;
    if (loop->submit_tail)
        loop->submit_tail->next_queue = t;
    else
        loop->submit_head = t;
    loop->submit_tail = t;
    pthread_mutex_unlock(&loop->mu);
    curl_multi_wakeup(loop->multi);
}

void up_kick(struct up_task *t)
{
    struct up_loop *loop = t->loop;
    bool wake = false;

    pthread_mutex_lock(&loop->mu);
    if (!t->kick_pending) {
        t->kick_pending = true;
        up_task_ref(t);
        t->next_kick = loop->kick_head;
        loop->kick_head = t;
        wake = true;
    }
    pthread_mutex_unlock(&loop->mu);
    if (wake)
        curl_multi_wakeup(loop->multi);
}

int up_add(struct up_task *t, CURL *easy)
{
    return curl_multi_add_handle(t->loop->multi, easy) == CURLM_OK ? 0 : -EIO;
}

void up_remove(struct up_task *t, CURL *easy)
{
    if (!easy)
        return;
    curl_multi_remove_handle(t->loop->multi, easy);
    curl_easy_cleanup(easy);
}

void up_task_end(struct up_task *t)
{
    struct up_loop *loop = t->loop;

    if (!t->active)
        return;
    t->active = false;
    if (t->prev_active)
        t->prev_active->next_active = t->next_active;
    else
        loop->active = t->next_active;
    if (t->next_active)
        t->next_active->prev_active = t->prev_active;
    t->prev_active = t->next_active = NULL;
    up_task_unref(t);
}

static void route_completions(struct up_loop *loop)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(loop->multi, &left))) {
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        struct up_xfer *x = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &x);
        if (!x || !x->task) {
            curl_multi_remove_handle(loop->multi, easy);
            curl_easy_cleanup(easy);
            continue;
        }
        {
            struct up_task *t = x->task;

            up_task_ref(t); /* the callback may end the task */
            t->ops->done(t, x, rc);
            up_task_unref(t);
        }
    }
}

/* Takes the queued submits and kicks and runs them. */
static void run_queues(struct up_loop *loop)
{
    struct up_task *sub, *kick;

    pthread_mutex_lock(&loop->mu);
    sub = loop->submit_head;
    loop->submit_head = loop->submit_tail = NULL;
    kick = loop->kick_head;
    loop->kick_head = NULL;
    pthread_mutex_unlock(&loop->mu);
    while (sub) {
        struct up_task *t = sub;

        sub = t->next_queue;
        t->active = true;
        t->prev_active = NULL;
        t->next_active = loop->active;
        if (loop->active)
            loop->active->prev_active = t;
        loop->active = t;
        up_task_ref(t); /* the submit reference now belongs to the active list */
        t->ops->start(t);
        up_task_unref(t);
    }
    while (kick) {
        struct up_task *t = kick;

        /* kick_pending stays set until next_kick is read: an up_kick meanwhile is folded into
         * this one instead of relinking t (which cut the rest of this list off: lost kicks and
         * leaked references) */
        pthread_mutex_lock(&loop->mu);
        kick = t->next_kick;
        t->kick_pending = false;
        pthread_mutex_unlock(&loop->mu);
        if (t->active)
            t->ops->kick(t);
        up_task_unref(t);
    }
}

static void run_ticks(struct up_loop *loop, int64_t now)
{
    struct up_task *t = loop->active;

    while (t) {
        struct up_task *next = t->next_active;

        up_task_ref(t); /* tick may end the task */
        t->ops->tick(t, now);
        up_task_unref(t);
        t = next;
    }
}

static void abort_active(struct up_loop *loop, const char *reason)
{
    while (loop->active) {
        struct up_task *t = loop->active;

        log_warn("event=upstream_task_aborted reason=%s", reason);
        up_task_ref(t);
        t->ops->abort(t);
        up_task_end(t); /* in case abort did not */
        up_task_unref(t);
    }
}

static void *loop_thread(void *arg)
{
    struct up_loop *loop = arg;
    int64_t last_tick = now_ms();

    for (;;) {
        int running = 0;
        bool stopping, abort_now;
        int64_t now;

        curl_multi_poll(loop->multi, NULL, 0, TICK_MS, NULL);
        run_queues(loop);
        curl_multi_perform(loop->multi, &running);
        route_completions(loop);
        now = now_ms();
        if (now - last_tick >= TICK_MS) {
            last_tick = now;
            run_ticks(loop, now);
        }
        pthread_mutex_lock(&loop->mu);
        stopping = loop->stopping;
        abort_now = loop->abort_now;
        loop->abort_now = false;
        pthread_mutex_unlock(&loop->mu);
        if (abort_now)
            abort_active(loop, "drain_timeout");
        if (stopping && !loop->active)
            break;
        if (stopping && now >= loop->abort_at_ms)
            abort_active(loop, "shutdown");
    }
    run_queues(loop); /* late kicks: release their references */
    return NULL;
}

struct upstream *upstream_new(unsigned n)
{
    struct upstream *u = calloc(1, sizeof(*u));

    if (!u || n == 0)
        goto fail;
    u->loops = calloc(n, sizeof(*u->loops));
    if (!u->loops)
        goto fail;
    for (unsigned i = 0; i < n; i++) {
        struct up_loop *l = &u->loops[i];

        pthread_mutex_init(&l->mu, NULL);
        l->multi = curl_multi_init();
        if (!l->multi)
            goto fail;
        curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, 256L);
        if (pthread_create(&l->thread, NULL, loop_thread, l) != 0) {
            curl_multi_cleanup(l->multi);
            l->multi = NULL;
            goto fail;
        }
        u->n = i + 1;
    }
    return u;
fail:
    upstream_free(u, 0);
    return NULL;
}

void upstream_free(struct upstream *u, unsigned grace_ms)
{
    if (!u)
        return;
    for (unsigned i = 0; i < u->n; i++) {
        struct up_loop *l = &u->loops[i];

        pthread_mutex_lock(&l->mu);
        l->stopping = true;
        l->abort_at_ms = now_ms() + grace_ms;
        pthread_mutex_unlock(&l->mu);
        curl_multi_wakeup(l->multi);
    }
    for (unsigned i = 0; i < u->n; i++) {
        pthread_join(u->loops[i].thread, NULL);
        curl_multi_cleanup(u->loops[i].multi);
        pthread_mutex_destroy(&u->loops[i].mu);
    }
    free(u->loops);
    free(u);
}

void upstream_abort_all(struct upstream *u)
{
    for (unsigned i = 0; i < u->n; i++) {
        struct up_loop *l = &u->loops[i];

        pthread_mutex_lock(&l->mu);
        l->abort_now = true;
        pthread_mutex_unlock(&l->mu);
        curl_multi_wakeup(l->multi);
    }
}

struct up_loop *upstream_pick(struct upstream *u)
{
    unsigned i = __atomic_fetch_add(&u->next, 1, __ATOMIC_RELAXED);

    return &u->loops[i % u->n];
}
