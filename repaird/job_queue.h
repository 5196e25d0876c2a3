/* repaird/job_queue.h — the queue mechanics of SPEC §8 (contract in common/jobs.h): job ids read
 * from the Redis stream stf:jobs through the consumer group "repaird", leases taken with a
 * conditional UPDATE of the PostgreSQL row (the record), outcomes with retries and backoff,
 * and the sweep that keeps jobs moving when Redis lost them or a repaird died. */
#ifndef REPAIRD_JOB_QUEUE_H
#define REPAIRD_JOB_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "lease_owner.h"

struct db;
struct kv;

struct jq_opts {
    uint64_t lease_ms;          /* a claim holds the job this long unless renewed (60 s) */
    uint64_t retry_base_ms;     /* first retry delay; doubles per failed attempt (2 s) */
    uint64_t retry_max_ms;      /* longest retry or wait delay (10 min) */
    unsigned max_attempts;      /* failed runs before a job is 'failed' (10) */
    uint64_t sweep_interval_ms; /* how often jq_sweep runs (2 s) */
    uint64_t stale_ms;          /* re-announce a due pending job untouched this long, when the
                                 * stream has nothing unread (10 s) */
    uint64_t stale_max_ms;      /* ... and whatever the stream holds (5 min) */
    uint64_t done_keep_ms;      /* 'done' rows are deleted after this long (1 day) */
};

/* Shared by every thread of the process. */
struct jq_shared {
    struct jq_opts opts;
    char owner[LEASE_OWNER_MAX]; /* this process's lease holder id and Redis consumer name */
    atomic_bool reannounce_all;  /* the group was (re)created: announce every due job */
    atomic_uint claims;          /* numbers the claims, so each lease token is unique */
};

/* The defaults above, overridden by the environment (see repaird/main.c):
 * STF_REPAIRD_LEASE, STF_REPAIRD_RETRY_BASE, STF_REPAIRD_RETRY_MAX (durations),
 * STF_REPAIRD_MAX_ATTEMPTS, STF_REPAIRD_SWEEP_INTERVAL, STF_REPAIRD_STALE.
 * Returns 0, or -EINVAL with one line in err naming the bad variable. */
int jq_opts_load(struct jq_opts *o, char *err, size_t errlen);

/* Fills sh (owner from lease_owner_self). Returns 0 or -errno. */
int jq_shared_init(struct jq_shared *sh, const struct jq_opts *o);

struct jq;

/* A per-thread handle over the thread's own connections (borrowed). NULL on ENOMEM. */
struct jq *jq_new(struct jq_shared *sh, struct db *db, struct kv *kv);
void jq_free(struct jq *q);

/* Waits up to block_ms for the next stream entry. Returns 1 and sets *ret_id and entry (the
 * stream entry id, for jq_ack), 0 when nothing came, -EAGAIN when Redis is unreachable, -EIO
 * when it refuses the read (e.g. stf:jobs is not a stream): kv_error() says why. */
int jq_read(struct jq *q, unsigned block_ms, int64_t *ret_id, char *entry, size_t entry_len);
/* Acknowledges and deletes a stream entry. Best effort: returns 0 or -EIO. */
int jq_ack(struct jq *q, const char *entry);

/* Takes the lease of job id when it is claimable now (pending and due, or running with an
 * expired lease). Returns 1 and fills *job (release with jq_job_release), 0 when it is not
 * claimable (done, failed, not due, leased by another), -EIO when PostgreSQL failed. */
int jq_claim(struct jq *q, int64_t id, struct job *job);
/* Claims the oldest due pending job straight from PostgreSQL (used while Redis is away).
 * Same returns as jq_claim. */
int jq_claim_next(struct jq *q, struct job *job);
void jq_job_release(struct job *job);

/* Records the outcome of a run (see enum job_result) and, for a released job, announces it
 * again. Returns 0; -ESTALE when the lease had been lost (the row was left alone); -EIO. */
int jq_finish(struct jq *q, struct job *job, enum job_result res);

/* Lease renewal and progress (job_heartbeat / job_save_payload use these). 0, -ESTALE, -EIO. */
int jq_renew(struct jq *q, struct job *job);
int jq_save_payload(struct jq *q, struct job *job, const char *payload_json);

/* Creates the consumer group when it is missing (then every due job is re-announced at the
 * next sweep). Returns 1 created, 0 existed, -EAGAIN Redis unreachable, -EIO. */
int jq_ensure_group(struct jq *q);

/* One sweep round: fails jobs out of attempts, releases expired leases and leases of dead
 * repaird processes on this host, re-announces due pending jobs that the stream lost or never
 * got, hands on stream entries idle with dead consumers, and deletes old 'done' rows. */
void jq_sweep(struct jq *q);

/* The lease length, for logs and heartbeats. */
uint64_t jq_lease_ms(const struct jq *q);

#endif
