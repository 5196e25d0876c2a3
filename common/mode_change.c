/* common/mode_change.c — applies storage/cluster mode changes and removals in one PostgreSQL
 * transaction under row locks, records mode_history, then notifies dispatchers over Redis. */
#include "mode_change.h"

#include "db.h"
#include "kv.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A cluster never has this many storages; a bound on what one change loads. */
#define MC_MAX_MEMBERS 4096
/* Attempts when a concurrent change moved the ground (storage removed meanwhile, deadlock). */
#define MC_ATTEMPTS 3

struct mc_member {
    int64_t id;
    char name[64];
    enum storage_mode mode;
};

/* A cluster row and its storage rows, locked FOR UPDATE in the open transaction. */
struct mc_cluster {
    int64_t id;
    char name[64];
    enum cluster_mode forced;
    struct mc_member *members;
    size_t n;
    bool has_objects;
};

static void mc_cluster_release(struct mc_cluster *c)
{
    free(c->members);
    c->members = NULL;
    c->n = 0;
}

static void mc_msg(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void mc_msg(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
    out[strcspn(out, "\r\n")] = '\0';
}

static void mc_copy(char *out, size_t outlen, const char *s)
{
    snprintf(out, outlen, "%s", s ? s : "");
}

static void mc_result_init(struct mode_change_result *res)
{
    memset(res, 0, sizeof(*res));
    res->outcome = MODE_FAILED;
}

/* Records a database failure (rolling back) and returns -EIO. */
static int mc_db_fail(struct db *db, struct mode_change_result *res, const char *what)
{
    const char *state = db_sqlstate(db);

    if (strcmp(state, "55P03") == 0)
        mc_msg(res->message, sizeof(res->message),
               "%s: another change holds the lock for more than %s; try again", what,
               MODE_CHANGE_LOCK_TIMEOUT);
    else if (strcmp(state, "42P01") == 0)
        mc_msg(res->message, sizeof(res->message), "%s: %s (run `clusterctl migrate` first)", what,
               db_error(db));
    else
        mc_msg(res->message, sizeof(res->message), "%s: %s", what, db_error(db));
    db_rollback(db);
    res->outcome = MODE_FAILED;
    return -EIO;
}

/* Reports a failure of mc_lock_cluster other than -ENOENT. */
static int mc_lock_fail(struct db *db, struct mode_change_result *res, const char *what, int r)
{
    if (r == -EIO)
        return mc_db_fail(db, res, what);
    mc_msg(res->message, sizeof(res->message), "%s: %s", what,
           r == -E2BIG ? "the cluster has too many storages" : strerror(-r));
    db_rollback(db);
    res->outcome = MODE_FAILED;
    return r;
}

static bool mc_retryable(struct db *db)
{
    const char *state = db_sqlstate(db);

    return strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0;
}

const char *mode_who_os_user(void)
{
    static char name[64];
    const char *sudo = getenv("SUDO_USER");
    struct passwd pw, *found = NULL;
    char pwbuf[1024];

    if (getuid() == 0 && sudo && *sudo && strlen(sudo) < sizeof(name) &&
        strpbrk(sudo, " \t\r\n") == NULL) {
        snprintf(name, sizeof(name), "%s", sudo);
        return name;
    }
    if (getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &found) == 0 && found && pw.pw_name)
        snprintf(name, sizeof(name), "%s", pw.pw_name);
    else
        snprintf(name, sizeof(name), "uid:%u", (unsigned) getuid());
    return name;
}

static enum cluster_mode mc_effective(const struct mc_cluster *c)
{
    enum storage_mode modes[MC_MAX_MEMBERS];

    for (size_t i = 0; i < c->n; i++)
        modes[i] = c->members[i].mode;
    return modes_cluster_effective(c->forced, modes, c->n);
}

static struct mc_member *mc_find_member(struct mc_cluster *c, int64_t id, const char *name)
{
    for (size_t i = 0; i < c->n; i++) {
        if (name ? strcmp(c->members[i].name, name) == 0 : c->members[i].id == id)
            return &c->members[i];
    }
    return NULL;
}

