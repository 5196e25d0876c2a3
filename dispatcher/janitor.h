/* dispatcher/janitor.h — deferred work handed off by request paths that must not block or
 * that may run where no database handle is at hand: recording jobs (repairs, file deletions),
 * removing the copies of a failed write attempt, and cache invalidations that Redis could not
 * take. One thread with its own PostgreSQL and Redis handles; it retries until done. */
#ifndef STF_DISP_JANITOR_H
#define STF_DISP_JANITOR_H

#include <stddef.h>
#include <stdint.h>

struct janitor;

struct janitor *janitor_new(void);
/* Stops the thread after trying for up to drain_ms to finish what is queued (jobs not yet
 * recorded are logged as lost), then frees (NULL-safe). */
void janitor_free(struct janitor *j, unsigned drain_ms);

/* Records a job (jobs_enqueue: PostgreSQL row, then Redis); retried while PostgreSQL is away.
 * kind and payload are copied. */
void janitor_job(struct janitor *j, const char *kind, const char *payload_json);

/* Removes the copies a failed write attempt may have left: DELETE internal_name on each of the
 * n storage uris; if any of them cannot confirm (not 2xx/404), records a delete_files job for
 * (cluster_id, internal_name) so repaird finishes it. Everything is copied. */
void janitor_cleanup(struct janitor *j, int64_t cluster_id, const char *internal_name,
                     const char *const *uris, size_t n);

/* Retries a metadata cache invalidation (objcache_invalidate) until Redis takes it, or until
 * the cached entry would have expired anyway (OBJCACHE_TTL_S). key is copied. */
void janitor_invalidate(struct janitor *j, const char *key);

/* Number of tasks waiting (for /_health and metrics). */
size_t janitor_backlog(struct janitor *j);

#endif
