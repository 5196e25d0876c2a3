/* dispatcher/metrics.c — request counters by method and status, latency histograms, byte and
 * event counters, and the Prometheus text exposition (with job queue lengths read on demand). */
#include "metrics.h"

#include "buf.h"
#include "db.h"
#include "jobs.h"
#include "kv.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[] = {"GET", "HEAD", "PUT", "DELETE", "MOVE", "POST", "other"};
#define N_METHODS (sizeof(method_names) / sizeof(method_names[0]))

static const unsigned status_codes[] = {200, 201, 204, 206, 304, 400, 404, 405,
                                        409, 411, 412, 413, 416, 500, 503, 0 /* other */};
#define N_STATUS (sizeof(status_codes) / sizeof(status_codes[0]))

/* Latency histogram bounds in microseconds (rendered in seconds); the last bucket is +Inf. */
static const uint64_t latency_bounds_us[] = {500,     1000,    2500,    5000,    10000,
                                             25000,   50000,   100000,  250000,  500000,
                                             1000000, 2500000, 5000000, 10000000};
#define N_BOUNDS (sizeof(latency_bounds_us) / sizeof(latency_bounds_us[0]))

static const struct {
    const char *name;
    const char *help;
} counter_info[MC__COUNT] = {
    [MC_BYTES_IN] = {"stf_dispatcher_bytes_in_total", "Request body bytes received."},
    [MC_BYTES_OUT] = {"stf_dispatcher_bytes_out_total", "Response body bytes sent."},
    [MC_CLUSTER_FALLBACKS] = {"stf_dispatcher_cluster_fallbacks_total",
                              "Writes stored on a cluster other than the first in hash order."},
    [MC_WRITE_ATTEMPTS_FAILED] = {"stf_dispatcher_write_attempts_failed_total",
                                  "Cluster write attempts that failed and moved on."},
    [MC_WRITES_UNAVAILABLE] = {"stf_dispatcher_writes_unavailable_total",
                               "Writes refused with 503 because no cluster could take them."},
    [MC_SPARE_FAILURES] = {"stf_dispatcher_spare_failures_total",
                           "Spare copies that failed and were queued for repair."},
    [MC_FAILOVER_READS] = {"stf_dispatcher_failover_reads_total",
                           "Reads that needed another copy than the first."},
    [MC_READS_UNAVAILABLE] = {"stf_dispatcher_reads_unavailable_total",
                              "Reads refused with 503 because no copy was reachable."},
    [MC_REPAIRS_QUEUED] = {"stf_dispatcher_repairs_queued_total", "repair_object jobs queued."},
    [MC_CLEANUPS_DEFERRED] = {"stf_dispatcher_cleanups_deferred_total",
                              "Copies of failed writes left to repaird (delete_files jobs)."},
    [MC_CACHE_HITS_LOCAL] = {"stf_dispatcher_meta_cache_local_hits_total",
                             "Metadata lookups answered by the in-process cache."},
    [MC_CACHE_HITS_REDIS] = {"stf_dispatcher_meta_cache_redis_hits_total",
                             "Metadata lookups answered by Redis."},
    [MC_CACHE_MISSES] = {"stf_dispatcher_meta_cache_misses_total",
                         "Metadata lookups that went to PostgreSQL."},
    [MC_TOPOLOGY_RELOADS] = {"stf_dispatcher_topology_reloads_total",
                             "Reloads of cluster and storage modes from PostgreSQL."},
    [MC_BODY_CACHE_HITS] = {"stf_dispatcher_body_cache_hits_total",
                            "Small object bodies served from the in-process cache."},
    [MC_CORRUPT_COPIES] = {"stf_dispatcher_corrupt_copies_total",
                           "Copies read whose bytes did not match the object's MD5."},
};

static _Atomic uint64_t counters[MC__COUNT];
static _Atomic int64_t gauges[MG__COUNT];
static _Atomic uint64_t requests[N_METHODS][N_STATUS];
static _Atomic uint64_t latency_buckets[N_METHODS][N_BOUNDS + 1];
static _Atomic uint64_t latency_sum_us[N_METHODS];
static _Atomic uint64_t latency_count[N_METHODS];