/* Inside the open transaction: locks the cluster (by id, or by name when name is non-NULL),
 * then its storages in id order, and reads whether it holds objects. Returns 0, -ENOENT
 * (no such cluster; nothing stored in res), -EIO (db error; the caller reports it). */
static int mc_lock_cluster(struct db *db, int64_t id, const char *name, struct mc_cluster *c)
{
    char ids[24];
    const char *p[1];
    PGresult *res = NULL;
    int r = -EIO, n;

    memset(c, 0, sizeof(*c));
    if (db_run(db, "SET LOCAL lock_timeout = '" MODE_CHANGE_LOCK_TIMEOUT "'", 0, NULL) < 0)
        goto out;
    snprintf(ids, sizeof(ids), "%" PRId64, id);
    p[0] = name ? name : ids;
    res = db_exec(db,
                  name ? "SELECT id, name, forced_mode FROM clusters WHERE name = $1 FOR UPDATE"
                       : "SELECT id, name, forced_mode FROM clusters WHERE id = $1 FOR UPDATE",
                  1, p);
    if (!res)
        goto out;
    if (PQntuples(res) != 1) {
        r = -ENOENT;
        goto out;
    }
    c->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    mc_copy(c->name, sizeof(c->name), PQgetvalue(res, 0, 1));
    c->forced = CMODE_RW;
    if (!PQgetisnull(res, 0, 2) && cluster_mode_parse(PQgetvalue(res, 0, 2), &c->forced) < 0)
        c->forced = CMODE_DOWN; /* unknown: the safe reading */
    PQclear(res);

    snprintf(ids, sizeof(ids), "%" PRId64, c->id);
    p[0] = ids;
    res = db_exec(db,
                  "SELECT id, name, mode FROM storages WHERE cluster_id = $1 ORDER BY id"
                  " FOR UPDATE",
                  1, p);
    if (!res)
        goto out;
    n = PQntuples(res);
    if (n > MC_MAX_MEMBERS) {
        r = -E2BIG;
        goto out;
    }
    c->members = calloc((size_t) n + 1, sizeof(*c->members));
    if (!c->members) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct mc_member *m = &c->members[i];

        m->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        mc_copy(m->name, sizeof(m->name), PQgetvalue(res, i, 1));
        if (storage_mode_parse(PQgetvalue(res, i, 2), &m->mode) < 0)
            m->mode = SMODE_DOWN;
    }
    c->n = (size_t) n;
    PQclear(res);

    res = db_exec(db, "SELECT EXISTS (SELECT 1 FROM objects WHERE cluster_id = $1)", 1, p);
    if (!res)
        goto out;
    c->has_objects = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    r = 0;
out:
    PQclear(res);
    if (r < 0)
        mc_cluster_release(c);
    return r;
}

const char *mode_reason_invalid(const char *reason)
{
    if (!reason)
        return NULL;
    if (strlen(reason) > MODE_REASON_MAX)
        return "reason is longer than 500 bytes";
    for (const unsigned char *p = (const unsigned char *) reason; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return "reason must be one line of printable text";
    }
    return NULL;
}

/* Copies reason into out (MODE_REASON_MAX + 1 bytes), cut at a UTF-8 boundary, with control
 * characters replaced by spaces. */
