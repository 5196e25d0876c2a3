/* repaird/job_queue.c — job ids from the Redis stream (consumer group "repaird"), leases on the
 * PostgreSQL row, outcomes with backoff, and the sweep that makes PostgreSQL the record. */
#include "job_queue.h"

#include "config.h"
#include "db.h"
#include "jobs.h"
#include "kv.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JQ_ANNOUNCE_BATCH 500      /* due jobs re-announced per statement */
#define JQ_ANNOUNCE_ROUNDS 40      /* statements per sweep (20,000 jobs) */
#define JQ_AUTOCLAIM_COUNT 100     /* stream entries taken over per XAUTOCLAIM */
#define JQ_AUTOCLAIM_ROUNDS 10
#define JQ_CONSUMER_IDLE_MS 3600000 /* a consumer idle this long without entries is removed */
#define JQ_HOUSEKEEP_EVERY 30      /* sweeps between deletions of done rows and idle consumers */
#define JQ_PAYLOAD_MAX (1u << 20)  /* a payload longer than this is refused */

struct jq {
    struct jq_shared *sh;
    struct db *db;
    struct kv *kv;
    uint64_t rng;
    unsigned sweeps;
};

/* ---- options ----------------------------------------------------------------------------- */

static int jq_env_duration(const char *name, uint64_t min, uint64_t *ret, char *err, size_t errlen)
{
    const char *v = getenv(name);
    uint64_t ms;

    if (!v || !*v)
        return 0;
    if (parse_duration_ms(v, &ms) < 0 || ms < min) {
        snprintf(err, errlen, "bad %s '%.40s': a duration of at least %" PRIu64 "ms such as 500ms "
                 "or 30s", name, v, min);
        return -EINVAL;
    }
    *ret = ms;
    return 0;
}

int jq_opts_load(struct jq_opts *o, char *err, size_t errlen)
{
    const char *v;
    int r = 0;

    *o = (struct jq_opts){
        .lease_ms = 60000,
        .retry_base_ms = 2000,
        .retry_max_ms = 600000,
        .max_attempts = 10,
        .sweep_interval_ms = 2000,
        .stale_ms = 10000,
        .stale_max_ms = 300000,
        .done_keep_ms = 86400000,
    };
    if ((r = jq_env_duration("STF_REPAIRD_LEASE", 1000, &o->lease_ms, err, errlen)) < 0 ||
        (r = jq_env_duration("STF_REPAIRD_RETRY_BASE", 10, &o->retry_base_ms, err, errlen)) < 0 ||
        (r = jq_env_duration("STF_REPAIRD_RETRY_MAX", 10, &o->retry_max_ms, err, errlen)) < 0 ||
        (r = jq_env_duration("STF_REPAIRD_SWEEP_INTERVAL", 50, &o->sweep_interval_ms, err,
                             errlen)) < 0 ||
        (r = jq_env_duration("STF_REPAIRD_STALE", 100, &o->stale_ms, err, errlen)) < 0)
        return r;
    v = getenv("STF_REPAIRD_MAX_ATTEMPTS");
    if (v && *v && parse_uint(v, 1, 1000, &o->max_attempts) < 0) {
        snprintf(err, errlen, "bad STF_REPAIRD_MAX_ATTEMPTS '%.40s': a number from 1 to 1000", v);
        return -EINVAL;
    }
    if (o->retry_max_ms < o->retry_base_ms)
        o->retry_max_ms = o->retry_base_ms;
    if (o->stale_max_ms < o->stale_ms)
        o->stale_max_ms = o->stale_ms;
    return 0;
}

int jq_shared_init(struct jq_shared *sh, const struct jq_opts *o)
{
    memset(sh, 0, sizeof(*sh));
    sh->opts = *o;
    atomic_init(&sh->reannounce_all, false);
    return lease_owner_self(sh->owner, sizeof(sh->owner));
}

struct jq *jq_new(struct jq_shared *sh, struct db *db, struct kv *kv)
{
    struct jq *q = calloc(1, sizeof(*q));
    struct timespec ts;

    if (!q)
        return NULL;
    q->sh = sh;
    q->db = db;
    q->kv = kv;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    q->rng = ((uint64_t) ts.tv_nsec << 20) ^ (uint64_t) getpid() ^ (uint64_t) (uintptr_t) q;
    if (!q->rng)
        q->rng = 1;
    return q;
}

