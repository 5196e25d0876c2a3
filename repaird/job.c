/* repaird/job.c — helpers a job kind uses while it runs: its error line, lease heartbeats,
 * progress saved in the payload, and payload fields (parsed by PostgreSQL's jsonb). */
#include "job.h"

#include "db.h"
#include "job_queue.h"
#include "log.h"
#include "stopflag.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t job_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

void job_error(struct job *job, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(job->error, sizeof(job->error), fmt, ap);
    va_end(ap);
    for (char *c = job->error; *c; c++) {
        if (*c == '\n' || *c == '\r' || *c == '"')
            *c = *c == '"' ? '\'' : ' ';
    }
}

int job_heartbeat(struct job *job)
{
    uint64_t lease = jq_lease_ms(job->ctx->jq), now = job_now_ms();
    int r;

    if (stopflag_raised())
        return -ECANCELED;
    if (now - job->lease_renewed_ms < lease / 3)
        return 0;
    r = jq_renew(job->ctx->jq, job);
    if (r == 0) {
        job->lease_renewed_ms = now;
        return 0;
    }
    if (r == -ESTALE) {
        log_warn("event=job_lease_lost id=%" PRId64 " kind=%s", job->id, job->kind);
        return -ESTALE;
    }
    /* PostgreSQL is away: go on while the lease surely holds, stop before it may run out */
    if (now - job->lease_renewed_ms >= lease * 2 / 3) {
        log_warn("event=job_lease_unrenewable id=%" PRId64 " kind=%s", job->id, job->kind);
        return -ESTALE;
    }
    return 0;
}

int job_save_payload(struct job *job, const char *payload_json)
{
    int r = jq_save_payload(job->ctx->jq, job, payload_json);

    if (r == 0)
        job->lease_renewed_ms = job_now_ms();
    return r;
}

int job_payload_text(struct job *job, const char *key, char *out, size_t outlen)
{
    const char *params[] = {job->payload, key};
    PGresult *res;
    int r = 0;
    size_t n;

    res = db_exec(job->ctx->db, "SELECT $1::jsonb ->> $2", 2, params);
    if (!res)
        return -EIO;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        r = -ENOENT;
        goto out;
    }
    n = (size_t) PQgetlength(res, 0, 0);
    if (n >= outlen) {
        r = -E2BIG;
        goto out;
    }
    memcpy(out, PQgetvalue(res, 0, 0), n + 1);
out:
    PQclear(res);
    return r;
}

int job_payload_int64(struct job *job, const char *key, int64_t *ret)
{
    char text[32], *end;
    long long v;
    int r;

    r = job_payload_text(job, key, text, sizeof(text));
    if (r == -E2BIG)
        return -EINVAL;
    if (r < 0)
        return r;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno || end == text || *end)
        return -EINVAL;
    *ret = v;
    return 0;
}