static void mc_reason_clean(const char *reason, char *out)
{
    size_t n = reason ? strlen(reason) : 0;

    if (n > MODE_REASON_MAX) {
        n = MODE_REASON_MAX;
        while (n > 0 && ((unsigned char) reason[n] & 0xc0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) reason[i];

        out[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char) ch;
    }
    out[n] = '\0';
}

static int mc_history(struct db *db, const char *kind, int64_t id, const char *name,
                      const char *from, const char *to, const char *reason,
                      const struct mode_who *who)
{
    char ids[24], clean[MODE_REASON_MAX + 1];
    const char *actor = who && who->actor && *who->actor ? who->actor : mode_who_os_user();
    const char *program = who && who->program && *who->program ? who->program : "stf";

    mc_reason_clean(reason, clean);
    snprintf(ids, sizeof(ids), "%" PRId64, id);
    return db_run(db,
                  "INSERT INTO mode_history (target_kind, target_id, target_name, from_mode,"
                  " to_mode, reason, actor, program) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                  8, (const char *[]){kind, ids, name, from, to, clean, actor, program});
}

static void mc_publish(struct kv *kv, const char *kind, int64_t id, struct mode_change_result *res)
{
    char msg[64];

    if (!kv)
        return;
    snprintf(msg, sizeof(msg), "%s %" PRId64, kind, id);
    if (kv_publish(kv, MODES_CHANNEL, msg) == 0)
        res->published = true;
    else
        log_debug("event=modes_publish_failed msg=\"%s\" err=\"%s\"", msg, kv_error(kv));
}

/* Outside any transaction: the cluster a storage belongs to now. */
static int mc_storage_cluster(struct db *db, const char *name, int64_t id, int64_t *ret)
{
    char ids[24];
    const char *p[1];

    snprintf(ids, sizeof(ids), "%" PRId64, id);
    p[0] = name ? name : ids;
    return db_query_int64(db,
                          name ? "SELECT cluster_id FROM storages WHERE name = $1"
                               : "SELECT cluster_id FROM storages WHERE id = $1",
                          1, p, ret);
}

static void mc_not_found_storage(struct mode_change_result *res, const char *name, int64_t id)
{
    res->outcome = MODE_NOT_FOUND;
    if (name)
        mc_msg(res->message, sizeof(res->message), "no storage named %s (see `clusterctl status`)",
               name);
    else
        mc_msg(res->message, sizeof(res->message), "no storage with id %" PRId64, id);
}

/* Opens a transaction and locks the cluster of a storage (by name, else by id) and its
 * storages; fills the identity part of res. Returns 0 with *ret_member pointing into c, or
 * with the transaction closed: -ENOENT (no such storage; res says so), -EAGAIN (it moved or
 * went away between the two statements: try again), another negative errno (res says why). */
static int mc_begin_storage(struct db *db, const char *name, int64_t id, const char *what,
                            struct mc_cluster *c, struct mc_member **ret_member,
                            struct mode_change_result *res)
{
    struct mc_member *m;
    int64_t cluster_id;
    int r;

    r = mc_storage_cluster(db, name, id, &cluster_id);
    if (r == -ENOENT) {
        mc_not_found_storage(res, name, id);
        return -ENOENT;
    }
    if (r < 0 || db_begin(db) < 0)
        return mc_db_fail(db, res, what);
    r = mc_lock_cluster(db, cluster_id, NULL, c);
    if (r == -ENOENT) {
        db_rollback(db);
        return -EAGAIN;
    }
    if (r < 0)
        return mc_lock_fail(db, res, what, r);
    m = mc_find_member(c, id, name);
    if (!m) {
        db_rollback(db);
        mc_cluster_release(c);
        return -EAGAIN;
    }
    res->storage_id = m->id;
    res->cluster_id = c->id;
    mc_copy(res->storage_name, sizeof(res->storage_name), m->name);
    mc_copy(res->cluster_name, sizeof(res->cluster_name), c->name);
    res->from = res->to = m->mode;
    res->forced_from = res->forced_to = c->forced;
    res->cluster_has_objects = c->has_objects;
    res->effective_before = res->effective_after = mc_effective(c);
    *ret_member = m;
    return 0;
}

/* Whether req applies to m (locked, current): 1 = apply, 0 = already there (MODE_UNCHANGED),
 * -EPERM = refused (MODE_REFUSED); res->message says why, res->warning what --force risks. */
static int mc_storage_decide(const struct mode_storage_request *req, const struct mc_cluster *c,
                             const struct mc_member *m, struct mode_change_result *res)
{
    const char *from = storage_mode_name(m->mode), *to = storage_mode_name(req->to);

    if (m->mode == req->to) {
        res->outcome = MODE_UNCHANGED;
        mc_msg(res->message, sizeof(res->message), "%s is already %s", m->name, to);
        return 0;
    }
    res->outcome = MODE_REFUSED;
    if (req->only_from && !(req->only_from & MODE_FROM(m->mode))) {
        mc_msg(res->message, sizeof(res->message),
               "%s is %s now (changed meanwhile); %s -> %s not applied", m->name, from, from, to);
        return -EPERM;
    }
    if (modes_check_transition(m->name, m->mode, req->to, req->actor, c->has_objects, req->force,
                               res->message, sizeof(res->message)) < 0)
        return -EPERM;
    modes_force_risk(m->name, m->mode, req->to, c->has_objects, res->warning, sizeof(res->warning));
    return 1;
}

/* Ends a failed attempt inside the transaction: -EAGAIN for a deadlock or serialization
 * failure (try again), else the error in res. */
static int mc_attempt_fail(struct db *db, struct mc_cluster *c, struct mode_change_result *res,
                           const char *what)
{
    mc_cluster_release(c);
    if (mc_retryable(db)) {
        db_rollback(db);
        return -EAGAIN;
    }
    return mc_db_fail(db, res, what);
}

/* One attempt of mode_change_storage. Returns as the public function, or -EAGAIN when the
 * caller should try again. */
static int mc_storage_once(struct db *db, const struct mode_storage_request *req,
                           struct mode_change_result *res)
{
    struct mc_cluster c = {0};
    struct mc_member *m = NULL;
    char what[128], ids[24];
    int r;

    mc_msg(what, sizeof(what), "cannot change %s",
           req->storage_name ? req->storage_name : "the storage");
    r = mc_begin_storage(db, req->storage_name, req->storage_id, what, &c, &m, res);
    if (r < 0)
        return r;
    mc_msg(what, sizeof(what), "cannot change %s", m->name);
    res->to = req->to;
    r = mc_storage_decide(req, &c, m, res);
    if (r <= 0) {
        db_rollback(db);
        mc_cluster_release(&c);
        return r;
    }
    snprintf(ids, sizeof(ids), "%" PRId64, m->id);
    if (db_run(db, "UPDATE storages SET mode = $2, updated_at = now() WHERE id = $1", 2,
               (const char *[]){ids, storage_mode_name(req->to)}) < 0 ||
        mc_history(db, "storage", m->id, m->name, storage_mode_name(m->mode),
                   storage_mode_name(req->to), req->reason, &req->who) < 0)
        return mc_attempt_fail(db, &c, res, what);
    m->mode = req->to;
    res->effective_after = mc_effective(&c);
    if (req->in_tx && req->in_tx(db, res, req->in_tx_arg) < 0) {
        if (!res->message[0])
            mc_msg(res->message, sizeof(res->message), "%s: %s", what, db_error(db));
        db_rollback(db);
        res->outcome = MODE_FAILED;
        mc_cluster_release(&c);
        return -EIO;
    }
    if (db_commit(db) < 0)
        return mc_attempt_fail(db, &c, res, what);
    res->outcome = MODE_CHANGED;
    mc_cluster_release(&c);
    return 0;
}

int mode_change_storage(struct db *db, struct kv *kv, const struct mode_storage_request *req,
                        struct mode_change_result *res)
{
    int r = -EAGAIN;

    mc_result_init(res);
    if (!db || !req || (unsigned) req->to >= SMODE__COUNT ||
        (!req->storage_name && req->storage_id <= 0)) {
        mc_msg(res->message, sizeof(res->message), "bad mode change request");
        return -EINVAL;
    }
    for (int attempt = 0; attempt < MC_ATTEMPTS && r == -EAGAIN; attempt++) {
        mc_result_init(res);
        r = mc_storage_once(db, req, res);
    }
    if (r == -EAGAIN) {
        mc_not_found_storage(res, req->storage_name, req->storage_id);
        return -ENOENT;
    }
    if (r == 0 && res->outcome == MODE_CHANGED) {
        log_debug("event=storage_mode_changed storage=%s from=%s to=%s", res->storage_name,
                  storage_mode_name(res->from), storage_mode_name(res->to));
        mc_publish(kv, "storage", res->storage_id, res);
    }
    return r;
}

/* Opens a transaction and locks the cluster named name and its storages; fills the cluster
 * part of res. Returns 0, or with the transaction closed -ENOENT (res says so) or another
 * negative errno (res says why). */
static int mc_begin_cluster(struct db *db, const char *name, const char *what, struct mc_cluster *c,
                            struct mode_change_result *res)
{
    int r;

    if (db_begin(db) < 0)
        return mc_db_fail(db, res, what);
    r = mc_lock_cluster(db, 0, name, c);
    if (r == -ENOENT) {
        db_rollback(db);
        res->outcome = MODE_NOT_FOUND;
        mc_msg(res->message, sizeof(res->message), "no cluster named %s (see `clusterctl status`)",
               name);
        return -ENOENT;
    }
    if (r < 0)
        return mc_lock_fail(db, res, what, r);
    res->cluster_id = c->id;
    mc_copy(res->cluster_name, sizeof(res->cluster_name), c->name);
    res->forced_from = res->forced_to = c->forced;
    res->cluster_has_objects = c->has_objects;
    res->effective_before = res->effective_after = mc_effective(c);
    return 0;
}

int mode_change_cluster(struct db *db, struct kv *kv, const char *cluster_name,
                        enum cluster_mode forced, const char *reason, const struct mode_who *who,
                        struct mode_change_result *res)
{
    struct mc_cluster c = {0};
    char what[128], ids[24];
    int r;

    mc_result_init(res);
    if (!db || !cluster_name || (unsigned) forced >= CMODE__COUNT) {
        mc_msg(res->message, sizeof(res->message), "bad mode change request");
        return -EINVAL;
    }
    mc_msg(what, sizeof(what), "cannot change cluster %s", cluster_name);
    r = mc_begin_cluster(db, cluster_name, what, &c, res);
    if (r < 0)
        return r;
    res->forced_to = forced;
    if (c.forced == forced) {
        db_rollback(db);
        res->outcome = MODE_UNCHANGED;
        if (forced == CMODE_RW)
            mc_msg(res->message, sizeof(res->message),
                   "cluster %s is already rw (not forced lower; effective mode %s)", c.name,
                   cluster_mode_name(res->effective_before));
        else
            mc_msg(res->message, sizeof(res->message), "cluster %s is already forced %s", c.name,
                   cluster_mode_name(forced));
        mc_cluster_release(&c);
        return 0;
    }
    snprintf(ids, sizeof(ids), "%" PRId64, c.id);
    if (db_run(db, "UPDATE clusters SET forced_mode = $2, updated_at = now() WHERE id = $1", 2,
               (const char *[]){ids, forced == CMODE_RW ? NULL : cluster_mode_name(forced)}) < 0)
        goto db_fail;
    if (mc_history(db, "cluster", c.id, c.name, cluster_mode_name(c.forced),
                   cluster_mode_name(forced), reason, who) < 0)
        goto db_fail;
    if (db_commit(db) < 0)
        goto db_fail;
    c.forced = forced;
    res->effective_after = mc_effective(&c);
    res->outcome = MODE_CHANGED;
    mc_cluster_release(&c);
    log_debug("event=cluster_mode_forced cluster=%s to=%s", res->cluster_name,
              cluster_mode_name(forced));
    mc_publish(kv, "cluster", res->cluster_id, res);
    return 0;
db_fail:
    mc_cluster_release(&c);
    return mc_db_fail(db, res, what);
}

int mode_change_repair_finished(struct db *db, struct kv *kv, int64_t storage_id, bool success,
                                const char *detail, struct mode_change_result *res)
{
    struct mode_storage_request req = {
        .storage_id = storage_id,
        .to = success ? SMODE_RW : SMODE_DOWN,
        .actor = ACTOR_REPAIRD,
        .only_from = MODE_FROM(SMODE_REPAIR),
        .reason = detail && *detail ? detail : (success ? "recovery finished" : "recovery failed"),
        .who = {NULL, "repaird"},
    };

    return mode_change_storage(db, kv, &req, res);
}

int mode_change_health_down(struct db *db, struct kv *kv, int64_t storage_id, const char *detail,
                            struct mode_change_result *res)
{
    struct mode_storage_request req = {
        .storage_id = storage_id,
        .to = SMODE_DOWN,
        .actor = ACTOR_REPAIRD,
        .only_from = MODE_FROM(SMODE_RW) | MODE_FROM(SMODE_RO) | MODE_FROM(SMODE_SPARE),
        .reason = detail && *detail ? detail : "health checks failed",
        .who = {NULL, "repaird"},
    };

    return mode_change_storage(db, kv, &req, res);
}

int mode_change_begin_repair(struct db *db, struct kv *kv, const char *storage_name,
                             const char *reason, const struct mode_who *who,
                             int (*in_tx)(struct db *, struct mode_change_result *, void *),
                             void *in_tx_arg, struct mode_change_result *res)
{
    struct mode_storage_request req = {
        .storage_name = storage_name,
        .to = SMODE_REPAIR,
        .actor = ACTOR_OPERATOR,
        .reason = reason,
        .who = who ? *who : (struct mode_who){NULL, "clusterctl"},
        .in_tx = in_tx,
        .in_tx_arg = in_tx_arg,
    };

    return mode_change_storage(db, kv, &req, res);
}

/* Why m may not be removed (one line into res, outcome MODE_REFUSED), or 0; sets the warning
 * of a forced removal. */
static int mc_remove_storage_check(const struct mc_cluster *c, const struct mc_member *m,
                                   bool force, struct mode_change_result *res)
{
    if (m->mode == SMODE_REPAIR) {
        res->outcome = MODE_REFUSED;
        mc_msg(res->message, sizeof(res->message),
               "%s is being repaired; abort the repair with `clusterctl mark-down %s` first",
               m->name, m->name);
        return -EPERM;
    }
    if (c->has_objects && !force) {
        res->outcome = MODE_REFUSED;
        mc_msg(res->message, sizeof(res->message),
               "%s holds copies of the objects of cluster %s; removing it drops those copies "
               "(use --force to remove it anyway)",
               m->name, c->name);
        return -EPERM;
    }
    if (c->has_objects)
        mc_msg(res->warning, sizeof(res->warning),
               "the copies %s held of cluster %s's objects no longer count; its files stay on "
               "its disk",
               m->name, c->name);
    return 0;
}

/* One attempt of mode_change_remove_storage; -EAGAIN as in mc_storage_once. */
static int mc_remove_storage_once(struct db *db, const char *name, bool force, const char *reason,
                                  const struct mode_who *who, struct mode_change_result *res)
{
    struct mc_cluster c = {0};
    struct mc_member *m = NULL;
    char what[128], ids[24];
    int r;

    mc_msg(what, sizeof(what), "cannot remove %s", name);
    r = mc_begin_storage(db, name, 0, what, &c, &m, res);
    if (r < 0)
        return r;
    r = mc_remove_storage_check(&c, m, force, res);
    if (r < 0) {
        db_rollback(db);
        mc_cluster_release(&c);
        return r;
    }
    snprintf(ids, sizeof(ids), "%" PRId64, m->id);
    if (db_run(db, "DELETE FROM storages WHERE id = $1", 1, (const char *[]){ids}) < 0 ||
        mc_history(db, "storage", m->id, m->name, storage_mode_name(m->mode), "removed", reason,
                   who) < 0 ||
        db_commit(db) < 0)
        return mc_attempt_fail(db, &c, res, what);
    /* the effective mode without it */
    *m = c.members[c.n - 1];
    c.n--;
    res->effective_after = mc_effective(&c);
    res->outcome = MODE_CHANGED;
    mc_cluster_release(&c);
    return 0;
}

int mode_change_remove_storage(struct db *db, struct kv *kv, const char *storage_name, bool force,
                               const char *reason, const struct mode_who *who,
                               struct mode_change_result *res)
{
    int r = -EAGAIN;

    mc_result_init(res);
    if (!db || !storage_name) {
        mc_msg(res->message, sizeof(res->message), "bad removal request");
        return -EINVAL;
    }
    for (int attempt = 0; attempt < MC_ATTEMPTS && r == -EAGAIN; attempt++) {
        mc_result_init(res);
        r = mc_remove_storage_once(db, storage_name, force, reason, who, res);
    }
    if (r == -EAGAIN) {
        mc_not_found_storage(res, storage_name, 0);
        return -ENOENT;
    }
    if (r == 0) {
        log_debug("event=storage_removed storage=%s", res->storage_name);
        mc_publish(kv, "storage", res->storage_id, res);
    }
    return r;
}

/* Why cluster c may not be removed (one line into res, -EPERM), 0, or -EIO. */
static int mc_remove_cluster_check(struct db *db, const struct mc_cluster *c,
                                   struct mode_change_result *res)
{
    char ids[24], names[256] = "";
    int64_t njobs = 0;

    if (c->n > 0) {
        for (size_t i = 0; i < c->n && strlen(names) < 200; i++)
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? ", " : "",
                     c->members[i].name);
        mc_msg(res->message, sizeof(res->message),
               "cluster %s still has %zu storage%s (%s%s); remove them first with "
               "`clusterctl storage remove`",
               c->name, c->n, c->n == 1 ? "" : "s", names, strlen(names) >= 200 ? ", ..." : "");
        return -EPERM;
    }
    if (c->has_objects) {
        mc_msg(res->message, sizeof(res->message),
               "cluster %s still holds objects (also counted: objects of deleted buckets not yet "
               "purged)",
               c->name);
        return -EPERM;
    }
    snprintf(ids, sizeof(ids), "%" PRId64, c->id);
    if (db_query_int64(db,
                       "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')"
                       " AND payload->>'cluster_id' = $1",
                       1, (const char *[]){ids}, &njobs) < 0)
        return -EIO;
    if (njobs > 0) {
        mc_msg(res->message, sizeof(res->message),
               "%" PRId64 " background %s to cluster %s (see `clusterctl jobs`)", njobs,
               njobs == 1 ? "job still refers" : "jobs still refer", c->name);
        return -EPERM;
    }
    return 0;
}

int mode_change_remove_cluster(struct db *db, struct kv *kv, const char *cluster_name,
                               const char *reason, const struct mode_who *who,
                               struct mode_change_result *res)
{
    struct mc_cluster c = {0};
    char what[128], ids[24];
    int r;

    mc_result_init(res);
    if (!db || !cluster_name) {
        mc_msg(res->message, sizeof(res->message), "bad removal request");
        return -EINVAL;
    }
    mc_msg(what, sizeof(what), "cannot remove cluster %s", cluster_name);
    r = mc_begin_cluster(db, cluster_name, what, &c, res);
    if (r < 0)
        return r;
    r = mc_remove_cluster_check(db, &c, res);
    if (r == -EPERM) {
        res->outcome = MODE_REFUSED;
        db_rollback(db);
        mc_cluster_release(&c);
        return r;
    }
    snprintf(ids, sizeof(ids), "%" PRId64, c.id);
    if (r < 0 || db_run(db, "DELETE FROM clusters WHERE id = $1", 1, (const char *[]){ids}) < 0 ||
        mc_history(db, "cluster", c.id, c.name, cluster_mode_name(c.forced), "removed", reason,
                   who) < 0 ||
        db_commit(db) < 0) {
        mc_cluster_release(&c);
        return mc_db_fail(db, res, what);
    }
    res->outcome = MODE_CHANGED;
    mc_cluster_release(&c);
    log_debug("event=cluster_removed cluster=%s", res->cluster_name);
    mc_publish(kv, "cluster", res->cluster_id, res);
    return 0;
}
