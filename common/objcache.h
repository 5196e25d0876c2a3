/* common/objcache.h — the shared contract of the metadata cache in Redis: key names, the
 * value TTL, and invalidation (a short tombstone plus a PUBLISH on "stf:inval" so every
 * dispatcher drops its in-process copy). Whoever changes an objects/buckets row calls
 * objcache_invalidate() after COMMIT (the dispatcher; repaird when it moves an object). */
#ifndef STF_OBJCACHE_H
#define STF_OBJCACHE_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct kv;

#define OBJCACHE_CHANNEL "stf:inval"
#define OBJCACHE_TTL_S 15      /* a cached row lives at most this long */
#define OBJCACHE_TOMBSTONE_S 2 /* after an invalidation, nobody refills the key this long */
#define OBJCACHE_TOMBSTONE "-"

/* "stf:o:<bucket_id>:<name>" and "stf:b:<name>". Return 0 or -ENOMEM/-E2BIG. */
int objcache_object_key(int64_t bucket_id, const char *name, struct buf *out);
int objcache_bucket_key(const char *name, struct buf *out);

/* Replaces key by a tombstone (readers then go to PostgreSQL and refill only with SET NX
 * after it expires) and publishes the key on OBJCACHE_CHANNEL. Returns 0, or -EIO when Redis
 * could not be reached: the caller must retry later. */
int objcache_invalidate(struct kv *kv, const char *key);

#endif
