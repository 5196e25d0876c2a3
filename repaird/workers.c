/* repaird/workers.c — worker threads (read, claim, run, record) and the sweeper thread; each
 * thread owns its PostgreSQL and Redis connections and its HTTP handles. */
#include "workers.h"

#include "config.h"
#include "db.h"
#include "http_client.h"
#include "job.h"
#include "job_queue.h"
#include "kv.h"
#include "log.h"
#include "stopflag.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define WORKER_BLOCK_MS 1000      /* XREADGROUP BLOCK: also how fast a worker sees a shutdown */
#define WORKER_KV_TIMEOUT_MS 3000 /* above the BLOCK, or the connection breaks (TOOLCHAIN §6) */
#define WORKER_POLL_MS 1000       /* PostgreSQL polling interval while Redis is away */

struct worker {
    struct workers *pool;
    unsigned index;
    pthread_t thread;
    bool started;
};

struct workers {
    const struct cfg *cfg;
    struct jq_shared *sh;
    struct throttle *throttle;
    struct worker *v; /* cfg->repaird.workers workers, then the sweeper */
    unsigned n;
    atomic_bool redis_away; /* for logging the change once */
};

/* Opens the thread's connections; waits (until shutdown) while PostgreSQL is unreachable. */
static int worker_connect(struct workers *p, struct db **ret_db, struct kv **ret_kv)
{
    char err[256];
    bool logged = false;
    struct db *db;

    *ret_kv = kv_open(p->cfg->redis.url, WORKER_KV_TIMEOUT_MS, err, sizeof(err));
    if (!*ret_kv) {
        log_error("event=redis_config_error err=\"%s\"", err);
        return -EINVAL;
    }
    while (!(db = db_open(p->cfg->database.url, err, sizeof(err)))) {
        if (!logged)
            log_warn("event=db_unreachable err=\"%s\" note=\"retrying every second\"", err);
        logged = true;
        if (stopflag_sleep_ms(1000)) {
            kv_free(*ret_kv);
            *ret_kv = NULL;
            return -ECANCELED;
        }
    }
    *ret_db = db;
    return 0;
}

static void worker_note_redis(struct workers *p, bool away, struct kv *kv)
{
    if (atomic_exchange(&p->redis_away, away) == away)
        return;
    if (away)
        log_warn("event=redis_unreachable err=\"%s\" note=\"jobs are taken from PostgreSQL "
                 "until the stream works again\"",
                 kv_error(kv));
    else
        log_info("event=redis_back");
}

static void worker_run_job(struct job_ctx *ctx, struct job *job)
{
    const struct job_kind *kind = job_kind_find(job->kind);
    enum job_result res;
    uint64_t t0 = job_now_ms(), ms;
    int r;

    job->ctx = ctx;
    job->lease_renewed_ms = t0;
    log_info("event=job_start id=%" PRId64 " kind=%s attempt=%d", job->id, job->kind,
             job->attempts);
    if (!kind) {
        /* another (newer) repaird may know it: keep it pending and visible */
        job_error(job, "unknown job kind '%s': this repaird (%s) does not run it", job->kind,
                  STF_VERSION);
        res = JOB_WAIT;
    } else {
        res = kind->run(job);
    }
    if (res != JOB_DONE && !job->error[0])
        job_error(job, "%s ended without saying why", job->kind);
    ms = job_now_ms() - t0;
    r = jq_finish(ctx->jq, job, res);
    if (r == -ESTALE) {
        log_warn("event=job_lease_lost id=%" PRId64 " kind=%s ms=%" PRIu64
                 " note=\"another repaird took it over; its outcome was not recorded\"",
                 job->id, job->kind, ms);
        return;
    }
    switch (res) {
    case JOB_DONE:
        log_info("event=job_done id=%" PRId64 " kind=%s ms=%" PRIu64, job->id, job->kind, ms);
        break;
    case JOB_RETRY:
        if (r == 1)
            log_error("event=job_failed id=%" PRId64 " kind=%s attempts=%d err=\"%s\"", job->id,
                      job->kind, job->attempts, job->error);
        else
            log_warn("event=job_retry id=%" PRId64 " kind=%s attempt=%d err=\"%s\"", job->id,
                     job->kind, job->attempts, job->error);
        break;
    case JOB_WAIT:
        log_info("event=job_wait id=%" PRId64 " kind=%s reason=\"%s\"", job->id, job->kind,
                 job->error);
        break;
    case JOB_FAIL:
        log_error("event=job_failed id=%" PRId64 " kind=%s err=\"%s\"", job->id, job->kind,
                  job->error);
        break;
    case JOB_CANCELLED:
        log_info("event=job_released id=%" PRId64 " kind=%s reason=\"%s\"", job->id, job->kind,
                 job->error[0] ? job->error : "shutdown");
        break;
    }
}