void metrics_inc(enum metrics_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

void metrics_gauge_add(enum metrics_gauge g, int64_t delta)
{
    atomic_fetch_add_explicit(&gauges[g], delta, memory_order_relaxed);
}

int64_t metrics_gauge_get(enum metrics_gauge g)
{
    return atomic_load_explicit(&gauges[g], memory_order_relaxed);
}

static size_t method_index(const char *method)
{
    for (size_t i = 0; i + 1 < N_METHODS; i++) {
        if (strcmp(method, method_names[i]) == 0)
            return i;
    }
    return N_METHODS - 1;
}

static size_t status_index(unsigned status)
{
    for (size_t i = 0; i + 1 < N_STATUS; i++) {
        if (status_codes[i] == status)
            return i;
    }
    return N_STATUS - 1;
}

void metrics_request(const char *method, unsigned status, uint64_t usec)
{
    size_t m = method_index(method), b = N_BOUNDS;

    atomic_fetch_add_explicit(&requests[m][status_index(status)], 1, memory_order_relaxed);
    for (size_t i = 0; i < N_BOUNDS; i++) {
        if (usec <= latency_bounds_us[i]) {
            b = i;
            break;
        }
    }
    atomic_fetch_add_explicit(&latency_buckets[m][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_sum_us[m], usec, memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_count[m], 1, memory_order_relaxed);
}

static uint64_t load(_Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static int render_requests(struct buf *out)
{
    int r = buf_puts(out, "# HELP stf_dispatcher_requests_total Requests by method and status.\n"
                          "# TYPE stf_dispatcher_requests_total counter\n");

    for (size_t m = 0; r == 0 && m < N_METHODS; m++) {
        for (size_t s = 0; r == 0 && s < N_STATUS; s++) {
            uint64_t v = load(&requests[m][s]);

            if (v == 0)
                continue;
            if (status_codes[s])
                r = buf_printf(
                    out, "stf_dispatcher_requests_total{method=\"%s\",status=\"%u\"} %" PRIu64 "\n",
                    method_names[m], status_codes[s], v);
            else
                r = buf_printf(out,
                               "stf_dispatcher_requests_total{method=\"%s\",status=\"other\"} "
                               "%" PRIu64 "\n",
                               method_names[m], v);
        }
    }
    return r;
}

static int render_latency(struct buf *out)
{
    int r = buf_puts(out, "# HELP stf_dispatcher_request_duration_seconds Request latency.\n"
                          "# TYPE stf_dispatcher_request_duration_seconds histogram\n");

    for (size_t m = 0; r == 0 && m < N_METHODS; m++) {
        uint64_t cum = 0, count = load(&latency_count[m]);

        if (count == 0)
            continue;
        for (size_t b = 0; r == 0 && b <= N_BOUNDS; b++) {
            cum += load(&latency_buckets[m][b]);
            if (b < N_BOUNDS)
                r = buf_printf(out,
                               "stf_dispatcher_request_duration_seconds_bucket{method=\"%s\","
                               "le=\"%g\"} %" PRIu64 "\n",
                               method_names[m], (double) latency_bounds_us[b] / 1e6, cum);
            else
                r = buf_printf(out,
                               "stf_dispatcher_request_duration_seconds_bucket{method=\"%s\","
                               "le=\"+Inf\"} %" PRIu64 "\n",
                               method_names[m], cum);
        }
        if (r == 0)
            r = buf_printf(
                out,
                "stf_dispatcher_request_duration_seconds_sum{method=\"%s\"} %.6f\n"
                "stf_dispatcher_request_duration_seconds_count{method=\"%s\"} %" PRIu64 "\n",
                method_names[m], (double) load(&latency_sum_us[m]) / 1e6, method_names[m], count);
    }
    return r;
}

/* Job counts by state from PostgreSQL (the durable queue) and the Redis stream length. */
static int render_queues(struct buf *out, struct db *db, struct kv *kv)
{
    static const char *const states[] = {"pending", "running", "failed"};
    int r = buf_puts(out, "# HELP stf_jobs Background jobs by state (PostgreSQL).\n"
                          "# TYPE stf_jobs gauge\n");

    for (size_t i = 0; r == 0 && db && i < sizeof(states) / sizeof(states[0]); i++) {
        const char *params[1] = {states[i]};
        int64_t n = 0;

        if (db_query_int64(db, "SELECT count(*) FROM jobs WHERE state = $1", 1, params, &n) == 0)
            r = buf_printf(out, "stf_jobs{state=\"%s\"} %" PRId64 "\n", states[i], n);
    }
    if (r == 0 && kv) {
        redisReply *rep = kv_commandf(kv, "XLEN %s", JOBS_STREAM);

        if (rep && rep->type == REDIS_REPLY_INTEGER)
            r = buf_printf(out,
                           "# HELP stf_jobs_stream_length Entries on the Redis job stream.\n"
                           "# TYPE stf_jobs_stream_length gauge\n"
                           "stf_jobs_stream_length %lld\n",
                           rep->integer);
        if (rep)
            freeReplyObject(rep);
    }
    return r;
}

int metrics_render(struct buf *out, struct db *db, struct kv *kv)
{
    int r = render_requests(out);

    if (r == 0)
        r = render_latency(out);
    for (size_t c = 0; r == 0 && c < MC__COUNT; c++)
        r = buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n",
                       counter_info[c].name, counter_info[c].help, counter_info[c].name,
                       counter_info[c].name, load(&counters[c]));
    if (r == 0)
        r = buf_printf(out,
                       "# HELP stf_dispatcher_inflight_requests Requests being served.\n"
                       "# TYPE stf_dispatcher_inflight_requests gauge\n"
                       "stf_dispatcher_inflight_requests %" PRId64 "\n"
                       "# HELP stf_dispatcher_connections Open client connections.\n"
                       "# TYPE stf_dispatcher_connections gauge\n"
                       "stf_dispatcher_connections %" PRId64 "\n",
                       metrics_gauge_get(MG_INFLIGHT), metrics_gauge_get(MG_CONNECTIONS));
    if (r == 0)
        r = render_queues(out, db, kv);
    return r;
}
