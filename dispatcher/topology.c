/* dispatcher/topology.c — loads clusters and storages from PostgreSQL into immutable snapshots,
 * derives each cluster's effective mode through modes.c, and swaps snapshots atomically. */
#include "topology.h"

#include "db.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOPOLOGY_INTERVAL_MS 500 /* the fallback while Redis (stf:modes) is away */
#define TOPOLOGY_MAX_STORAGES 100000

struct topology {
    char *db_url;
    struct db *db; /* used by the reload thread only (and topology_reload_now before it runs) */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct topo *current;
    bool reload_requested;
    bool stopping;
    time_t loaded_at; /* monotonic seconds of the last successful load, 0 = never */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t load_mu; /* serializes loads (thread vs topology_reload_now) */
};

static void topo_free(struct topo *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nclusters; i++)
        free(s->clusters[i].name);
    for (size_t i = 0; i < s->nstorages; i++) {
        free(s->storages[i].name);
        free(s->storages[i].uri);
    }
    free(s->clusters);
    free(s->storages);
    free(s);
}

struct topo *topology_get(struct topology *t)
{
    struct topo *s;

    pthread_mutex_lock(&t->mu);
    s = t->current;
    if (s)
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&t->mu);
    return s;
}

void topology_put(struct topo *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
        topo_free(s);
}

