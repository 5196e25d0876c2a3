/* dispatcher/meta_cache.c — three-level metadata lookups (in-process, Redis, PostgreSQL) with
 * invalidation. The in-process cache is a fixed array of slots under striped locks; a stripe
 * epoch keeps a lookup that raced with an invalidation from filling a stale entry, and Redis
 * fills use SET NX so they cannot overwrite an invalidation's tombstone. */
#include "meta_cache.h"

#include "buf.h"
#include "hash.h"
#include "janitor.h"
#include "kv.h"
#include "log.h"
#include "meta_db.h"
#include "metrics.h"
#include "objcache.h"
#include "tctx.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LC_SLOTS 16384
#define LC_STRIPES 64
#define LC_TTL_MS 1000
#define KEY_MAX (NAMES_OBJECT_MAX + 64)

struct lc_entry {
    int64_t expires_ms;
    struct obj_meta meta; /* for buckets only meta.id is used */
    size_t key_len;
    char key[];
};

struct lc_stripe {
    pthread_mutex_t mu;
    uint64_t epoch; /* bumped by every invalidation of a key in this stripe */
} __attribute__((aligned(64)));

struct meta_cache {
    struct janitor *janitor;
    struct lc_entry **slots;
    struct lc_stripe stripes[LC_STRIPES];
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct meta_cache *meta_cache_new(struct janitor *j)
{
    struct meta_cache *mc = calloc(1, sizeof(*mc));

    if (!mc)
        return NULL;
    mc->slots = calloc(LC_SLOTS, sizeof(*mc->slots));
    if (!mc->slots) {
        free(mc);
        return NULL;
    }
    mc->janitor = j;
    for (size_t i = 0; i < LC_STRIPES; i++)
        pthread_mutex_init(&mc->stripes[i].mu, NULL);
    return mc;
}

void meta_cache_free(struct meta_cache *mc)
{
    if (!mc)
        return;
    for (size_t i = 0; i < LC_SLOTS; i++)
        free(mc->slots[i]);
    for (size_t i = 0; i < LC_STRIPES; i++)
        pthread_mutex_destroy(&mc->stripes[i].mu);
    free(mc->slots);
    free(mc);
}

static size_t slot_of(const char *key, size_t len)
{
    return (size_t) (hash_murmur64(key, len) % LC_SLOTS);
}

static struct lc_stripe *stripe_of(struct meta_cache *mc, size_t slot)
{
    return &mc->stripes[slot % LC_STRIPES];
}

/* Copies a live entry for key into *ret. Also returns the stripe epoch seen, for a later fill. */
static bool lc_get(struct meta_cache *mc, const char *key, size_t len, struct obj_meta *ret,
                   uint64_t *ret_epoch)
{
    size_t slot = slot_of(key, len);
    struct lc_stripe *st = stripe_of(mc, slot);
    struct lc_entry *e;
    bool hit = false;

    pthread_mutex_lock(&st->mu);
    e = mc->slots[slot];
    if (e && e->key_len == len && memcmp(e->key, key, len) == 0 && e->expires_ms > now_ms()) {
        *ret = e->meta;
        hit = true;
    }
    *ret_epoch = st->epoch;
    pthread_mutex_unlock(&st->mu);
    return hit;
}

/* Stores meta under key unless an invalidation happened since epoch was read. */
static void lc_put(struct meta_cache *mc, const char *key, size_t len, const struct obj_meta *m,
                   uint64_t epoch)
{
    size_t slot = slot_of(key, len);
    struct lc_stripe *st = stripe_of(mc, slot);
    struct lc_entry *e = malloc(sizeof(*e) + len + 1), *old = NULL;

    if (!e)
        return;
    e->expires_ms = now_ms() + LC_TTL_MS;
    e->meta = *m;
    e->key_len = len;
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    pthread_mutex_lock(&st->mu);
    if (st->epoch == epoch) {
        old = mc->slots[slot];
        mc->slots[slot] = e;
        e = NULL;
    }
    pthread_mutex_unlock(&st->mu);
    free(old);
    free(e);
}

void meta_cache_drop_local(struct meta_cache *mc, const char *key)
{
    size_t len = strlen(key), slot = slot_of(key, len);
    struct lc_stripe *st = stripe_of(mc, slot);
    struct lc_entry *e, *old = NULL;

    pthread_mutex_lock(&st->mu);
    st->epoch++;
    e = mc->slots[slot];
    if (e && e->key_len == len && memcmp(e->key, key, len) == 0) {
        old = e;
        mc->slots[slot] = NULL;
    }
    pthread_mutex_unlock(&st->mu);
    free(old);
}

void meta_cache_clear_local(struct meta_cache *mc)
{
    for (size_t s = 0; s < LC_STRIPES; s++) {
        struct lc_stripe *st = &mc->stripes[s];

        pthread_mutex_lock(&st->mu);
        st->epoch++;
        for (size_t i = s; i < LC_SLOTS; i += LC_STRIPES) {
            free(mc->slots[i]);
            mc->slots[i] = NULL;
        }
        pthread_mutex_unlock(&st->mu);
    }
}

/* Redis values: "1 id bucket cluster size mtime internal etag content-type" */
static int meta_encode(const struct obj_meta *m, struct buf *out)
{
    return buf_printf(out, "1 %" PRId64 " %" PRId64 " %" PRId64 " %" PRIu64 " %" PRId64 " %s %s %s",
                      m->id, m->bucket_id, m->cluster_id, m->size, m->mtime, m->internal_name,
                      m->etag, m->content_type);
}

static int meta_decode(const char *s, struct obj_meta *m)
{
    int used = 0;

    memset(m, 0, sizeof(*m));
    if (sscanf(s, "1 %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNu64 " %" SCNd64 " %32s %32s %n",
               &m->id, &m->bucket_id, &m->cluster_id, &m->size, &m->mtime, m->internal_name,
               m->etag, &used) != 7 ||
        used == 0)
        return -EINVAL;
    if (strlen(s + used) > META_CONTENT_TYPE_MAX)
        return -EINVAL;
    strcpy(m->content_type, s + used);
    return names_internal_valid(m->internal_name) ? 0 : -EINVAL;
}

enum redis_result { REDIS_MISS, REDIS_HIT, REDIS_TOMBSTONE, REDIS_AWAY };

static enum redis_result redis_get(struct kv *kv, const char *key, struct buf *val)
{
    const char *argv[2] = {"GET", key};
    enum redis_result res = REDIS_MISS;
    redisReply *rep;

