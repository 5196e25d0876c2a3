/* dispatcher/notify.h — the Redis subscriber: "stf:modes" (any message: reload cluster and
 * storage modes now) and "stf:inval" (a metadata cache key another process invalidated).
 * An idle subscription stays connected; after an error it resubscribes with a backoff (0.1 s
 * doubling to 5 s) and then drops the in-process caches and reloads the topology, since
 * messages may have been missed meanwhile (the topology's periodic reload and the caches'
 * short TTLs cover the time away). */
#ifndef STF_DISP_NOTIFY_H
#define STF_DISP_NOTIFY_H

struct meta_cache;
struct topology;

#define NOTIFY_MODES_CHANNEL "stf:modes"

struct notify;

/* Starts the subscriber thread. Returns NULL on a malformed url (logged) or ENOMEM. */
struct notify *notify_new(const char *redis_url, struct topology *t, struct meta_cache *mc);
void notify_free(struct notify *n);

#endif
