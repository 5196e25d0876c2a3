/* repaird/main.c — repaird's entry point: flags and config, the job tuning from the
 * environment, then the worker, sweeper and health-check threads until SIGTERM/SIGINT. */
#include "config.h"
#include "daemon.h"
#include "health.h"
#include "http_client.h"
#include "job_queue.h"
#include "kv.h"
#include "log.h"
#include "scrub.h"
#include "stopflag.h"
#include "throttle.h"
#include "workers.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* Refuses a [database] url or [redis] url that can never work (a typo), before any thread
 * starts; an unreachable server is fine (the threads wait for it). */
static int repaird_check_urls(const struct cfg *cfg)
{
    char *pqerr = NULL, err[256];
    PQconninfoOption *opts = PQconninfoParse(cfg->database.url, &pqerr);
    struct kv *kv;

    if (!opts) {
        fprintf(stderr, "repaird: bad [database] url: %s\n", pqerr ? pqerr : "out of memory");
        PQfreemem(pqerr);
        return -1;
    }
    PQconninfoFree(opts);
    kv = kv_open(cfg->redis.url, 1000, err, sizeof(err));
    if (!kv) {
        fprintf(stderr, "repaird: bad [redis] url: %s\n", err);
        return -1;
    }
    kv_free(kv);
    return 0;
}

int main(int argc, char **argv)
{
    struct cfg cfg;
    struct daemon_args args;
    struct jq_opts opts;
    struct jq_shared *shared = NULL;
    struct throttle *throttle = NULL;
    struct workers *workers = NULL;
    struct health *health = NULL;
    struct scrub_opts scrub_opts;
    struct scrub *scrub = NULL;
    char err[256];
    int sig, rc = 1;

    daemon_block_signals();
    daemon_parse_args(argc, argv, "repaird", 0, &cfg, &args);
    if (jq_opts_load(&opts, err, sizeof(err)) < 0 ||
        scrub_opts_load(&scrub_opts, err, sizeof(err)) < 0) {
        fprintf(stderr, "repaird: %s\n", err);
        goto out;
    }
    if (repaird_check_urls(&cfg) < 0)
        goto out;
    if (http_global_init() < 0) {
        fprintf(stderr, "repaird: cannot initialise libcurl\n");
        goto out;
    }
    shared = calloc(1, sizeof(*shared));
    throttle = throttle_new(cfg.repaird.max_bytes_per_sec);
    if (!shared || !throttle || jq_shared_init(shared, &opts) < 0) {
        fprintf(stderr, "repaird: cannot set up (out of memory or /proc unreadable)\n");
        goto out;
    }
    log_info("event=start version=%s owner=%s workers=%u health_interval_ms=%" PRIu64
             " down_after=%u max_bytes_per_sec=%" PRIu64 " lease_ms=%" PRIu64 " max_attempts=%u",
             STF_VERSION, shared->owner, cfg.repaird.workers, cfg.repaird.health_interval_ms,
             cfg.repaird.down_after, cfg.repaird.max_bytes_per_sec, opts.lease_ms,
             opts.max_attempts);
    if (workers_start(&cfg, shared, throttle, &workers) < 0 || health_start(&cfg, &health) < 0 ||
        scrub_start(&cfg, &scrub_opts, throttle, shared->owner, &scrub) < 0) {
        log_error("event=start_failed err=\"cannot start threads\"");
        stopflag_raise();
        goto stop;
    }
    while ((sig = daemon_wait_signal()) == SIGHUP)
        log_info("event=sighup note=\"ignored: restart repaird to reload its config\"");
    log_info("event=stopping signal=%d note=\"running jobs finish or release their lease\"", sig);
    stopflag_raise();
    rc = 0;
stop:
    workers_join(workers);
    health_join(health);
    scrub_join(scrub);
    http_global_cleanup();
    log_info("event=stopped");
out:
    throttle_free(throttle);
    free(shared);
    cfg_release(&cfg);
    return rc;
}