    if (!kv)
        return REDIS_AWAY;
    rep = kv_command(kv, 2, argv, NULL);
    if (!rep)
        return REDIS_AWAY;
    if (rep->type == REDIS_REPLY_STRING) {
        if (rep->str[0] == OBJCACHE_TOMBSTONE[0]) /* a writer's, or a plain one */
            res = REDIS_TOMBSTONE;
        else if (buf_append(val, rep->str, rep->len) == 0)
            res = REDIS_HIT;
    }
    freeReplyObject(rep);
    return res;
}

/* Best effort, and not waited for: the reply is read before this thread's next Redis command,
 * so a first read after an upload costs one Redis round trip less. */
static void redis_fill(struct kv *kv, const char *key, const char *val)
{
    char ttl[16];
    const char *argv[6] = {"SET", key, val, "EX", ttl, "NX"};

    if (!kv)
        return;
    snprintf(ttl, sizeof(ttl), "%d", OBJCACHE_TTL_S);
    kv_command_deferred(kv, 6, argv, NULL);
}

int meta_cache_bucket(struct meta_cache *mc, const char *name, int64_t *ret_id)
{
    struct buf key, val;
    struct obj_meta m;
    enum redis_result rr;
    struct kv *kv;
    struct db *db;
    uint64_t epoch;
    int r;

    buf_init(&key, KEY_MAX);
    buf_init(&val, 64);
    r = objcache_bucket_key(name, &key);
    if (r < 0)
        goto out;
    if (lc_get(mc, key.ptr, key.len, &m, &epoch)) {
        *ret_id = m.id;
        metrics_inc(MC_CACHE_HITS_LOCAL, 1);
        goto out;
    }
    memset(&m, 0, sizeof(m));
    kv = tctx_kv();
    rr = redis_get(kv, key.ptr, &val);
    if (rr == REDIS_HIT && sscanf(val.ptr, "%" SCNd64, &m.id) == 1 && m.id > 0) {
        metrics_inc(MC_CACHE_HITS_REDIS, 1);
        lc_put(mc, key.ptr, key.len, &m, epoch);
        *ret_id = m.id;
        goto out;
    }
    metrics_inc(MC_CACHE_MISSES, 1);
    db = tctx_db();
    r = db ? meta_db_bucket_id(db, name, &m.id) : -EIO;
    if (r < 0)
        goto out;
    *ret_id = m.id;
    lc_put(mc, key.ptr, key.len, &m, epoch);
    if (rr == REDIS_MISS) {
        buf_reset(&val);
        if (buf_printf(&val, "%" PRId64, m.id) == 0)
            redis_fill(kv, key.ptr, val.ptr);
    }
out:
    buf_release(&key);
    buf_release(&val);
    return r == -ENOENT ? -ENOENT : (r < 0 ? -EIO : 0);
}

static int object_lookup(struct meta_cache *mc, int64_t bucket_id, const char *name,
                         struct obj_meta *ret, bool *ret_cached, bool fresh)
{
    struct buf key, val;
    enum redis_result rr = REDIS_MISS;
    struct kv *kv = NULL;
    struct db *db;
    uint64_t epoch;
    bool cached = false;
    int r;

