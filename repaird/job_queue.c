/* repaird/job_queue.c — job ids from the Redis stream (consumer group "repaird"), leases on the
 * PostgreSQL row, and outcomes with backoff. The sweep lives in job_sweep.c. */
#include "job_queue.h"
#include "job_queue_int.h"

#include "config.h"
#include "db.h"
#include "env_knob.h"
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

#define JQ_PAYLOAD_MAX (1u << 20) /* a payload longer than this is refused */

/* ---- options ----------------------------------------------------------------------------- */

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
    if ((r = env_duration_ms("STF_REPAIRD_LEASE", 1000, &o->lease_ms, err, errlen)) < 0 ||
        (r = env_duration_ms("STF_REPAIRD_RETRY_BASE", 10, &o->retry_base_ms, err, errlen)) < 0 ||
        (r = env_duration_ms("STF_REPAIRD_RETRY_MAX", 10, &o->retry_max_ms, err, errlen)) < 0 ||
        (r = env_duration_ms("STF_REPAIRD_SWEEP_INTERVAL", 50, &o->sweep_interval_ms, err,
                             errlen)) < 0 ||
        (r = env_duration_ms("STF_REPAIRD_STALE", 100, &o->stale_ms, err, errlen)) < 0)
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
    atomic_init(&sh->claims, 0);
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

void jq_fmt_i64(char *out, size_t outlen, int64_t v)
{
    snprintf(out, outlen, "%" PRId64, v);
}

void jq_fmt_u64(char *out, size_t outlen, uint64_t v)
{
    snprintf(out, outlen, "%" PRIu64, v);
}

int jq_parse_i64(const char *s, size_t len, int64_t *ret)
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
const redisReply *jq_map_get(const redisReply *map, const char *key)
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
int jq_entry_job_id(const redisReply *e, int64_t *ret_id, char *entry, size_t entry_len)
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
                 "announced again\"",
                 JOBS_STREAM, JOBS_GROUP);
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
                          "BLOCK",      blocks,  "STREAMS",  JOBS_STREAM,  ">"};
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

static int jq_fill_job(struct job *job, PGresult *res, int col_id, int col_kind, int64_t id,
                       const char *token)
{
    const char *kind = PQgetvalue(res, 0, col_kind);
    const char *payload = PQgetvalue(res, 0, col_kind + 1);
    size_t plen = (size_t) PQgetlength(res, 0, col_kind + 1);

    memset(job, 0, sizeof(*job));
    if (col_id >= 0 &&
        jq_parse_i64(PQgetvalue(res, 0, col_id), (size_t) PQgetlength(res, 0, col_id), &id) < 0)
        return -EINVAL;
    job->id = id;
    snprintf(job->lease, sizeof(job->lease), "%s", token);
    snprintf(job->kind, sizeof(job->kind), "%s", kind);
    if (plen > JQ_PAYLOAD_MAX)
        payload = "{}"; /* refused by the kind's own checks; keeps memory bounded */
    job->payload = strdup(payload);
    if (!job->payload)
        return -ENOMEM;
    job->attempts = atoi(PQgetvalue(res, 0, col_kind + 2));
    return 0;
}

/* A fresh lease token: the holder id plus a claim number, so that a worker whose lease ran out
 * cannot touch the row another worker of the same process claimed since. */
static void jq_new_lease(struct jq *q, char *out)
{
    snprintf(out, JOB_LEASE_MAX, "%s#%u", q->sh->owner, atomic_fetch_add(&q->sh->claims, 1));
}

int jq_claim(struct jq *q, int64_t id, struct job *job)
{
    char ids[24], lease[24], maxs[16], token[JOB_LEASE_MAX];
    const char *params[] = {ids, token, lease, maxs};
    PGresult *res;
    int r;

    jq_new_lease(q, token);
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
        r = jq_fill_job(job, res, -1, 0, id, token) < 0 ? -ENOMEM : 1;
    PQclear(res);
    return r;
}

int jq_claim_next(struct jq *q, struct job *job)
{
    char lease[24], maxs[16], token[JOB_LEASE_MAX];
    const char *params[] = {token, lease, maxs};
    PGresult *res;
    int r;

    jq_new_lease(q, token);
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
        r = jq_fill_job(job, res, 0, 1, 0, token) < 0 ? -ENOMEM : 1;
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
    const char *params[] = {ids, job->lease, lease};
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
    const char *params[] = {ids, job->lease, lease, payload_json};
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
    const char *params[6] = {ids, job->lease, err, delay, maxs, NULL};
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
                 "and the job runs again\"",
                 job->id, db_error(q->db));
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
