/* dispatcher/notify.c — a thread holding a Redis subscription (common/kv.c's subscriber mode),
 * dispatching mode-change and cache-invalidation messages, resynchronising after every
 * (re)subscribe, and reconnecting with backoff only after an error (never for idleness). */
#include "notify.h"

#include "kv.h"
#include "log.h"
#include "meta_cache.h"
#include "objcache.h"
#include "topology.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_TIMEOUT_MS 1000    /* connect, AUTH and SUBSCRIBE replies */
#define NOTIFY_WAIT_MS 60000      /* one wait for messages; idle waits just repeat */
#define NOTIFY_BACKOFF_MIN_MS 100 /* first retry after a failure, doubling up to ... */
#define NOTIFY_BACKOFF_MAX_MS 5000

struct notify {
    struct topology *topo;
    struct meta_cache *cache;
    struct kv *kv;
    int stop_fd;
    pthread_t thread;
};

static void handle(struct notify *n, const struct kv_msg *msg)
{
    if (strcmp(msg->channel, NOTIFY_MODES_CHANNEL) == 0) {
        log_info("event=modes_changed message=\"%.100s\"", msg->payload);
        topology_reload_soon(n->topo);
        meta_cache_clear_local(n->cache);
    } else if (strcmp(msg->channel, OBJCACHE_CHANNEL) == 0) {
        meta_cache_drop_local(n->cache, msg->payload);
    }
}

/* Sleeps ms unless asked to stop; returns false when stopping. */
static bool sleep_ms(struct notify *n, int ms)
{
    struct pollfd p = {.fd = n->stop_fd, .events = POLLIN};

    return poll(&p, 1, ms) <= 0 || !(p.revents & POLLIN);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads messages until the connection is lost (false) or the thread is to stop (true). */
static bool listen_until_lost(struct notify *n)
{
    struct kv_msg msg;
    int r;

    for (;;) {
        r = kv_sub_read(n->kv, n->stop_fd, NOTIFY_WAIT_MS, &msg);
        if (r == -ECANCELED)
            return true;
        if (r < 0)
            return false;
        if (r == 1)
            handle(n, &msg);
        kv_msg_free(&msg);
    }
}

static void *notify_thread(void *arg)
{
    static const char *const channels[] = {NOTIFY_MODES_CHANNEL, OBJCACHE_CHANNEL};
    struct notify *n = arg;
    int backoff = NOTIFY_BACKOFF_MIN_MS;
    bool was_up = true;

    for (;;) {
        int64_t since;

        if (kv_subscribe(n->kv, channels, 2) < 0) {
            if (was_up)
                log_warn("event=redis_subscribe_failed error=\"%s\" retry_ms=%d",
                         kv_error(n->kv), backoff);
            was_up = false;
            if (!sleep_ms(n, backoff))
                return NULL;
            backoff = backoff * 2 < NOTIFY_BACKOFF_MAX_MS ? backoff * 2 : NOTIFY_BACKOFF_MAX_MS;
            continue;
        }
        log_info("event=redis_subscribed channels=%s,%s", channels[0], channels[1]);
        was_up = true;
        since = now_ms();
        /* messages may have been missed while away */
        topology_reload_soon(n->topo);
        meta_cache_clear_local(n->cache);
        if (listen_until_lost(n))
            return NULL;
        log_warn("event=redis_subscription_lost error=\"%s\"", kv_error(n->kv));
        if (now_ms() - since > NOTIFY_BACKOFF_MAX_MS) /* a flapping link keeps its backoff */
            backoff = NOTIFY_BACKOFF_MIN_MS;
        if (!sleep_ms(n, backoff))
            return NULL;
    }
}

struct notify *notify_new(const char *redis_url, struct topology *t, struct meta_cache *mc)
{
    struct notify *n = calloc(1, sizeof(*n));
    char err[256];

    if (!n)
        return NULL;
    n->topo = t;
    n->cache = mc;
    n->stop_fd = -1;
    n->kv = kv_open(redis_url, NOTIFY_TIMEOUT_MS, err, sizeof(err));
    if (!n->kv) {
        log_error("event=bad_redis_url error=\"%s\"", err);
        goto fail;
    }
    n->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (n->stop_fd < 0)
        goto fail;
    if (pthread_create(&n->thread, NULL, notify_thread, n) != 0)
        goto fail;
    return n;
fail:
    if (n->stop_fd >= 0)
        close(n->stop_fd);
    kv_free(n->kv);
    free(n);
    return NULL;
}

void notify_free(struct notify *n)
{
    uint64_t one = 1;

    if (!n)
        return;
    (void) !write(n->stop_fd, &one, sizeof(one));
    pthread_join(n->thread, NULL);
    close(n->stop_fd);
    kv_free(n->kv);
    free(n);
}