    buf_init(&key, KEY_MAX);
    buf_init(&val, KEY_MAX + 512);
    r = objcache_object_key(bucket_id, name, &key);
    if (r < 0)
        goto out;
    if (lc_get(mc, key.ptr, key.len, ret, &epoch) && !fresh) {
        metrics_inc(MC_CACHE_HITS_LOCAL, 1);
        cached = true;
        goto out;
    }
    kv = tctx_kv();
    if (!fresh) {
        rr = redis_get(kv, key.ptr, &val);
        if (rr == REDIS_HIT && meta_decode(val.ptr, ret) == 0 && ret->bucket_id == bucket_id) {
            metrics_inc(MC_CACHE_HITS_REDIS, 1);
            lc_put(mc, key.ptr, key.len, ret, epoch);
            cached = true;
            goto out;
        }
        if (rr == REDIS_HIT)
            rr = REDIS_MISS; /* undecodable: overwrite below */
    }
    metrics_inc(MC_CACHE_MISSES, 1);
    db = tctx_db();
    r = db ? meta_db_object_get(db, bucket_id, name, ret) : -EIO;
    if (r < 0)
        goto out;
    lc_put(mc, key.ptr, key.len, ret, epoch);
    if (rr == REDIS_MISS && !fresh) {
        buf_reset(&val);
        if (meta_encode(ret, &val) == 0)
            redis_fill(kv, key.ptr, val.ptr);
    }
out:
    if (ret_cached)
        *ret_cached = cached;
    buf_release(&key);
    buf_release(&val);
    return r == -ENOENT ? -ENOENT : (r < 0 ? -EIO : 0);
}

int meta_cache_object(struct meta_cache *mc, int64_t bucket_id, const char *name,
                      struct obj_meta *ret, bool *ret_cached)
{
    return object_lookup(mc, bucket_id, name, ret, ret_cached, false);
}

int meta_cache_object_fresh(struct meta_cache *mc, int64_t bucket_id, const char *name,
                            struct obj_meta *ret)
{
    return object_lookup(mc, bucket_id, name, ret, NULL, true);
}

static void invalidate_key(struct meta_cache *mc, const char *key)
{
    meta_cache_drop_local(mc, key);
    if (objcache_invalidate(tctx_kv(), key) < 0)
        janitor_invalidate(mc->janitor, key);
}

void meta_cache_mark_object(struct meta_cache *mc, int64_t bucket_id, const char *name,
                            const char *token)
{
    struct buf key;

    buf_init(&key, KEY_MAX);
    if (objcache_object_key(bucket_id, name, &key) == 0) {
        meta_cache_drop_local(mc, key.ptr);
        if (objcache_mark(tctx_kv(), key.ptr, token) < 0)
            janitor_invalidate(mc->janitor, key.ptr);
    }
    buf_release(&key);
}

void meta_cache_settle_object(struct meta_cache *mc, int64_t bucket_id, const char *name,
                              const char *token, const struct obj_meta *m)
{
    struct buf key, val;
    int r;

    buf_init(&key, KEY_MAX);
    buf_init(&val, KEY_MAX + 512);
    if (objcache_object_key(bucket_id, name, &key) < 0)
        goto out;
    /* not stored here: the settle's own PUBLISH comes back and would drop it anyway */
    meta_cache_drop_local(mc, key.ptr);
    r = meta_encode(m, &val) == 0 ? objcache_settle(tctx_kv(), key.ptr, token, val.ptr) : -EIO;
    if (r < 0 && objcache_invalidate(tctx_kv(), key.ptr) < 0)
        janitor_invalidate(mc->janitor, key.ptr);
out:
    buf_release(&key);
    buf_release(&val);
}

void meta_cache_invalidate_object(struct meta_cache *mc, int64_t bucket_id, const char *name)
{
    struct buf key;

    buf_init(&key, KEY_MAX);
    if (objcache_object_key(bucket_id, name, &key) == 0)
        invalidate_key(mc, key.ptr);
    buf_release(&key);
}

void meta_cache_invalidate_bucket(struct meta_cache *mc, const char *name)
{
    struct buf key;

    buf_init(&key, KEY_MAX);
    if (objcache_bucket_key(name, &key) == 0)
        invalidate_key(mc, key.ptr);
    buf_release(&key);
}
