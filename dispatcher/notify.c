/* dispatcher/notify.c — a thread holding a Redis SUBSCRIBE connection (hiredis, non-blocking
 * reads under poll(2) so it can stop promptly), dispatching mode-change and cache-invalidation
 * messages, and resynchronising after every reconnect. */
#include "notify.h"

#include "log.h"
#include "meta_cache.h"
#include "objcache.h"
#include "topology.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NOTIFY_RETRY_MS 1000

struct notify {
    struct topology *topo;
    struct meta_cache *cache;
    char host[256];
    int port;
    char path[108]; /* unix socket, "" for TCP */
    char *password;
    int stop_fd;
    pthread_t thread;
};

/* redis://[[user]:password@]HOST[:PORT][/DB] or unix:///path[?db=N] (the db does not matter
 * for pub/sub). */
static int parse_url(struct notify *n, const char *url)
{
    const char *s, *at, *end, *colon;
    size_t hlen;

    n->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        s = url + 7;
        hlen = strcspn(s, "?");
        if (hlen == 0 || hlen >= sizeof(n->path))
            return -EINVAL;
        memcpy(n->path, s, hlen);
        n->path[hlen] = '\0';
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return -EINVAL;
    s = url + 8;
    end = s + strcspn(s, "/?");
    at = memchr(s, '@', (size_t) (end - s));
    if (at) {
        const char *pc = memchr(s, ':', (size_t) (at - s));
        const char *pw = pc ? pc + 1 : s;

        n->password = strndup(pw, (size_t) (at - pw));
        if (!n->password)
            return -ENOMEM;
        s = at + 1;
    }
    colon = memchr(s, ':', (size_t) (end - s));
    hlen = (size_t) ((colon ? colon : end) - s);
    if (hlen == 0 || hlen >= sizeof(n->host))
        return -EINVAL;
    memcpy(n->host, s, hlen);
    n->host[hlen] = '\0';
    if (colon) {
        char *e;
        long p = strtol(colon + 1, &e, 10);

        if (e != end || p < 1 || p > 65535)
            return -EINVAL;
        n->port = (int) p;
    }
    return 0;
}

static redisContext *subscribe(struct notify *n)
{
    struct timeval tv = {1, 0};
    redisContext *c;
    redisReply *rep;

    c = n->path[0] ? redisConnectUnixWithTimeout(n->path, tv)
                   : redisConnectWithTimeout(n->host, n->port, tv);
    if (!c || c->err)
        goto fail;
    redisSetTimeout(c, tv);
    if (n->password) {
        rep = redisCommand(c, "AUTH %s", n->password);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            if (rep)
                freeReplyObject(rep);
            goto fail;
        }
        freeReplyObject(rep);
    }
    rep = redisCommand(c, "SUBSCRIBE %s %s", NOTIFY_MODES_CHANNEL, OBJCACHE_CHANNEL);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        if (rep)
            freeReplyObject(rep);
        goto fail;
    }
    freeReplyObject(rep);
    /* the confirmation of the second channel */
    if (redisGetReply(c, (void **) &rep) != REDIS_OK)
        goto fail;
    freeReplyObject(rep);
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}

static void handle(struct notify *n, redisReply *rep)
{
    const char *channel, *payload;

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "message"))
        return;
    channel = rep->element[1]->str;
    payload = rep->element[2]->str ? rep->element[2]->str : "";
    if (strcmp(channel, NOTIFY_MODES_CHANNEL) == 0) {
        log_info("event=modes_changed message=\"%.100s\"", payload);
        topology_reload_soon(n->topo);
        meta_cache_clear_local(n->cache);
    } else if (strcmp(channel, OBJCACHE_CHANNEL) == 0) {
        meta_cache_drop_local(n->cache, payload);
    }
}

/* Returns false when stopping. */
static bool wait_ms(struct notify *n, int fd, int ms)
{
    struct pollfd p[2] = {{n->stop_fd, POLLIN, 0}, {fd, POLLIN, 0}};

    poll(p, fd >= 0 ? 2 : 1, ms);
    return !(p[0].revents & POLLIN);
}

static void *notify_thread(void *arg)
{
    struct notify *n = arg;
    bool was_up = true;

    for (;;) {
        redisContext *c = subscribe(n);

        if (!c) {
            if (was_up)
                log_warn("event=redis_subscribe_failed retry_ms=%d", NOTIFY_RETRY_MS);
            was_up = false;
            if (!wait_ms(n, -1, NOTIFY_RETRY_MS))
                return NULL;
            continue;
        }
        log_info("event=redis_subscribed channels=%s,%s", NOTIFY_MODES_CHANNEL, OBJCACHE_CHANNEL);
        was_up = true;
        /* messages may have been missed while away */
        topology_reload_soon(n->topo);
        meta_cache_clear_local(n->cache);
        for (;;) {
            redisReply *rep = NULL;
            bool ok = true;

            if (!wait_ms(n, c->fd, 1000)) {
                redisFree(c);
                return NULL;
            }
            if (redisBufferRead(c) != REDIS_OK)
                break;
            while (ok) {
                if (redisGetReplyFromReader(c, (void **) &rep) != REDIS_OK) {
                    ok = false;
                    break;
                }
                if (!rep)
                    break;
                handle(n, rep);
                freeReplyObject(rep);
            }
            if (!ok)
                break;
        }
        log_warn("event=redis_subscription_lost error=\"%s\"", c->errstr);
        redisFree(c);
        was_up = false;
    }
}

struct notify *notify_new(const char *redis_url, struct topology *t, struct meta_cache *mc)
{
    struct notify *n = calloc(1, sizeof(*n));

    if (!n)
        return NULL;
    n->topo = t;
    n->cache = mc;
    n->stop_fd = -1;
    if (parse_url(n, redis_url) < 0) {
        log_error("event=bad_redis_url url=%s", redis_url);
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
    free(n->password);
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
    free(n->password);
    free(n);
}