void jq_free(struct jq *q)
{
    free(q);
}

uint64_t jq_lease_ms(const struct jq *q)
{
    return q->sh->opts.lease_ms;
}

/* ---- small helpers ----------------------------------------------------------------------- */

static void jq_fmt_i64(char *out, size_t outlen, int64_t v)
{
    snprintf(out, outlen, "%" PRId64, v);
}

static void jq_fmt_u64(char *out, size_t outlen, uint64_t v)
{
    snprintf(out, outlen, "%" PRIu64, v);
}

static int jq_parse_i64(const char *s, size_t len, int64_t *ret)
{
    int64_t v = 0;

    if (len == 0 || len > 18)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return 0;
}

static uint64_t jq_random(struct jq *q)
{
    q->rng ^= q->rng << 13; /* xorshift64: jitter only */
    q->rng ^= q->rng >> 7;
    q->rng ^= q->rng << 17;
    return q->rng;
}

/* base * 2^(attempts-1), capped, with +-20% jitter so that retries of many jobs spread out. */
static uint64_t jq_backoff_ms(struct jq *q, int attempts)
{
    const struct jq_opts *o = &q->sh->opts;
    uint64_t ms = o->retry_base_ms;

    for (int i = 1; i < attempts && ms < o->retry_max_ms; i++)
        ms *= 2;
    if (ms > o->retry_max_ms)
        ms = o->retry_max_ms;
    return ms * 8 / 10 + (ms > 2 ? jq_random(q) % (ms * 4 / 10) : 0);
}

/* Element `key` of a RESP2 flat map (an array of alternating keys and values), or NULL. */
static const redisReply *jq_map_get(const redisReply *map, const char *key)
{
    if (!map || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2) {
        const redisReply *k = map->element[i];

        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, key) == 0)
            return map->element[i + 1];
    }
    return NULL;
}

/* The job id of a stream entry [entry-id, [field, value, ...]]. Returns 0 or -EINVAL. */
static int jq_entry_job_id(const redisReply *e, int64_t *ret_id, char *entry, size_t entry_len)
{
    const redisReply *id;

    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= entry_len)
        return -EINVAL;
    memcpy(entry, e->element[0]->str, e->element[0]->len + 1);
    id = jq_map_get(e->element[1], "id");
    if (!id || id->type != REDIS_REPLY_STRING)
        return -EINVAL;
    return jq_parse_i64(id->str, id->len, ret_id);
}

/* ---- the stream -------------------------------------------------------------------------- */

int jq_ensure_group(struct jq *q)
{
    const char *argv[] = {"XGROUP", "CREATE", JOBS_STREAM, JOBS_GROUP, "0", "MKSTREAM"};
    redisReply *rep = kv_command(q->kv, 6, argv, NULL);

    if (rep) {
        freeReplyObject(rep);
        atomic_store(&q->sh->reannounce_all, true);
        log_info("event=job_group_created stream=%s group=%s note=\"every due job is "
                 "announced again\"", JOBS_STREAM, JOBS_GROUP);
        return 1;
    }
    if (!kv_ok(q->kv))
        return -EAGAIN;
    if (strncmp(kv_error(q->kv), "BUSYGROUP", 9) == 0)
        return 0;
    log_warn("event=job_group_error err=\"%s\"", kv_error(q->kv));
    return -EIO;
}

