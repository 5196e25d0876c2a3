/* dispatcher/metrics.h — the dispatcher's counters (lock-free atomics) and their rendering as
 * Prometheus text for GET /_metrics. */
#ifndef STF_DISP_METRICS_H
#define STF_DISP_METRICS_H

#include <stdint.h>

struct buf;
struct db;
struct kv;

enum metrics_counter {
    MC_BYTES_IN = 0,          /* request body bytes received from clients */
    MC_BYTES_OUT,             /* response body bytes sent to clients */
    MC_CLUSTER_FALLBACKS,     /* writes stored on a cluster other than the first in hash order */
    MC_WRITE_ATTEMPTS_FAILED, /* cluster attempts that failed (and moved on) */
    MC_WRITES_UNAVAILABLE,    /* writes answered 503: no cluster could take them */
    MC_SPARE_FAILURES,        /* spare copies that failed and were queued for repair */
    MC_FAILOVER_READS,        /* reads that needed another copy than the first */
    MC_READS_UNAVAILABLE,     /* reads answered 503: no copy reachable */
    MC_REPAIRS_QUEUED,        /* repair_object jobs queued */
    MC_CLEANUPS_DEFERRED,     /* failed-attempt copies left to repaird (delete_files jobs) */
    MC_CACHE_HITS_LOCAL,      /* metadata found in the in-process cache */
    MC_CACHE_HITS_REDIS,      /* metadata found in Redis */
    MC_CACHE_MISSES,          /* metadata read from PostgreSQL */
    MC_TOPOLOGY_RELOADS,      /* cluster/storage modes reloaded from PostgreSQL */
    MC_BODY_CACHE_HITS,       /* small object bodies served from memory */
    MC_CORRUPT_COPIES,        /* copies whose bytes did not match the object's MD5 */
    MC__COUNT
};

enum metrics_gauge { MG_INFLIGHT = 0, MG_CONNECTIONS, MG__COUNT };

void metrics_inc(enum metrics_counter c, uint64_t n);
void metrics_gauge_add(enum metrics_gauge g, int64_t delta);
int64_t metrics_gauge_get(enum metrics_gauge g);

/* Records one finished request: method as sent, final status, duration in microseconds. */
void metrics_request(const char *method, unsigned status, uint64_t usec);

/* Renders everything as Prometheus text into out. Queue lengths are read from PostgreSQL
 * (db, may be NULL) and Redis (kv, may be NULL) at that moment. Returns 0 or -ENOMEM/-E2BIG. */
int metrics_render(struct buf *out, struct db *db, struct kv *kv);

#endif
