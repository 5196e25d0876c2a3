/* repaird/health.c — health checks: GET /_health of every rw, ro and spare storage each
 * health_interval, all at once with a short timeout; down_after failures in a row mark the
 * storage down (through common/mode_change, with a history row). A down storage is not marked
 * up again here: bringing it back is the operator's `clusterctl repair`. */
#include "health.h"

#include "config.h"
#include "db.h"
#include "http_client.h"
#include "job.h"
#include "kv.h"
#include "log.h"
#include "mode_change.h"
#include "stopflag.h"
#include "storage_list.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_TIMEOUT_MIN_MS 200
#define HEALTH_TIMEOUT_MAX_MS 2000
#define HEALTH_URL_MAX (STORAGE_URI_MAX + 16)
#define HEALTH_KV_TIMEOUT_MS 1000
#define HEALTH_QUIET_EVERY 60 /* with down_after = 0, repeat the warning every this many checks */

struct health_count {
    int64_t id;
    unsigned fails; /* consecutive failed checks */
};

struct health {
    const struct cfg *cfg;
    pthread_t thread;
    struct db *db;
    struct kv *kv;
    struct health_count *counts; /* sorted by id, as storage_list_load returns them */
    size_t ncounts;
    bool db_away;
};

static bool health_checked(enum storage_mode m)
{
    return m == SMODE_RW || m == SMODE_RO || m == SMODE_SPARE;
}

static unsigned health_timeout_ms(const struct health *h)
{
    uint64_t t = h->cfg->repaird.health_interval_ms;

    if (t < HEALTH_TIMEOUT_MIN_MS)
        t = HEALTH_TIMEOUT_MIN_MS;
    if (t > HEALTH_TIMEOUT_MAX_MS)
        t = HEALTH_TIMEOUT_MAX_MS;
    return (unsigned) t;
}

static void health_mark_down(struct health *h, const struct storage_info *s, unsigned fails,
                             const char *err)
{
    char reason[400];
    struct mode_change_result res;
    struct mode_storage_request req = {
        .storage_id = s->id,
        .to = SMODE_DOWN,
        .actor = ACTOR_REPAIRD,
        .only_from = MODE_FROM(SMODE_RW) | MODE_FROM(SMODE_RO) | MODE_FROM(SMODE_SPARE),
        .reason = reason,
        .who = {NULL, "repaird"},
    };
    int r;

    snprintf(reason, sizeof(reason), "health check failed %u times in a row: %s", fails, err);
    r = mode_change_storage(h->db, h->kv, &req, &res);
    if (r == 0 && res.outcome == MODE_CHANGED)
        log_warn("event=storage_marked_down storage=%s cluster=%s fails=%u cluster_mode=%s "
                 "err=\"%s\"",
                 s->name, res.cluster_name, fails, cluster_mode_name(res.effective_after), err);
    else if (r == 0)
        log_info("event=storage_already_down storage=%s", s->name);
    else
        log_error("event=storage_mark_down_failed storage=%s err=\"%s\"", s->name, res.message);
}

/* Carries the failure counters over to this round's list (both sorted by id): storages that
 * left the list (removed, marked down) lose theirs. */
static int health_counts_follow(struct health *h, const struct storage_list *l)
{
    struct health_count *nc = calloc(l->n + 1, sizeof(*nc));
    size_t j = 0;

    if (!nc)
        return -ENOMEM;
    for (size_t i = 0; i < l->n; i++) {
        nc[i].id = l->v[i].id;
        while (j < h->ncounts && h->counts[j].id < nc[i].id)
            j++;
        if (j < h->ncounts && h->counts[j].id == nc[i].id && health_checked(l->v[i].mode))
            nc[i].fails = h->counts[j].fails;
    }
    free(h->counts);
    h->counts = nc;
    h->ncounts = l->n;
    return 0;
}