int jq_read(struct jq *q, unsigned block_ms, int64_t *ret_id, char *entry, size_t entry_len)
{
    char blocks[16];
    const char *argv[] = {"XREADGROUP", "GROUP", JOBS_GROUP, q->sh->owner, "COUNT", "1",
                          "BLOCK", blocks, "STREAMS", JOBS_STREAM, ">"};
    const redisReply *entries;
    redisReply *rep;
    int r = 0;

    snprintf(blocks, sizeof(blocks), "%u", block_ms);
    rep = kv_command(q->kv, (int) (sizeof(argv) / sizeof(argv[0])), argv, NULL);
    if (!rep) {
        if (!kv_ok(q->kv))
            return -EAGAIN;
        if (strncmp(kv_error(q->kv), "NOGROUP", 7) == 0) {
            r = jq_ensure_group(q);
            return r < 0 ? r : 0;
        }
        log_debug("event=job_read_error err=\"%s\"", kv_error(q->kv));
        return -EIO;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
        goto out; /* nil: nothing within block_ms */
    entries = rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements >= 2
                  ? rep->element[0]->element[1]
                  : NULL;
    if (!entries || entries->type != REDIS_REPLY_ARRAY || entries->elements < 1)
        goto out;
    if (jq_entry_job_id(entries->element[0], ret_id, entry, entry_len) < 0) {
        const redisReply *e = entries->element[0];

        if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
            e->element[0]->type == REDIS_REPLY_STRING && e->element[0]->len < entry_len) {
            log_warn("event=job_entry_malformed entry=%s", e->element[0]->str);
            jq_ack(q, e->element[0]->str);
        }
        goto out;
    }
    r = 1;
out:
    freeReplyObject(rep);
    return r;
}

int jq_ack(struct jq *q, const char *entry)
{
    const char *ack[] = {"XACK", JOBS_STREAM, JOBS_GROUP, entry};
    const char *del[] = {"XDEL", JOBS_STREAM, entry};
    redisReply *rep;

    rep = kv_command(q->kv, 4, ack, NULL);
    if (!rep)
        return -EIO;
    freeReplyObject(rep);
    rep = kv_command(q->kv, 3, del, NULL);
    if (!rep)
        return -EIO;
    freeReplyObject(rep);
    return 0;
}

/* ---- leases ------------------------------------------------------------------------------ */

static int jq_fill_job(struct job *job, PGresult *res, int col_id, int col_kind, int64_t id)
{
    const char *kind = PQgetvalue(res, 0, col_kind);
    const char *payload = PQgetvalue(res, 0, col_kind + 1);
    size_t plen = (size_t) PQgetlength(res, 0, col_kind + 1);

    memset(job, 0, sizeof(*job));
    if (col_id >= 0 && jq_parse_i64(PQgetvalue(res, 0, col_id),
                                    (size_t) PQgetlength(res, 0, col_id), &id) < 0)
        return -EINVAL;
    job->id = id;
    snprintf(job->kind, sizeof(job->kind), "%s", kind);
    if (plen > JQ_PAYLOAD_MAX)
        payload = "{}"; /* refused by the kind's own checks; keeps memory bounded */
    job->payload = strdup(payload);
    if (!job->payload)
        return -ENOMEM;
    job->attempts = atoi(PQgetvalue(res, 0, col_kind + 2));
    return 0;
}

int jq_claim(struct jq *q, int64_t id, struct job *job)
{
    char ids[24], lease[24], maxs[16];
    const char *params[] = {ids, q->sh->owner, lease, maxs};
    PGresult *res;
    int r;

    jq_fmt_i64(ids, sizeof(ids), id);
    jq_fmt_u64(lease, sizeof(lease), q->sh->opts.lease_ms);
    snprintf(maxs, sizeof(maxs), "%u", q->sh->opts.max_attempts);
    res = db_exec(q->db,
                  "UPDATE jobs SET state = 'running', locked_by = $2, "
                  "  locked_until = now() + $3::bigint * interval '1 millisecond', "
                  "  attempts = attempts + 1, updated_at = now() "
                  "WHERE id = $1 AND attempts < $4::int AND ("
                  "  (state = 'pending' AND run_after <= now()) OR "
                  "  (state = 'running' AND locked_until < now())) "
                  "RETURNING kind, payload::text, attempts",
                  4, params);
    if (!res) {
        log_warn("event=job_claim_error id=%" PRId64 " err=\"%s\"", id, db_error(q->db));
        return -EIO;
    }
    r = 0;
    if (PQntuples(res) == 1)
        r = jq_fill_job(job, res, -1, 0, id) < 0 ? -ENOMEM : 1;
    PQclear(res);
    return r;
}