static void worker_loop(struct worker *w, struct db *db, struct kv *kv, struct jq *q)
{
    struct workers *p = w->pool;
    struct job_ctx ctx = {
        .db = db, .kv = kv, .jq = q, .throttle = p->throttle, .workers = p->cfg->repaird.workers};
    char entry[64];
    struct job job;
    int64_t id;
    int r;

    while (!stopflag_raised()) {
        r = jq_read(q, WORKER_BLOCK_MS, &id, entry, sizeof(entry));
        if (r == 1) {
            worker_note_redis(p, false, kv);
            r = jq_claim(q, id, &job);
            if (r == 1) {
                worker_run_job(&ctx, &job);
                jq_job_release(&job);
            } else if (r == 0) {
                log_debug("event=job_skipped id=%" PRId64 " note=\"not claimable now\"", id);
            }
            if (r >= 0)
                jq_ack(q, entry); /* the row is final (or someone else's): the entry is spent */
            else
                stopflag_sleep_ms(WORKER_POLL_MS); /* PostgreSQL away: the entry stays pending */
        } else if (r == -EAGAIN || r == -EIO) {
            worker_note_redis(p, true, kv);
            r = jq_claim_next(q, &job);
            if (r == 1) {
                worker_run_job(&ctx, &job);
                jq_job_release(&job);
            } else {
                stopflag_sleep_ms(WORKER_POLL_MS);
            }
        } else if (r == 0) {
            worker_note_redis(p, false, kv);
        }
    }
}

static void sweeper_loop(struct worker *w, struct db *db, struct kv *kv, struct jq *q)
{
    uint64_t interval = w->pool->sh->opts.sweep_interval_ms;

    do {
        jq_sweep(q);
    } while (!stopflag_sleep_ms(interval));
    (void) db;
    (void) kv;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct workers *p = w->pool;
    struct db *db = NULL;
    struct kv *kv = NULL;
    struct jq *q = NULL;

    if (worker_connect(p, &db, &kv) < 0)
        goto out;
    q = jq_new(p->sh, db, kv);
    if (!q) {
        log_error("event=worker_error err=\"out of memory\"");
        goto out;
    }
    if (w->index < p->n - 1) {
        log_debug("event=worker_ready worker=%u", w->index);
        worker_loop(w, db, kv, q);
    } else {
        log_debug("event=sweeper_ready");
        sweeper_loop(w, db, kv, q);
    }
out:
    jq_free(q);
    kv_free(kv);
    db_free(db);
    http_thread_cleanup();
    return NULL;
}

int workers_start(const struct cfg *cfg, struct jq_shared *sh, struct throttle *t,
                  struct workers **ret)
{
    struct workers *p = calloc(1, sizeof(*p));
    int r = 0;

    if (!p)
        return -ENOMEM;
    p->cfg = cfg;
    p->sh = sh;
    p->throttle = t;
    p->n = cfg->repaird.workers + 1;
    atomic_init(&p->redis_away, false);
    p->v = calloc(p->n, sizeof(*p->v));
    if (!p->v) {
        free(p);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < p->n; i++) {
        p->v[i].pool = p;
        p->v[i].index = i;
        r = -pthread_create(&p->v[i].thread, NULL, worker_main, &p->v[i]);
        if (r < 0) {
            log_error("event=worker_error err=\"cannot start a thread: %s\"", strerror(-r));
            stopflag_raise();
            workers_join(p);
            return r;
        }
        p->v[i].started = true;
    }
    *ret = p;
    return 0;
}

void workers_join(struct workers *w)
{
    if (!w)
        return;
    for (unsigned i = 0; i < w->n; i++) {
        if (w->v[i].started)
            pthread_join(w->v[i].thread, NULL);
    }
    free(w->v);
    free(w);
}
