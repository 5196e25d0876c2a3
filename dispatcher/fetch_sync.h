/* dispatcher/fetch_sync.h — the fast read path for small objects: the copies are tried in order
 * right on the HTTP server's thread, over a per-thread keep-alive connection, which saves two
 * thread hand-offs per request. A copy that is slow (not refused, not failing: just slow) is
 * remembered for a while, and reads that would start there take the asynchronous path
 * (upstream_get.c) instead, so a hung storage cannot stall a server thread for long. */
#ifndef STF_DISP_FETCH_SYNC_H
#define STF_DISP_FETCH_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FETCH_SYNC_MAX (64 * 1024) /* bodies up to this size may take this path */

/* True if the storage recently answered too slowly for the fast path. */
bool fetch_sync_avoid(int64_t storage_id);

/* rid: the request id (X-Request-Id to storaged, logs). Reads bytes [off, off + len) into buf (len
 * bytes) from urls[0..n) in order (ranged: send a Range header). Returns 0 when urls[*ret_next]
 * delivered them all; -EAGAIN when a copy was slow (the caller continues asynchronously from
 * urls[*ret_next]); -ENOENT when no copy is left. *ret_failed / *ret_not_found count the copies
 * that failed / answered 404. */
int fetch_sync(const char *rid, const char *const *urls, const int64_t *ids, size_t n, uint64_t off,
               uint64_t len, bool ranged, char *buf, size_t *ret_next, unsigned *ret_failed,
               unsigned *ret_not_found);

/* Frees the calling thread's handle (threads exit through it too). */
void fetch_sync_thread_free(void);

#endif