int jq_claim_next(struct jq *q, struct job *job)
{
    char lease[24], maxs[16];
    const char *params[] = {q->sh->owner, lease, maxs};
    PGresult *res;
    int r;

    jq_fmt_u64(lease, sizeof(lease), q->sh->opts.lease_ms);
    snprintf(maxs, sizeof(maxs), "%u", q->sh->opts.max_attempts);
    res = db_exec(q->db,
                  "UPDATE jobs SET state = 'running', locked_by = $1, "
                  "  locked_until = now() + $2::bigint * interval '1 millisecond', "
                  "  attempts = attempts + 1, updated_at = now() "
                  "WHERE id = (SELECT id FROM jobs WHERE state = 'pending' AND run_after <= now() "
                  "            AND attempts < $3::int ORDER BY run_after, id LIMIT 1 "
                  "            FOR UPDATE SKIP LOCKED) "
                  "RETURNING id, kind, payload::text, attempts",
                  3, params);
    if (!res)
        return -EIO;
    r = 0;
    if (PQntuples(res) == 1)
        r = jq_fill_job(job, res, 0, 1, 0) < 0 ? -ENOMEM : 1;
    PQclear(res);
    return r;
}

void jq_job_release(struct job *job)
{
    free(job->payload);
    job->payload = NULL;
}

int jq_renew(struct jq *q, struct job *job)
{
    char ids[24], lease[24];
    const char *params[] = {ids, q->sh->owner, lease};
    PGresult *res;
    int r;

    jq_fmt_i64(ids, sizeof(ids), job->id);
    jq_fmt_u64(lease, sizeof(lease), q->sh->opts.lease_ms);
    res = db_exec(q->db,
                  "UPDATE jobs SET locked_until = now() + $3::bigint * interval '1 millisecond' "
                  "WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING id",
                  3, params);
    if (!res)
        return -EIO;
    r = PQntuples(res) == 1 ? 0 : -ESTALE;
    PQclear(res);
    return r;
}

int jq_save_payload(struct jq *q, struct job *job, const char *payload_json)
{
    char ids[24], lease[24];
    const char *params[] = {ids, q->sh->owner, lease, payload_json};
    PGresult *res;
    char *copy;
    int r;

    if (strlen(payload_json) > JQ_PAYLOAD_MAX)
        return -E2BIG;
    copy = strdup(payload_json);
    if (!copy)
        return -ENOMEM;
    jq_fmt_i64(ids, sizeof(ids), job->id);
    jq_fmt_u64(lease, sizeof(lease), q->sh->opts.lease_ms);
    res = db_exec(q->db,
                  "UPDATE jobs SET payload = $4::jsonb, updated_at = now(), "
                  "  locked_until = now() + $3::bigint * interval '1 millisecond' "
                  "WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING id",
                  4, params);
    if (!res) {
        free(copy);
        return -EIO;
    }
    r = PQntuples(res) == 1 ? 0 : -ESTALE;
    PQclear(res);
    if (r < 0) {
        free(copy);
        return r;
    }
    free(job->payload);
    job->payload = copy;
    return 0;
}

/* ---- outcomes ---------------------------------------------------------------------------- */

