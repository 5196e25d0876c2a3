/* dispatcher/meta_cache.h — cached metadata lookups: an in-process cache (short TTL, dropped
 * on invalidation messages from other dispatchers), then Redis (objcache.h), then PostgreSQL.
 * A GET of a hot object therefore costs no PostgreSQL round trip. Writers invalidate after
 * COMMIT; when Redis is away the invalidation is retried by the janitor. */
#ifndef STF_DISP_META_CACHE_H
#define STF_DISP_META_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta.h"

struct janitor;
struct meta_cache;

struct meta_cache *meta_cache_new(struct janitor *j);
void meta_cache_free(struct meta_cache *mc);

/* Bucket name -> id. 0, -ENOENT, -EIO (PostgreSQL needed and unreachable). */
int meta_cache_bucket(struct meta_cache *mc, const char *name, int64_t *ret_id);
/* Object row. 0, -ENOENT, -EIO. *ret_cached tells whether it came from a cache (may be NULL). */
int meta_cache_object(struct meta_cache *mc, int64_t bucket_id, const char *name,
                      struct obj_meta *ret, bool *ret_cached);
/* Reads the object from PostgreSQL, bypassing (and refreshing) the caches. */
int meta_cache_object_fresh(struct meta_cache *mc, int64_t bucket_id, const char *name,
                            struct obj_meta *ret);

/* After a committed change: drop the entry here, in Redis and (via PUBLISH) in every other
 * dispatcher. */
void meta_cache_invalidate_object(struct meta_cache *mc, int64_t bucket_id, const char *name);
void meta_cache_invalidate_bucket(struct meta_cache *mc, const char *name);

/* A write-through of an object row (objcache.h): mark before the COMMIT that writes it (token
 * unique to that write, e.g. its internal name), settle after it with the committed row, which
 * is then stored in Redis unless another change of the name was announced meanwhile (then it
 * is invalidated like meta_cache_invalidate_object()). */
void meta_cache_mark_object(struct meta_cache *mc, int64_t bucket_id, const char *name,
                            const char *token);
void meta_cache_settle_object(struct meta_cache *mc, int64_t bucket_id, const char *name,
                              const char *token, const struct obj_meta *m);

/* From the notification thread: another process invalidated key (a Redis key name). */
void meta_cache_drop_local(struct meta_cache *mc, const char *key);
/* Drops every in-process entry (after missed notifications or a mode change). */
void meta_cache_clear_local(struct meta_cache *mc);

#endif
