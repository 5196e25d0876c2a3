/* repaird/job_sweep.c — the periodic sweep that makes PostgreSQL the record of the queue: it fails
 * jobs out of attempts, releases dead leases, re-announces what the stream lost, takes over
 * entries of dead consumers, and deletes old done rows and idle consumers. */
#include "job_queue.h"
#include "job_queue_int.h"

#include "db.h"
#include "jobs.h"
#include "kv.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JQ_ANNOUNCE_BATCH 500    /* due jobs re-announced per statement */
#define JQ_ANNOUNCE_ROUNDS 40    /* statements per sweep (20,000 jobs) */
#define JQ_AUTOCLAIM_COUNT "100" /* stream entries taken over per XAUTOCLAIM */
#define JQ_AUTOCLAIM_ROUNDS 10
#define JQ_CONSUMER_IDLE_MS 3600000 /* a consumer idle this long without entries is removed */
#define JQ_HOUSEKEEP_EVERY 30       /* sweeps between deletions of done rows and idle consumers */

/* Announces the job ids in column 0 of res; returns how many went out. */
static unsigned jq_announce_rows(struct jq *q, PGresult *res)
{
    unsigned n = 0;

    for (int i = 0; i < PQntuples(res); i++) {
        int64_t id;

        if (jq_parse_i64(PQgetvalue(res, i, 0), (size_t) PQgetlength(res, i, 0), &id) < 0)
            continue;
        if (jobs_announce(q->kv, id) == 0)
            n++;
    }
    return n;
}

/* Pending jobs that ran out of attempts (e.g. after max_attempts was lowered) become failed. */
static void jq_sweep_exhausted(struct jq *q)
{
    char maxs[16];
    const char *params[] = {maxs};

    snprintf(maxs, sizeof(maxs), "%u", q->sh->opts.max_attempts);
    if (db_run(q->db,
               "UPDATE jobs SET state = 'failed', updated_at = now(), "
               "  last_error = COALESCE(last_error || ' ', '') || '(gave up after ' || attempts "
               "  || ' attempts)' WHERE state = 'pending' AND attempts >= $1::int",
               1, params) < 0)
        log_warn("event=job_sweep_error step=exhausted err=\"%s\"", db_error(q->db));
}

#define JQ_RELEASE_SET                                                                             \
    "SET state = CASE WHEN attempts >= $1::int THEN 'failed' ELSE 'pending' END, "                 \
    "  last_error = 'lease of ' || COALESCE(locked_by, '?') || ' ' || $2, "                        \
    "  run_after = now() + LEAST($4::bigint, $3::bigint * power(2, GREATEST(attempts - 1, 0))) "   \
    "  * interval '1 millisecond', "                                                               \
    "  locked_by = NULL, locked_until = NULL, updated_at = now() "

/* Leases that ran out: the holder died or stalled. The job is pending again (after a backoff,
 * since a job that kills repaird must not do so in a tight loop) or failed when out of attempts. */
static void jq_sweep_expired(struct jq *q)
{
    char maxs[16], base[24], maxd[24];
    const char *params[] = {maxs, "expired: repaird stopped or stalled during the run", base, maxd};
    PGresult *res;

    snprintf(maxs, sizeof(maxs), "%u", q->sh->opts.max_attempts);
    jq_fmt_u64(base, sizeof(base), q->sh->opts.retry_base_ms);
    jq_fmt_u64(maxd, sizeof(maxd), q->sh->opts.retry_max_ms);
    res = db_exec(q->db,
                  "WITH r AS (SELECT id AS rid, locked_by AS holder FROM jobs "
                  "  WHERE state = 'running' AND locked_until < now() FOR UPDATE SKIP LOCKED) "
                  "UPDATE jobs " JQ_RELEASE_SET "FROM r WHERE jobs.id = r.rid "
                  "RETURNING jobs.id, jobs.state, r.holder",
                  4, params);
    if (!res) {
        log_warn("event=job_sweep_error step=expired err=\"%s\"", db_error(q->db));
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        log_warn("event=job_lease_expired id=%s holder=%s state=%s", PQgetvalue(res, i, 0),
                 PQgetvalue(res, i, 2), PQgetvalue(res, i, 1));
    PQclear(res);
}

/* Live leases held by repaird processes of this host that are gone (kill -9, crash): released
 * at once instead of after the lease runs out. */
static void jq_sweep_dead_local(struct jq *q)
{
    char prefix[80], maxs[16], base[24], maxd[24];
    const char *sel[] = {prefix, q->sh->owner};
    PGresult *res;

    if (lease_owner_host_prefix(q->sh->owner, prefix, sizeof(prefix)) < 0)
        return;
    res = db_exec(q->db,
                  "SELECT id, locked_by FROM jobs WHERE state = 'running' "
                  "AND locked_until >= now() AND left(locked_by, length($1)) = $1 "
                  "AND locked_by <> $2 LIMIT 1000",
                  2, sel);
    if (!res)
        return;
    snprintf(maxs, sizeof(maxs), "%u", q->sh->opts.max_attempts);
    jq_fmt_u64(base, sizeof(base), q->sh->opts.retry_base_ms);
    jq_fmt_u64(maxd, sizeof(maxd), q->sh->opts.retry_max_ms);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0), *holder = PQgetvalue(res, i, 1);
        const char *params[] = {maxs,  "released: that repaird process is gone", base, maxd, id,
                                holder};
        PGresult *up;

        if (!lease_owner_is_dead(q->sh->owner, holder))
            continue;
        up = db_exec(q->db,
                     "UPDATE jobs " JQ_RELEASE_SET
                     "WHERE id = $5::bigint AND state = 'running' AND locked_by = $6 "
                     "RETURNING id, state",
                     6, params);
        if (up && PQntuples(up) == 1)
            log_warn("event=job_lease_released id=%s holder=%s reason=process_gone state=%s", id,
                     holder, PQgetvalue(up, 0, 1));
        PQclear(up);
    }
    PQclear(res);
}