int jq_finish(struct jq *q, struct job *job, enum job_result res)
{
    const struct jq_opts *o = &q->sh->opts;
    char ids[24], delay[24], base[24], maxd[24], maxs[16];
    const char *err = job->error[0] ? job->error : "unknown error";
    const char *params[6] = {ids, q->sh->owner, err, delay, maxs, NULL};
    const char *sql;
    PGresult *pr;
    int n = 3, r;

    jq_fmt_i64(ids, sizeof(ids), job->id);
    snprintf(maxs, sizeof(maxs), "%u", o->max_attempts);
    switch (res) {
    case JOB_DONE:
        sql = "UPDATE jobs SET state = 'done', last_error = NULL, locked_by = NULL, "
              "  locked_until = NULL, updated_at = now() "
              "WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING state";
        n = 2;
        break;
    case JOB_RETRY:
        jq_fmt_u64(delay, sizeof(delay), jq_backoff_ms(q, job->attempts));
        sql = "UPDATE jobs SET state = CASE WHEN attempts >= $5::int THEN 'failed' "
              "  ELSE 'pending' END, last_error = $3, "
              "  run_after = now() + $4::bigint * interval '1 millisecond', "
              "  locked_by = NULL, locked_until = NULL, updated_at = now() "
              "WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING state";
        n = 5;
        break;
    case JOB_WAIT:
        /* the delay grows with the job's age: a tenth of it, between base and max */
        jq_fmt_u64(base, sizeof(base), o->retry_base_ms);
        jq_fmt_u64(maxd, sizeof(maxd), o->retry_max_ms);
        params[3] = base;
        params[4] = maxd;
        sql = "UPDATE jobs SET state = 'pending', attempts = GREATEST(attempts - 1, 0), "
              "  last_error = $3, run_after = now() + LEAST($5::bigint * interval '1 millisecond', "
              "  GREATEST($4::bigint * interval '1 millisecond', (now() - created_at) / 10)), "
              "  locked_by = NULL, locked_until = NULL, updated_at = now() "
              "WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING state";
        n = 5;
        break;
    case JOB_FAIL:
        sql = "UPDATE jobs SET state = 'failed', last_error = $3, locked_by = NULL, "
              "  locked_until = NULL, updated_at = now() "
              "WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING state";
        break;
    case JOB_CANCELLED:
    default:
        sql = "UPDATE jobs SET state = 'pending', attempts = GREATEST(attempts - 1, 0), "
              "  run_after = now(), locked_by = NULL, locked_until = NULL, updated_at = now() "
              "WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING state";
        n = 2;
        break;
    }
    pr = db_exec(q->db, sql, n, params);
    if (!pr) {
        log_warn("event=job_finish_error id=%" PRId64 " err=\"%s\" note=\"the lease runs out "
                 "and the job runs again\"", job->id, db_error(q->db));
        return -EIO;
    }
    r = PQntuples(pr) == 1 ? 0 : -ESTALE;
    if (r == 0 && res == JOB_RETRY && strcmp(PQgetvalue(pr, 0, 0), "failed") == 0)
        r = 1; /* out of attempts */
    PQclear(pr);
    if (r == 0 && res == JOB_CANCELLED)
        (void) jobs_announce(q->kv, job->id);
    return r;
}

/* ---- the sweep --------------------------------------------------------------------------- */

/* Announces the ids in column 0 of res whose column state_col (if >= 0) says 'pending'. */
static unsigned jq_announce_rows(struct jq *q, PGresult *res, int state_col)
{
    unsigned n = 0;

    for (int i = 0; i < PQntuples(res); i++) {
        int64_t id;

        if (state_col >= 0 && strcmp(PQgetvalue(res, i, state_col), "pending") != 0)
            continue;
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

#define JQ_RELEASE_SET                                                                          \
    "SET state = CASE WHEN attempts >= $1::int THEN 'failed' ELSE 'pending' END, "              \
    "  last_error = 'lease of ' || COALESCE(locked_by, '?') || ' ' || $2, "                     \
    "  run_after = now() + LEAST($4::bigint, $3::bigint * power(2, GREATEST(attempts - 1, 0))) " \
    "  * interval '1 millisecond', "                                                            \
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
        const char *params[] = {maxs, "released: that repaird process is gone", base, maxd, id,
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
    PGresult *res;
    int rows;

    /* all: every due job not announced since this sweep began */
    jq_fmt_u64(stale, sizeof(stale), all ? 0 : jq_stream_drained(q) ? o->stale_ms : o->stale_max_ms);
    params[0] = stale;
    res = db_exec(q->db, "SELECT (now() - $1::bigint * interval '1 millisecond')::text", 1,
                  params);
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
        total += jq_announce_rows(q, res, -1);
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
    const char *argv[] = {"XAUTOCLAIM", JOBS_STREAM, JOBS_GROUP, q->sh->owner, idle, cursor,
                          "COUNT", "100"};
    unsigned handed = 0;

    jq_fmt_u64(idle, sizeof(idle), q->sh->opts.lease_ms);
    for (int round = 0; round < JQ_AUTOCLAIM_ROUNDS; round++) {
        redisReply *rep = kv_command(q->kv, 8, argv, NULL);
        const redisReply *entries;

        if (!rep)
            return;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[0]->len >= sizeof(cursor)) {
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
            res = db_exec(q->db, "SELECT 1 FROM jobs WHERE id = $1 AND state = 'pending'", 1,
                          params);
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
               "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'done' "
               "AND updated_at < now() - $1::bigint * interval '1 millisecond' LIMIT 10000)",
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
