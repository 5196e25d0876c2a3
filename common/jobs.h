/* common/jobs.h — the background-work contract between dispatcher/clusterctl and repaird.
 * PostgreSQL's jobs table is the durable record; the Redis stream "stf:jobs" (consumer group
 * "repaird", one field "id" = jobs.id) is the fast path. A job is recorded in PostgreSQL
 * first, then announced on Redis; repaird re-announces pending jobs it finds in PostgreSQL
 * (e.g. after Redis was away), and claims a job with a lease row-update so two repaird never
 * run the same job at once.
 *
 * Kinds and payloads (jsonb):
 *   delete_files     {"cluster_id": N, "internal_name": "..."}   remove one object's files from
 *                    every storage of the cluster (down ones: retried until done)
 *   repair_object    {"object_id": N}                            make every rw/ro/spare copy good
 *   delete_bucket    {"bucket_id": N}                            purge a deleted bucket's objects
 *   recover_storage  {"storage_id": N, "from_storage_id": N}     whole-disk copy + narrow recovery
 *   rebalance / verify / scrub                                    see issue texts
 */
#ifndef STF_JOBS_H
#define STF_JOBS_H

#include <stdint.h>

struct db;
struct kv;

#define JOBS_STREAM "stf:jobs"
#define JOBS_GROUP "repaird"

/* Inserts a pending job (kind, payload JSON) and announces it on Redis when kv is non-NULL
 * and reachable (a Redis failure is not an error: the row is the record).
 * Returns 0 and sets *ret_id (may be NULL), or -EIO when the row could not be written.
 * Inside a caller's transaction, the caller must call jobs_announce() after COMMIT instead. */
int jobs_enqueue(struct db *db, struct kv *kv, const char *kind, const char *payload_json,
                 int64_t *ret_id);

/* Inserts the row only (for use inside a caller's transaction). */
int jobs_insert(struct db *db, const char *kind, const char *payload_json, int64_t *ret_id);

/* Announces an already committed job id on Redis. Best effort; returns 0 or -EIO. */
int jobs_announce(struct kv *kv, int64_t id);

#endif