/* True when the group has read every entry ever added (nothing waits unread in the stream). */
static bool jq_stream_drained(struct jq *q)
{
    const char *sargv[] = {"XINFO", "STREAM", JOBS_STREAM};
    const char *gargv[] = {"XINFO", "GROUPS", JOBS_STREAM};
    redisReply *s = NULL, *g = NULL;
    const redisReply *last, *delivered = NULL;
    bool drained = false;

    s = kv_command(q->kv, 3, sargv, NULL);
    g = s ? kv_command(q->kv, 3, gargv, NULL) : NULL;
    if (!s || !g || g->type != REDIS_REPLY_ARRAY)
        goto out;
    last = jq_map_get(s, "last-generated-id");
    for (size_t i = 0; i < g->elements; i++) {
        const redisReply *name = jq_map_get(g->element[i], "name");

        if (name && name->type == REDIS_REPLY_STRING && strcmp(name->str, JOBS_GROUP) == 0)
            delivered = jq_map_get(g->element[i], "last-delivered-id");
    }
    drained = last && delivered && last->type == REDIS_REPLY_STRING &&
              delivered->type == REDIS_REPLY_STRING && strcmp(last->str, delivered->str) == 0;
out:
    freeReplyObject(s);
    freeReplyObject(g);
    return drained;
}

/* Announces due pending jobs that were not announced since they became due (a retry whose
 * backoff passed, a released lease), that sat untouched for stale_ms (the announcement was lost:
 * Redis away or restarted, the stream trimmed), or all of them after the group was recreated.
 * updated_at records the announcement, so the next sweep does not repeat it. */
static void jq_sweep_announce(struct jq *q)
{
    const struct jq_opts *o = &q->sh->opts;
    bool all = atomic_exchange(&q->sh->reannounce_all, false);
    char stale[24], batch[16], cutoff[64];
    const char *params[] = {cutoff, batch};
    unsigned total = 0;
    PGresult *res = NULL;
    int rows;

    /* all: every due job not announced since this sweep began */
    jq_fmt_u64(stale, sizeof(stale),
               all                    ? 0
               : jq_stream_drained(q) ? o->stale_ms
                                      : o->stale_max_ms);
    params[0] = stale;
    res = db_exec(q->db, "SELECT (now() - $1::bigint * interval '1 millisecond')::text", 1, params);
    if (!res || PQntuples(res) != 1 || (size_t) PQgetlength(res, 0, 0) >= sizeof(cutoff))
        goto fail;
    memcpy(cutoff, PQgetvalue(res, 0, 0), (size_t) PQgetlength(res, 0, 0) + 1);
    PQclear(res);
    params[0] = cutoff;
    snprintf(batch, sizeof(batch), "%d", JQ_ANNOUNCE_BATCH);
    for (int round = 0; round < JQ_ANNOUNCE_ROUNDS; round++) {
        /* one statement, committed before the entries go out: a worker reading an entry
         * finds the row as it is */
        res = db_exec(q->db,
                      "UPDATE jobs SET updated_at = clock_timestamp() WHERE id IN ("
                      "  SELECT id FROM jobs WHERE state = 'pending' AND run_after <= now() AND "
                      "  (updated_at < run_after OR updated_at < $1::timestamptz) "
                      "  ORDER BY run_after, id LIMIT $2::int FOR UPDATE SKIP LOCKED) "
                      "RETURNING id",
                      2, params);
        if (!res)
            goto fail;
        rows = PQntuples(res);
        total += jq_announce_rows(q, res);
        PQclear(res);
        if (rows < JQ_ANNOUNCE_BATCH)
            break;
    }
    if (total > 0)
        log_info("event=jobs_announced count=%u reason=%s", total, all ? "group_created" : "due");
    return;
fail:
    PQclear(res);
    if (all)
        atomic_store(&q->sh->reannounce_all, true);
    log_warn("event=job_sweep_error step=announce err=\"%s\"", db_error(q->db));
}

