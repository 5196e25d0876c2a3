/* common/objcache.h — the shared contract of the metadata cache in Redis: key names, the
 * value TTL, and invalidation (a short tombstone plus a PUBLISH on "stf:inval" so every
 * dispatcher drops its in-process copy). Whoever changes an objects/buckets row calls
 * objcache_invalidate() after COMMIT (the dispatcher; repaird when it moves an object).
 *
 * A writer that knows the row it commits may instead store it (write-through), so that the
 * first read after an upload needs no PostgreSQL: objcache_mark() before the COMMIT writes a
 * tombstone of its own ("-" TOKEN), objcache_settle() after it stores the row only if that
 * tombstone is still there. Every other writer of the key replaces the tombstone after its own
 * COMMIT, so a token still in place means no change committed after ours has been announced,
 * and a later one will replace the stored row before its writer answers. Readers fill only
 * with SET NX, so they never replace a tombstone. */
#ifndef STF_OBJCACHE_H
#define STF_OBJCACHE_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct kv;

#define OBJCACHE_CHANNEL "stf:inval"
#define OBJCACHE_TTL_S 15      /* a cached row lives at most this long */
#define OBJCACHE_TOMBSTONE_S 2 /* after an invalidation, nobody refills the key this long */
#define OBJCACHE_TOMBSTONE "-" /* a value starting with it is a tombstone */
#define OBJCACHE_TOKEN_MAX 64

/* "stf:o:<bucket_id>:<name>" and "stf:b:<name>". Return 0 or -ENOMEM/-E2BIG. */
int objcache_object_key(int64_t bucket_id, const char *name, struct buf *out);
int objcache_bucket_key(const char *name, struct buf *out);

/* Replaces key by a tombstone (readers then go to PostgreSQL and refill only with SET NX
 * after it expires) and publishes the key on OBJCACHE_CHANNEL, in one round trip (a script;
 * SET and PUBLISH when Redis refuses scripts). Returns 0, or -EIO when Redis could not be
 * reached: the caller must retry later. */
int objcache_invalidate(struct kv *kv, const char *key);

/* Before a COMMIT that will store value under key: like objcache_invalidate(), with the
 * tombstone "-" token (token: 1..OBJCACHE_TOKEN_MAX characters, unique to this write, e.g. the
 * new version's internal name). Returns 0, -EINVAL (bad token) or -EIO. */
int objcache_mark(struct kv *kv, const char *key, const char *token);

/* After that COMMIT: stores value (OBJCACHE_TTL_S) if key still holds the tombstone of token,
 * else (or when Redis refuses scripts) leaves a plain tombstone; publishes key either way; one
 * round trip. Returns 1 (stored), 0 (tombstone), -EINVAL or -EIO (the caller must then
 * invalidate later, as for objcache_invalidate()). */
int objcache_settle(struct kv *kv, const char *key, const char *token, const char *value);

#endif
