/* dispatcher/body_cache.h — an in-process cache of the bytes of small, hot objects, keyed by
 * internal name. An internal name is never reused and its bytes never change, so an entry can
 * never be stale: which version a GET serves is decided by the metadata lookup, and an old
 * version's entry simply ages out. Entries are filled only with bytes whose MD5 matched the
 * object's ETag. Bounded in bytes (LRU per stripe). */
#ifndef STF_DISP_BODY_CACHE_H
#define STF_DISP_BODY_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BODY_CACHE_OBJECT_MAX (64 * 1024)            /* larger objects are never cached */
#define BODY_CACHE_BYTES ((size_t) 64 * 1024 * 1024) /* total budget */

struct body_cache;

struct body_cache *body_cache_new(size_t budget);
void body_cache_free(struct body_cache *bc);

/* Copies bytes [off, off + len) of the cached object into a new buffer (caller free()s);
 * NULL when it is not cached (or its size is not size). */
char *body_cache_get(struct body_cache *bc, const char *internal_name, uint64_t size, uint64_t off,
                     uint64_t len);
/* Stores a whole object (copied) if its MD5 is etag_hex. Returns false on a mismatch (the
 * copy that was read is corrupt). */
bool body_cache_put(struct body_cache *bc, const char *internal_name, const char *etag_hex,
                    const char *data, size_t len);

#endif
