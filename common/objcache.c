/* common/objcache.c — Redis key names and invalidation for the object/bucket metadata cache. */
#include "objcache.h"

#include "buf.h"
#include "kv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

int objcache_object_key(int64_t bucket_id, const char *name, struct buf *out)
{
    return buf_printf(out, "stf:o:%" PRId64 ":%s", bucket_id, name);
}

int objcache_bucket_key(const char *name, struct buf *out)
{
    return buf_printf(out, "stf:b:%s", name);
}

int objcache_invalidate(struct kv *kv, const char *key)
{
    char ttl[16];
    const char *set[5] = {"SET", key, OBJCACHE_TOMBSTONE, "EX", ttl};
    redisReply *rep;

    if (!kv)
        return -EIO;
    snprintf(ttl, sizeof(ttl), "%d", OBJCACHE_TOMBSTONE_S);
    rep = kv_command(kv, 5, set, NULL);
    if (!rep)
        return -EIO;
    freeReplyObject(rep);
    return kv_publish(kv, OBJCACHE_CHANNEL, key) < 0 ? -EIO : 0;
}