const struct topo_cluster *topo_cluster_find(const struct topo *s, int64_t id)
{
    size_t lo = 0, hi = s->nclusters;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (s->clusters[mid].id == id)
            return &s->clusters[mid];
        if (s->clusters[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int64_t field_i64(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Fills s->storages from the result and points each cluster at its range. */
static int load_storages(struct topo *s, const PGresult *res)
{
    int n = PQntuples(res);

    if (n > TOPOLOGY_MAX_STORAGES)
        return -E2BIG;
    s->storages = calloc((size_t) n + 1, sizeof(*s->storages));
    if (!s->storages)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        struct topo_storage *st = &s->storages[s->nstorages];
        size_t ulen;

        st->id = field_i64(res, i, 0);
        st->cluster_id = field_i64(res, i, 1);
        st->name = strdup(PQgetvalue(res, i, 2));
        st->uri = strdup(PQgetvalue(res, i, 3));
        s->nstorages++;
        if (!st->name || !st->uri)
            return -ENOMEM;
        ulen = strlen(st->uri);
        while (ulen > 0 && st->uri[ulen - 1] == '/')
            st->uri[--ulen] = '\0';
        if (storage_mode_parse(PQgetvalue(res, i, 4), &st->mode) < 0)
            st->mode = SMODE_DOWN; /* unknown to this build: no traffic */
    }
    return 0;
}

static int load_clusters(struct topo *s, const PGresult *res)
{
    int n = PQntuples(res);
    enum storage_mode *modes = NULL;
    size_t si = 0;
    int r = 0;

    s->clusters = calloc((size_t) n + 1, sizeof(*s->clusters));
    modes = calloc(s->nstorages + 1, sizeof(*modes));
    if (!s->clusters || !modes) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct topo_cluster *c = &s->clusters[s->nclusters];
        const char *forced_s = PQgetvalue(res, i, 2);
        enum cluster_mode forced = CMODE_RW;

        c->id = field_i64(res, i, 0);
        c->name = strdup(PQgetvalue(res, i, 1));
        s->nclusters++;
        if (!c->name) {
            r = -ENOMEM;
            goto out;
        }
        if (forced_s[0] && cluster_mode_parse(forced_s, &forced) < 0)
            forced = CMODE_DOWN;
        /* storages are sorted by cluster id like the clusters */
        while (si < s->nstorages && s->storages[si].cluster_id < c->id)
            si++;
        c->first = si;
        while (si < s->nstorages && s->storages[si].cluster_id == c->id) {
            modes[si - c->first] = s->storages[si].mode;
            si++;
        }
        c->n = si - c->first;
        c->effective = modes_cluster_effective(forced, modes, c->n);
    }
out:
    free(modes);
    return r;
}

static bool topo_equal(const struct topo *a, const struct topo *b)
{
    if (!a || !b || a->nclusters != b->nclusters || a->nstorages != b->nstorages)
        return false;
    for (size_t i = 0; i < a->nclusters; i++) {
        if (a->clusters[i].id != b->clusters[i].id ||
            a->clusters[i].effective != b->clusters[i].effective ||
            a->clusters[i].n != b->clusters[i].n ||
            strcmp(a->clusters[i].name, b->clusters[i].name))
            return false;
    }
    for (size_t i = 0; i < a->nstorages; i++) {
        const struct topo_storage *x = &a->storages[i], *y = &b->storages[i];

        if (x->id != y->id || x->cluster_id != y->cluster_id || x->mode != y->mode ||
            strcmp(x->uri, y->uri) || strcmp(x->name, y->name))
            return false;
    }
    return true;
}

static time_t mono_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* Loads a snapshot on db (a consistent read of both tables) and installs it. */
static int topology_load(struct topology *t, struct db **dbp)
{
    PGresult *cres = NULL, *sres = NULL;
    struct topo *s = NULL, *old = NULL;
    char err[256];
    int r = -EIO;

    if (!*dbp) {
        *dbp = db_open(t->db_url, err, sizeof(err));
        if (!*dbp) {
            log_debug("event=topology_connect_failed error=\"%s\"", err);
            return -EIO;
        }
    }
    if (db_begin_with(*dbp, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") < 0)
        goto out;
    sres = db_exec(*dbp,
                   "SELECT id, cluster_id, name, uri, mode FROM storages "
                   "ORDER BY cluster_id, id",
                   0, NULL);
    cres = db_exec(*dbp, "SELECT id, name, coalesce(forced_mode, '') FROM clusters ORDER BY id", 0,
                   NULL);
    if (!sres || !cres) {
        db_rollback(*dbp);
        goto out;
    }
    if (db_commit(*dbp) < 0)
        goto out;
    s = calloc(1, sizeof(*s));
    if (!s) {
        r = -ENOMEM;
        goto out;
    }
    s->refs = 1;
    r = load_storages(s, sres);
    if (r == 0)
        r = load_clusters(s, cres);
    if (r < 0)
        goto out;
    pthread_mutex_lock(&t->mu);
    s->generation = t->current ? t->current->generation : 0;
    if (!topo_equal(t->current, s))
        s->generation++;
    old = t->current;
    t->current = s;
    t->loaded_at = mono_seconds();
    pthread_mutex_unlock(&t->mu);
    metrics_inc(MC_TOPOLOGY_RELOADS, 1);
    if (!old || old->generation != s->generation)
        log_info("event=topology_loaded clusters=%zu storages=%zu generation=%" PRIu64,
                 s->nclusters, s->nstorages, s->generation);
    s = NULL;
    topology_put(old);
    r = 0;
out:
    if (r == -EIO)
        log_debug("event=topology_load_failed error=\"%s\"", *dbp ? db_error(*dbp) : "no db");
    PQclear(sres);
    PQclear(cres);
    topo_free(s);
    return r;
}

int topology_reload_now(struct topology *t)
{
    int r;

    pthread_mutex_lock(&t->load_mu);
    r = topology_load(t, &t->db);
    pthread_mutex_unlock(&t->load_mu);
    return r;
}

static void *topology_thread(void *arg)
{
    struct topology *t = arg;

    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        struct timespec until;

        if (!t->reload_requested) {
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += TOPOLOGY_INTERVAL_MS / 1000;
            until.tv_nsec += (TOPOLOGY_INTERVAL_MS % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&t->cond, &t->mu, &until);
        }
        if (t->stopping)
            break;
        t->reload_requested = false;
        pthread_mutex_unlock(&t->mu);
        topology_reload_now(t);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

struct topology *topology_new(const char *db_url)
{
    struct topology *t = calloc(1, sizeof(*t));
    pthread_condattr_t ca;

    if (!t)
        return NULL;
    t->db_url = strdup(db_url);
    if (!t->db_url) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->load_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    topology_reload_now(t);
    if (pthread_create(&t->thread, NULL, topology_thread, t) != 0) {
        topology_free(t);
        return NULL;
    }
    t->thread_started = true;
    return t;
}

void topology_free(struct topology *t)
{
    if (!t)
        return;
    if (t->thread_started) {
        pthread_mutex_lock(&t->mu);
        t->stopping = true;
        pthread_cond_signal(&t->cond);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
    }
    topology_put(t->current);
    db_free(t->db);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->load_mu);
    free(t->db_url);
    free(t);
}

void topology_reload_soon(struct topology *t)
{
    pthread_mutex_lock(&t->mu);
    t->reload_requested = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

int64_t topology_age_seconds(struct topology *t)
{
    int64_t age;

    pthread_mutex_lock(&t->mu);
    age = t->loaded_at ? (int64_t) (mono_seconds() - t->loaded_at) : -1;
    pthread_mutex_unlock(&t->mu);
    return age;
}