/* Takes over stream entries that sat unacknowledged for a lease with a consumer (usually one
 * that died between reading and claiming) and hands their jobs on with a fresh entry. */
static void jq_sweep_autoclaim(struct jq *q)
{
    char idle[24], cursor[64] = "0-0";
    const char *argv[] = {"XAUTOCLAIM", JOBS_STREAM, JOBS_GROUP, q->sh->owner,
                          idle,         cursor,      "COUNT",    JQ_AUTOCLAIM_COUNT};
    unsigned handed = 0;

    jq_fmt_u64(idle, sizeof(idle), q->sh->opts.lease_ms);
    for (int round = 0; round < JQ_AUTOCLAIM_ROUNDS; round++) {
        redisReply *rep = kv_command(q->kv, 8, argv, NULL);
        const redisReply *entries;

        if (!rep)
            return;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= sizeof(cursor)) {
            freeReplyObject(rep);
            return;
        }
        memcpy(cursor, rep->element[0]->str, rep->element[0]->len + 1);
        entries = rep->element[1];
        for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
            char entry[64], ids[24];
            const char *params[] = {ids};
            int64_t id;
            PGresult *res;

            if (jq_entry_job_id(entries->element[i], &id, entry, sizeof(entry)) < 0)
                continue;
            jq_fmt_i64(ids, sizeof(ids), id);
            res =
                db_exec(q->db, "SELECT 1 FROM jobs WHERE id = $1 AND state = 'pending'", 1, params);
            if (!res)
                continue; /* keep the entry: PostgreSQL is away */
            if (PQntuples(res) == 1 && jobs_announce(q->kv, id) == 0)
                handed++;
            PQclear(res);
            jq_ack(q, entry);
        }
        freeReplyObject(rep);
        if (strcmp(cursor, "0-0") == 0)
            break;
    }
    if (handed > 0)
        log_info("event=job_entries_reclaimed count=%u", handed);
}

/* Removes consumers (dead repaird processes) that hold no entries and were idle for an hour. */
static void jq_sweep_consumers(struct jq *q)
{
    const char *argv[] = {"XINFO", "CONSUMERS", JOBS_STREAM, JOBS_GROUP};
    redisReply *rep = kv_command(q->kv, 4, argv, NULL);

    if (!rep)
        return;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *name = jq_map_get(rep->element[i], "name");
        const redisReply *pending = jq_map_get(rep->element[i], "pending");
        const redisReply *idle = jq_map_get(rep->element[i], "idle");

        if (!name || name->type != REDIS_REPLY_STRING || !pending ||
            pending->type != REDIS_REPLY_INTEGER || !idle || idle->type != REDIS_REPLY_INTEGER)
            continue;
        if (pending->integer == 0 && idle->integer > JQ_CONSUMER_IDLE_MS &&
            strcmp(name->str, q->sh->owner) != 0) {
            const char *del[] = {"XGROUP", "DELCONSUMER", JOBS_STREAM, JOBS_GROUP, name->str};
            redisReply *d = kv_command(q->kv, 5, del, NULL);

            freeReplyObject(d);
        }
    }
    freeReplyObject(rep);
}

static void jq_sweep_done(struct jq *q)
{
    char keep[24];
    const char *params[] = {keep};

    jq_fmt_u64(keep, sizeof(keep), q->sh->opts.done_keep_ms);
    if (db_run(q->db,
               /* delete_files records are the narrow recovery's view of what was removed
                * while a disk copy ran: keep those of any open recover_storage job */
               "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'done' "
               "AND updated_at < now() - $1::bigint * interval '1 millisecond' "
               "AND NOT (kind = 'delete_files' AND created_at >= COALESCE((SELECT "
               "min(created_at) - interval '5 minutes' FROM jobs WHERE kind = 'recover_storage' "
               "AND state IN ('pending', 'running', 'failed')), 'infinity')) LIMIT 10000)",
               1, params) < 0)
        log_warn("event=job_sweep_error step=done err=\"%s\"", db_error(q->db));
}

void jq_sweep(struct jq *q)
{
    bool redis_up;

    jq_sweep_exhausted(q);
    jq_sweep_expired(q);
    jq_sweep_dead_local(q);
    redis_up = jq_ensure_group(q) >= 0;
    if (redis_up) {
        jq_sweep_announce(q);
        jq_sweep_autoclaim(q);
    }
    if (q->sweeps++ % JQ_HOUSEKEEP_EVERY == 0) {
        jq_sweep_done(q);
        if (redis_up)
            jq_sweep_consumers(q);
    }
}
