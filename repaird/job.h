/* repaird/job.h — what a job kind sees: the claimed job, the worker's connections, the result
 * codes that decide what the queue does next, and helpers for long jobs (lease renewal,
 * progress saved in the payload, payload fields). One file per kind implements a job_kind. */
#ifndef REPAIRD_JOB_H
#define REPAIRD_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct kv;
struct jq;
struct throttle;

enum job_result {
    JOB_DONE = 0,  /* finished: state 'done' */
    JOB_RETRY,     /* failed this time: pending again after an exponential backoff, 'failed'
                    * once the attempts are used up */
    JOB_WAIT,      /* waiting for something outside the job (a storage that is down or away):
                    * pending again after a backoff that grows with the job's age; does not
                    * use up attempts */
    JOB_FAIL,      /* can never succeed (bad payload, unknown kind): 'failed' at once */
    JOB_CANCELLED, /* repaird is stopping, or the lease was lost: released, not counted */
};

/* The worker's resources, borrowed by the job for the duration of its run. */
struct job_ctx {
    struct db *db;             /* the worker's own connection (no transaction open) */
    struct kv *kv;             /* the worker's own Redis connection (to announce new jobs) */
    struct jq *jq;             /* the queue handle holding this job's lease */
    struct throttle *throttle; /* max_bytes_per_sec, shared by every worker */
    unsigned workers;          /* how many workers share the throttle */
};

#define JOB_LEASE_MAX 160

struct job {
    int64_t id;
    char lease[JOB_LEASE_MAX]; /* jobs.locked_by of this claim: "<holder id>#<claim number>" */
    char kind[32];
    /* jobs.payload as JSON text; owned by the queue (job_save_payload replaces it) */
    char *payload;
    int attempts;              /* failed or interrupted runs before this one, plus this one */
    char error[512];           /* one line, set with job_error() for every result but DONE */
    struct job_ctx *ctx;       /* the worker's resources */
    uint64_t lease_renewed_ms; /* monotonic time of the last claim or renewal */
};

struct job_kind {
    const char *name; /* jobs.kind */
    enum job_result (*run)(struct job *job);
};

/* The kinds repaird runs (job_kinds.c holds the table; one file per kind). */
const struct job_kind *job_kind_find(const char *name);

/* Sets job->error (printf-style, one line). */
void job_error(struct job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Renews the lease when a third of it has passed (cheap otherwise: call it often, e.g. per
 * chunk or per item). Returns 0; -ECANCELED when repaird is stopping; -ESTALE when the lease
 * was lost (another repaird may run the job now: stop at once and return JOB_CANCELLED). */
int job_heartbeat(struct job *job);

/* Replaces the payload (progress of a long job) while holding the lease; renews it too.
 * Returns 0, -ESTALE (lease lost), -EIO or -ENOMEM. */
int job_save_payload(struct job *job, const char *payload_json);

/* Reads a top-level field of the payload as text (a JSON string unquoted, a number as written).
 * Returns 0; -ENOENT when absent or null; -E2BIG when it does not fit; -EIO. */
int job_payload_text(struct job *job, const char *key, char *out, size_t outlen);
/* Reads a top-level integer field. Returns 0; -ENOENT when absent; -EINVAL when not an integer. */
int job_payload_int64(struct job *job, const char *key, int64_t *ret);

/* Monotonic milliseconds. */
uint64_t job_now_ms(void);

#endif
