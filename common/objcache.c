/* common/objcache.c — Redis key names, invalidation and write-through of the object/bucket
 * metadata cache; both run as Lua scripts (EVALSHA, loaded on first use) so that the value and
 * its PUBLISH cost one round trip. */
#include "objcache.h"

#include "buf.h"
#include "kv.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* KEYS[1] key; ARGV: tombstone value, its TTL, channel */
static const char mark_lua[] = "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
                               "return redis.call('PUBLISH', ARGV[3], KEYS[1])\n";

/* KEYS[1] key; ARGV: our tombstone, value, value TTL, plain tombstone, its TTL, channel */
static const char settle_lua[] = "local stored = 0\n"
                                 "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                 "  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
                                 "  stored = 1\n"
                                 "else\n"
                                 "  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])\n"
                                 "end\n"
                                 "redis.call('PUBLISH', ARGV[6], KEYS[1])\n"
                                 "return stored\n";

struct script {
    const char *text;
    char sha[41];
};

static struct script mark_script = {mark_lua, ""}, settle_script = {settle_lua, ""};
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha1_hex(struct script *s)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(s->text, strlen(s->text), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return; /* sha stays empty: EVAL is used */
    for (unsigned int i = 0; i < n; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = '\0';
}

static void scripts_init(void)
{
    sha1_hex(&mark_script);
    sha1_hex(&settle_script);
}

/* After Redis answered a script with an error (scripting disabled, or denied by an ACL),
 * scripts are not tried again for this long: invalidations use two plain commands meanwhile. */
#define SCRIPTS_RECHECK_S 60
static _Atomic int64_t scripts_refused_until; /* monotonic seconds */

static int64_t mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec;
}

static void note_scripts_refused(struct kv *kv)
{
    static atomic_bool warned;

    atomic_store(&scripts_refused_until, mono_s() + SCRIPTS_RECHECK_S);
    if (!atomic_exchange(&warned, true))
        log_warn("event=redis_scripts_refused err=\"%s\" hint=\"allow EVAL/EVALSHA for the "
                 "write-through of uploads; invalidations use SET and PUBLISH meanwhile\"",
                 kv_error(kv));
}

/* Runs s with one key and nargs arguments: EVALSHA, or EVAL when Redis does not have the
 * script yet (which also caches it there). Returns the reply, or NULL: Redis away, or (with
 * *refused set) scripts refused now or within the last SCRIPTS_RECHECK_S. */
static redisReply *run_script(struct kv *kv, struct script *s, const char *key, int nargs,
                              const char **args, bool *refused)
{
    const char *argv[12];
    redisReply *rep = NULL;

    *refused = false;
    if (!kv || nargs > 8)
        return NULL;
    if (mono_s() < atomic_load(&scripts_refused_until)) {
        *refused = true;
        return NULL;
    }
    pthread_once(&sha_once, scripts_init);
    argv[2] = "1";
    argv[3] = key;
    memcpy(argv + 4, args, (size_t) nargs * sizeof(*args));
    if (s->sha[0]) {
        argv[0] = "EVALSHA";
        argv[1] = s->sha;
        rep = kv_command(kv, nargs + 4, argv, NULL);
        if (!rep && kv_ok(kv) && strncmp(kv_error(kv), "NOSCRIPT", 8) == 0) {
            argv[0] = "EVAL";
            argv[1] = s->text;
            rep = kv_command(kv, nargs + 4, argv, NULL);
        }
    } else {
        argv[0] = "EVAL";
        argv[1] = s->text;
        rep = kv_command(kv, nargs + 4, argv, NULL);
    }
    if (!rep && kv_ok(kv)) {
        note_scripts_refused(kv);
        *refused = true;
    }
    return rep;
}

int objcache_object_key(int64_t bucket_id, const char *name, struct buf *out)
{
    return buf_printf(out, "stf:o:%" PRId64 ":%s", bucket_id, name);
}

int objcache_bucket_key(const char *name, struct buf *out)
{
    return buf_printf(out, "stf:b:%s", name);
}

/* The same as the mark script, with two plain commands (scripts refused). */
static int put_tombstone_plain(struct kv *kv, const char *key, const char *tombstone,
                               const char *ttl)
{
    const char *set[5] = {"SET", key, tombstone, "EX", ttl};
    redisReply *rep = kv_command(kv, 5, set, NULL);

    if (!rep)
        return -EIO;
    freeReplyObject(rep);
    return kv_publish(kv, OBJCACHE_CHANNEL, key) < 0 ? -EIO : 0;
}

/* Writes tombstone (OBJCACHE_TOMBSTONE_S) under key and publishes key. */
static int put_tombstone(struct kv *kv, const char *key, const char *tombstone)
{
    char ttl[16];
    const char *args[3] = {tombstone, ttl, OBJCACHE_CHANNEL};
    redisReply *rep;
    bool refused;

    snprintf(ttl, sizeof(ttl), "%d", OBJCACHE_TOMBSTONE_S);
    rep = run_script(kv, &mark_script, key, 3, args, &refused);
    if (!rep)
        return refused ? put_tombstone_plain(kv, key, tombstone, ttl) : -EIO;
    freeReplyObject(rep);
    return 0;
}

int objcache_invalidate(struct kv *kv, const char *key)
{
    return put_tombstone(kv, key, OBJCACHE_TOMBSTONE);
}

/* "-" token into out (OBJCACHE_TOKEN_MAX + 2 bytes). */
static int token_tombstone(const char *token, char *out)
{
    size_t n = token ? strlen(token) : 0;

    if (n == 0 || n > OBJCACHE_TOKEN_MAX)
        return -EINVAL;
    out[0] = OBJCACHE_TOMBSTONE[0];
    memcpy(out + 1, token, n + 1);
    return 0;
}

int objcache_mark(struct kv *kv, const char *key, const char *token)
{
    char mine[OBJCACHE_TOKEN_MAX + 2];

    if (token_tombstone(token, mine) < 0)
        return -EINVAL;
    return put_tombstone(kv, key, mine);
}

int objcache_settle(struct kv *kv, const char *key, const char *token, const char *value)
{
    char mine[OBJCACHE_TOKEN_MAX + 2], ttl[16], tomb_ttl[16];
    const char *args[6] = {mine, value, ttl, OBJCACHE_TOMBSTONE, tomb_ttl, OBJCACHE_CHANNEL};
    redisReply *rep;
    bool refused;
    int r;

    if (token_tombstone(token, mine) < 0 || !value || value[0] == OBJCACHE_TOMBSTONE[0])
        return -EINVAL;
    snprintf(ttl, sizeof(ttl), "%d", OBJCACHE_TTL_S);
    snprintf(tomb_ttl, sizeof(tomb_ttl), "%d", OBJCACHE_TOMBSTONE_S);
    rep = run_script(kv, &settle_script, key, 6, args, &refused);
    if (!rep && refused) /* no write-through: a plain tombstone */
        return put_tombstone_plain(kv, key, OBJCACHE_TOMBSTONE, tomb_ttl);
    if (!rep)
        return -EIO;
    r = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1 ? 1 : 0;
    freeReplyObject(rep);
    return r;
}