static void health_result(struct health *h, const struct storage_info *s, struct health_count *c,
                          const struct http_req *req)
{
    unsigned down_after = h->cfg->repaird.down_after;
    char err[200];

    if (req->err == 0 && req->info.status == 200) {
        if (c->fails > 0)
            log_info("event=health_check_ok storage=%s after_fails=%u", s->name, c->fails);
        c->fails = 0;
        return;
    }
    if (req->err)
        snprintf(err, sizeof(err), "%s", req->errmsg);
    else
        snprintf(err, sizeof(err), "GET /_health answered %ld", req->info.status);
    c->fails++;
    if (c->fails == 1 || (down_after == 0 && c->fails % HEALTH_QUIET_EVERY == 0))
        log_warn("event=health_check_failed storage=%s fails=%u down_after=%u err=\"%s\"", s->name,
                 c->fails, down_after, err);
    else
        log_info("event=health_check_failed storage=%s fails=%u down_after=%u err=\"%s\"", s->name,
                 c->fails, down_after, err);
    if (down_after > 0 && c->fails >= down_after) {
        health_mark_down(h, s, c->fails, err);
        c->fails = 0;
    }
}

static void health_round(struct health *h)
{
    struct storage_list l = {0};
    struct http_req *reqs = NULL;
    char(*urls)[HEALTH_URL_MAX] = NULL;
    size_t *which = NULL, n = 0;
    unsigned timeout = health_timeout_ms(h);

    if (storage_list_load(h->db, -1, &l) < 0) {
        if (!h->db_away)
            log_warn("event=health_db_error err=\"%s\" note=\"checks resume when PostgreSQL "
                     "answers\"",
                     db_error(h->db));
        h->db_away = true;
        return;
    }
    h->db_away = false;
    if (health_counts_follow(h, &l) < 0)
        goto out;
    reqs = calloc(l.n + 1, sizeof(*reqs));
    urls = calloc(l.n + 1, sizeof(*urls));
    which = calloc(l.n + 1, sizeof(*which));
    if (!reqs || !urls || !which)
        goto out;
    for (size_t i = 0; i < l.n; i++) {
        if (!health_checked(l.v[i].mode) ||
            storage_url(&l.v[i], "_health", urls[n], HEALTH_URL_MAX) < 0)
            continue;
        reqs[n] = (struct http_req){.method = HTTP_GET,
                                    .url = urls[n],
                                    .timeout_ms = timeout,
                                    .connect_timeout_ms = timeout};
        which[n++] = i;
    }
    if (n == 0 || http_multi_run(reqs, n, timeout + 500) < 0)
        goto out;
    for (size_t k = 0; k < n && !stopflag_raised(); k++)
        health_result(h, &l.v[which[k]], &h->counts[which[k]], &reqs[k]);
out:
    free(reqs);
    free(urls);
    free(which);
    storage_list_release(&l);
}

static void *health_main(void *arg)
{
    struct health *h = arg;
    uint64_t interval = h->cfg->repaird.health_interval_ms;
    char err[256];
    bool logged = false;

    while (!(h->db = db_open(h->cfg->database.url, err, sizeof(err)))) {
        if (!logged)
            log_warn("event=db_unreachable err=\"%s\" note=\"retrying every second\"", err);
        logged = true;
        if (stopflag_sleep_ms(1000))
            goto out;
    }
    log_info("event=health_checks_started interval_ms=%" PRIu64 " down_after=%u timeout_ms=%u",
             interval, h->cfg->repaird.down_after, health_timeout_ms(h));
    do {
        uint64_t t0 = job_now_ms(), spent;

        health_round(h);
        spent = job_now_ms() - t0;
        if (spent >= interval)
            continue;
        if (stopflag_sleep_ms(interval - spent))
            break;
    } while (!stopflag_raised());
out:
    http_thread_cleanup();
    return NULL;
}

int health_start(const struct cfg *cfg, struct health **ret)
{
    struct health *h = calloc(1, sizeof(*h));
    char err[256];
    int r;

    if (!h)
        return -ENOMEM;
    h->cfg = cfg;
    h->kv = kv_open(cfg->redis.url, HEALTH_KV_TIMEOUT_MS, err, sizeof(err));
    if (!h->kv) {
        log_error("event=redis_config_error err=\"%s\"", err);
        free(h);
        return -EINVAL;
    }
    r = -pthread_create(&h->thread, NULL, health_main, h);
    if (r < 0) {
        kv_free(h->kv);
        free(h);
        return r;
    }
    *ret = h;
    return 0;
}

void health_join(struct health *h)
{
    if (!h)
        return;
    pthread_join(h->thread, NULL);
    db_free(h->db);
    kv_free(h->kv);
    free(h->counts);
    free(h);
}
