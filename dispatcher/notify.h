/* dispatcher/notify.h — the Redis subscriber: "stf:modes" (any message: reload cluster and
 * storage modes now) and "stf:inval" (a metadata cache key another process invalidated).
 * While Redis is away it reconnects every second; the topology's own periodic reload and the
 * cache's short TTLs cover what it misses. */
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
