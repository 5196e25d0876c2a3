/* clusterctl/cmd_repair.c — `clusterctl repair STORAGE [--from PEER] [--wait] [--json]`: checks
 * the storage and its peer, moves it down|spare -> repair with its recover_storage job in the
 * same transaction, and follows the job's progress (bar, or JSON lines) until it is rw again. */
#include "buf.h"
#include "ctl.h"
#include "db.h"
#include "http_client.h"
#include "jobs.h"
#include "mode_change.h"
#include "output.h"
#include "progress.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPAIR_HEALTH_TIMEOUT_MS 3000u
#define REPAIR_POLL_MS 200        /* how often the job row is read */
#define REPAIR_JSON_EVERY_MS 1000 /* --json: one line this often (and at every phase change) */

struct repair_storage {
    int64_t id, cluster_id;
    char name[64], cluster[64], uri[256];
    enum storage_mode mode;
};

struct repair_members {
    struct repair_storage *v;
    size_t n;
};

/* The storage named name and the members of its cluster. Returns 0, -ENOENT, -EIO. */
static int repair_load(struct db *db, const char *name, struct repair_storage *ret,
                       struct repair_members *members)
{
    const char *params[] = {name};
    PGresult *res;
    int n, r = -ENOENT;

    res = db_exec(db,
                  "SELECT s.id, s.cluster_id, s.name, c.name, s.uri, s.mode, "
                  "s.name = $1 AS self FROM storages s JOIN clusters c ON c.id = s.cluster_id "
                  "WHERE s.cluster_id = (SELECT cluster_id FROM storages WHERE name = $1) "
                  "ORDER BY s.id",
                  1, params);
    if (!res)
        return -EIO;
    n = PQntuples(res);
    members->v = calloc((size_t) n + 1, sizeof(*members->v));
    members->n = 0;
    if (!members->v) {
        PQclear(res);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        struct repair_storage *s = &members->v[members->n];

        s->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        s->cluster_id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        snprintf(s->name, sizeof(s->name), "%s", PQgetvalue(res, i, 2));
        snprintf(s->cluster, sizeof(s->cluster), "%s", PQgetvalue(res, i, 3));
        snprintf(s->uri, sizeof(s->uri), "%s", PQgetvalue(res, i, 4));
        if (storage_mode_parse(PQgetvalue(res, i, 5), &s->mode) < 0)
            continue;
        if (strcmp(PQgetvalue(res, i, 6), "t") == 0) {
            *ret = *s;
            r = 0;
        }
        members->n++;
    }
    PQclear(res);
    return r;
}

/* GET uri/_health. Returns NULL when it answers 200, else why not (static buffer). */
static const char *repair_unhealthy(const char *uri)
{
    static char why[600];
    char url[300];
    struct http_req req = {.method = HTTP_GET, .url = url, .timeout_ms = REPAIR_HEALTH_TIMEOUT_MS};
    int r;

    snprintf(url, sizeof(url), "%s/_health", uri);
    r = http_perform(&req);
    if (r == 200)
        return NULL;
    if (r < 0)
        snprintf(why, sizeof(why), "%s does not answer: %s", url, req.errmsg);
    else
        snprintf(why, sizeof(why), "%s answers HTTP %d", url, r);
    return why;
}

/* The peer to copy from: --from, else the first healthy rw member, else a healthy ro one.
 * Returns it, or NULL after printing why. */
static const struct repair_storage *repair_pick_peer(const struct repair_storage *target,
                                                     const struct repair_members *m,
                                                     const char *from)
{
    static const enum storage_mode prefer[] = {SMODE_RW, SMODE_RO};
    const char *why;

    for (size_t i = 0; from && i < m->n; i++) {
        const struct repair_storage *s = &m->v[i];

        if (strcmp(s->name, from) != 0)
            continue;
        if (s->id == target->id) {
            ctl_err("refused: %s cannot be copied from itself", from);
            return NULL;
        }
        if (s->mode != SMODE_RW && s->mode != SMODE_RO) {
            ctl_err("refused: %s is %s; the peer must be readable (rw or ro)", from,
                    storage_mode_name(s->mode));
            return NULL;
        }
        why = repair_unhealthy(s->uri);
        if (why) {
            ctl_err("refused: the peer %s is not healthy: %s", from, why);
            return NULL;
        }
        return s;
    }
    if (from) {
        ctl_err("refused: %s is not a storage of cluster %s", from, target->cluster);
        return NULL;
    }
    for (size_t k = 0; k < sizeof(prefer) / sizeof(prefer[0]); k++) {
        for (size_t i = 0; i < m->n; i++) {
            const struct repair_storage *s = &m->v[i];

            if (s->id != target->id && s->mode == prefer[k] && !repair_unhealthy(s->uri))
                return s;
        }
    }
    ctl_err("refused: no readable, healthy storage left in cluster %s to copy from",
            target->cluster);
    return NULL;
}

struct repair_tx {
    char payload[256];
    int64_t job_id;
};

static int repair_in_tx(struct db *db, struct mode_change_result *res, void *arg)
{
    struct repair_tx *tx = arg;

    if (jobs_insert(db, "recover_storage", tx->payload, &tx->job_id) < 0) {
        snprintf(res->message, sizeof(res->message), "cannot record the recovery job: %s",
                 db_error(db));
        return -EIO;
    }
    return 0;
}

/* The newest recover_storage job of a storage: id, state and its from_storage_id. Returns 1
 * found, 0 none, -EIO. */
static int repair_last_job(struct db *db, int64_t storage_id, int64_t *ret_id, char *state,
                           size_t statelen, int64_t *ret_from)
{
    char ids[24];
    const char *params[] = {ids};
    PGresult *res;
    int r = 0;

    snprintf(ids, sizeof(ids), "%" PRId64, storage_id);
    res = db_exec(db,
                  "SELECT id, state, COALESCE(payload ->> 'from_storage_id', '0') FROM jobs "
                  "WHERE kind = 'recover_storage' AND payload ->> 'storage_id' = $1 "
                  "ORDER BY id DESC LIMIT 1",
                  1, params);
    if (!res)
        return -EIO;
    if (PQntuples(res) == 1) {
        *ret_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(state, statelen, "%s", PQgetvalue(res, 0, 1));
        *ret_from = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        r = 1;
    }
    PQclear(res);
    return r;
}

/* A new job for a storage already in repair whose last job ended (failed): it resumes from
 * that job's progress when the peer is the same. Returns 0 or -EIO. */
static int repair_resume_job(struct ctl *ctl, struct db *db, int64_t last_id, int64_t last_from,
                             const struct repair_storage *target, const struct repair_storage *peer,
                             bool explicit_from, int64_t *ret_id)
{
    char ids[3][24], extra[256];
    const char *params[] = {ids[0], ids[1], extra, ids[2]};
    PGresult *res;

    snprintf(ids[0], sizeof(ids[0]), "%" PRId64, last_id);
    snprintf(ids[1], sizeof(ids[1]), "%" PRId64, last_from);
    snprintf(ids[2], sizeof(ids[2]), "%" PRId64, peer->id);
    snprintf(extra, sizeof(extra),
             "{\"storage_id\":%" PRId64 ",\"from_storage_id\":%" PRId64
             ",\"from_explicit\":%s,\"requested_by\":\"%s\"}",
             target->id, peer->id, explicit_from ? "true" : "false", ctl_actor());
    /* keep the progress of the last job only when it copied from the same peer */
    res = db_exec(db,
                  "INSERT INTO jobs (kind, payload) SELECT 'recover_storage', "
                  "CASE WHEN $2::bigint = $4::bigint THEN COALESCE("
                  "(SELECT payload FROM jobs WHERE id = $1::bigint), '{}') ELSE '{}'::jsonb END "
                  "|| $3::jsonb RETURNING id",
                  4, params);
    if (!res || PQntuples(res) != 1) {
        ctl_err("cannot record the recovery job: %s", db_error(db));
        PQclear(res);
        return -EIO;
    }
    *ret_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    jobs_announce(ctl_kv(ctl), *ret_id);
    return 0;
}

/* --- following the progress -------------------------------------------------------------- */

struct repair_progress {
    char state[16], phase[16], mode[16], error[512];
    uint64_t files_total, files_done, bytes_total, bytes_done, bytes_sent;
    uint64_t copied, updated, deleted, same;
    uint64_t n_checked, n_copied, n_deleted, n_lost;
    double rate, copy_seconds;
    int64_t eta;
    int attempts;
};

static uint64_t u64v(PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? 0 : strtoull(PQgetvalue(res, 0, col), NULL, 10);
}

/* Reads the job row and the storage's mode. Returns 0, -ENOENT (job gone), -EIO. */
static int repair_read(struct db *db, int64_t job_id, int64_t storage_id, struct repair_progress *p)
{
    char ids[2][24];
    const char *params[] = {ids[0], ids[1]};
    PGresult *res;
    int r = 0;

    snprintf(ids[0], sizeof(ids[0]), "%" PRId64, job_id);
    snprintf(ids[1], sizeof(ids[1]), "%" PRId64, storage_id);
    res = db_exec(db,
                  "SELECT j.state, COALESCE(j.payload ->> 'phase', 'copy'), "
                  "COALESCE((SELECT mode FROM storages WHERE id = $2::bigint), 'removed'), "
                  "COALESCE(j.last_error, ''), j.attempts, "
                  "j.payload ->> 'files_total', j.payload ->> 'files_done', "
                  "j.payload ->> 'bytes_total', j.payload ->> 'bytes_done', "
                  "j.payload ->> 'bytes_sent', j.payload ->> 'files_copied', "
                  "j.payload ->> 'files_updated', j.payload ->> 'files_deleted', "
                  "j.payload ->> 'files_same', j.payload ->> 'narrow_checked', "
                  "j.payload ->> 'narrow_copied', j.payload ->> 'narrow_deleted', "
                  "j.payload ->> 'narrow_lost', "
                  "COALESCE(j.payload ->> 'rate_bytes_per_sec', '0'), "
                  "COALESCE(j.payload ->> 'eta_seconds', '-1'), "
                  "COALESCE(j.payload ->> 'copy_seconds', '0') "
                  "FROM jobs j WHERE j.id = $1::bigint",
                  2, params);
    if (!res)
        return -EIO;
    if (PQntuples(res) != 1) {
        r = -ENOENT;
        goto out;
    }
    snprintf(p->state, sizeof(p->state), "%s", PQgetvalue(res, 0, 0));
    snprintf(p->phase, sizeof(p->phase), "%s", PQgetvalue(res, 0, 1));
    snprintf(p->mode, sizeof(p->mode), "%s", PQgetvalue(res, 0, 2));
    snprintf(p->error, sizeof(p->error), "%s", PQgetvalue(res, 0, 3));
    p->attempts = atoi(PQgetvalue(res, 0, 4));
    p->files_total = u64v(res, 5);
    p->files_done = u64v(res, 6);
    p->bytes_total = u64v(res, 7);
    p->bytes_done = u64v(res, 8);
    p->bytes_sent = u64v(res, 9);
    p->copied = u64v(res, 10);
    p->updated = u64v(res, 11);
    p->deleted = u64v(res, 12);
    p->same = u64v(res, 13);
    p->n_checked = u64v(res, 14);
    p->n_copied = u64v(res, 15);
    p->n_deleted = u64v(res, 16);
    p->n_lost = u64v(res, 17);
    p->rate = strtod(PQgetvalue(res, 0, 18), NULL);
    p->eta = strtoll(PQgetvalue(res, 0, 19), NULL, 10);
    p->copy_seconds = strtod(PQgetvalue(res, 0, 20), NULL);
out:
    PQclear(res);
    return r;
}

/* One human line: the bar while copying, counters afterwards. */
static void repair_line(const struct repair_storage *t, const struct repair_progress *p, char *out,
                        size_t outlen)
{
    char label[96], note[560] = "";

    if (strcmp(p->state, "pending") == 0 && p->error[0])
        snprintf(note, sizeof(note), "%s", p->error);
    else if (strcmp(p->phase, "copy") == 0 && p->files_total == 0)
        snprintf(note, sizeof(note), "reading the manifests");
    if (strcmp(p->phase, "copy") == 0) {
        snprintf(label, sizeof(label), "%s: copy", t->name);
        progress_format(out, outlen, label, p->files_done, p->files_total, p->bytes_done,
                        p->bytes_total, p->rate, p->eta, note);
        return;
    }
    snprintf(out, outlen,
             "%s: narrow recovery: %" PRIu64 " changed objects checked, %" PRIu64
             " copied, %" PRIu64 " deleted files removed%s%s%s",
             t->name, p->n_checked, p->n_copied, p->n_deleted, note[0] ? " (" : "", note,
             note[0] ? ")" : "");
}

static int repair_json_line(const struct repair_storage *t, int64_t job_id,
                            const struct repair_progress *p, const char *event)
{
    struct out_json j;
    struct buf b;
    int r;

    buf_init(&b, 4096);
    out_json_begin(&j, &b);
    out_json_obj_open(&j, NULL);
    out_json_str(&j, "event", event);
    out_json_str(&j, "storage", t->name);
    out_json_str(&j, "cluster", t->cluster);
    out_json_int(&j, "job", job_id);
    out_json_str(&j, "state", p->state);
    out_json_str(&j, "phase", p->phase);
    out_json_str(&j, "mode", p->mode);
    out_json_uint(&j, "files_done", p->files_done);
    out_json_uint(&j, "files_total", p->files_total);
    out_json_uint(&j, "bytes_done", p->bytes_done);
    out_json_uint(&j, "bytes_total", p->bytes_total);
    out_json_uint(&j, "bytes_sent", p->bytes_sent);
    out_json_uint(&j, "rate_bytes_per_sec", (uint64_t) p->rate);
    out_json_uint(&j, "copy_ms", (uint64_t) (p->copy_seconds * 1000));
    if (p->eta >= 0)
        out_json_int(&j, "eta_seconds", p->eta);
    else
        out_json_null(&j, "eta_seconds");
    out_json_uint(&j, "files_copied", p->copied);
    out_json_uint(&j, "files_updated", p->updated);
    out_json_uint(&j, "files_deleted", p->deleted);
    out_json_uint(&j, "files_same", p->same);
    out_json_uint(&j, "narrow_checked", p->n_checked);
    out_json_uint(&j, "narrow_copied", p->n_copied);
    out_json_uint(&j, "narrow_deleted", p->n_deleted);
    out_json_uint(&j, "narrow_lost", p->n_lost);
    out_json_str(&j, "error", p->error[0] ? p->error : NULL);
    out_json_obj_close(&j);
    r = out_json_end(&j);
    if (r == 0)
        printf("%s\n", b.ptr);
    fflush(stdout);
    buf_release(&b);
    return r;
}

/* The cluster's effective mode now. */
static const char *repair_cluster_mode(struct db *db, int64_t cluster_id)
{
    char ids[24];
    const char *params[] = {ids};
    enum storage_mode modes[256];
    enum cluster_mode forced = CMODE_RW;
    PGresult *res;
    size_t n = 0;

    snprintf(ids, sizeof(ids), "%" PRId64, cluster_id);
    res = db_exec(db,
                  "SELECT s.mode, COALESCE(c.forced_mode, 'rw') FROM clusters c "
                  "LEFT JOIN storages s ON s.cluster_id = c.id WHERE c.id = $1::bigint",
                  1, params);
    if (!res)
        return "?";
    for (int i = 0; i < PQntuples(res) && n < 256; i++) {
        cluster_mode_parse(PQgetvalue(res, i, 1), &forced);
        if (!PQgetisnull(res, i, 0) && storage_mode_parse(PQgetvalue(res, i, 0), &modes[n]) == 0)
            n++;
    }
    PQclear(res);
    return cluster_mode_name(modes_cluster_effective(forced, modes, n));
}

/* Follows the job until the storage is rw (0) or the recovery failed (1). */
static int repair_follow(struct db *db, const struct repair_storage *t, int64_t job_id, bool json)
{
    struct progress prog;
    struct repair_progress p;
    char line[1024], last_phase[16] = "";
    long since_json = REPAIR_JSON_EVERY_MS;
    int r;

    progress_init(&prog, stdout);
    for (;;) {
        memset(&p, 0, sizeof(p));
        r = repair_read(db, job_id, t->id, &p);
        if (progress_retry(&prog, r < 0 && r != -ENOENT)) {
            progress_sleep_ms(REPAIR_POLL_MS);
            continue;
        }
        if (r == -ENOENT) {
            progress_end(&prog);
            ctl_err("the recovery job %" PRId64 " disappeared", job_id);
            return CTL_FAILED;
        }
        if (r < 0) {
            progress_end(&prog);
            ctl_err("cannot read the job: %s", db_error(db));
            return CTL_FAILED;
        }
        if (strcmp(p.state, "done") == 0 || strcmp(p.state, "failed") == 0 ||
            (strcmp(p.mode, "repair") != 0 && strcmp(p.mode, "rw") != 0))
            break;
        if (json) {
            if (since_json >= REPAIR_JSON_EVERY_MS || strcmp(last_phase, p.phase) != 0) {
                repair_json_line(t, job_id, &p, "progress");
                since_json = 0;
            }
            since_json += REPAIR_POLL_MS;
            snprintf(last_phase, sizeof(last_phase), "%s", p.phase);
        } else {
            repair_line(t, &p, line, sizeof(line));
            progress_show(&prog, line, strcmp(last_phase, p.phase) != 0);
            snprintf(last_phase, sizeof(last_phase), "%s", p.phase);
        }
        progress_sleep_ms(REPAIR_POLL_MS);
    }
    progress_end(&prog);
    if (strcmp(p.state, "done") == 0 && strcmp(p.mode, "rw") == 0) {
        if (json)
            return repair_json_line(t, job_id, &p, "done") == 0 ? CTL_OK : CTL_FAILED;
        printf("%s: repair -> rw; %" PRIu64 " files (%" PRIu64 " copied, %" PRIu64
               " updated, %" PRIu64 " removed, %" PRIu64 " unchanged); narrow recovery: %" PRIu64
               " copied, %" PRIu64 " removed; cluster %s is %s\n",
               t->name, p.files_done, p.copied, p.updated, p.deleted, p.same, p.n_copied,
               p.n_deleted, t->cluster, repair_cluster_mode(db, t->cluster_id));
        return CTL_OK;
    }
    if (json)
        repair_json_line(t, job_id, &p, "failed");
    if (strcmp(p.state, "failed") == 0)
        ctl_err("recovery of %s failed (job %" PRId64 "): %s; %s is %s", t->name, job_id,
                p.error[0] ? p.error : "no reason recorded", t->name, p.mode);
    else
        ctl_err("recovery of %s abandoned: it is %s now (job %" PRId64 " %s)", t->name, p.mode,
                job_id, p.state);
    return CTL_FAILED;
}

/* --- the command ------------------------------------------------------------------------- */

/* The storage is already in repair: follow its job, or start a new one after a failed one. */
static int repair_again(struct ctl *ctl, struct db *db, const struct repair_storage *t,
                        const struct repair_members *m, const char *from, bool wait, bool json)
{
    const struct repair_storage *peer;
    char state[16] = "";
    int64_t job_id = 0, last_from = 0;
    int r;

    r = repair_last_job(db, t->id, &job_id, state, sizeof(state), &last_from);
    if (r < 0) {
        ctl_err("cannot read the jobs: %s", db_error(db));
        return CTL_FAILED;
    }
    if (r > 0 && (strcmp(state, "pending") == 0 || strcmp(state, "running") == 0)) {
        for (size_t i = 0; from && i < m->n; i++) {
            if (strcmp(m->v[i].name, from) == 0 && m->v[i].id != last_from) {
                ctl_err("refused: %s is already being repaired (job %" PRId64
                        ") from another peer; abort it with `clusterctl mark-down %s` first",
                        t->name, job_id, t->name);
                return CTL_FAILED;
            }
        }
        if (!wait) {
            printf("%s is already being repaired (job %" PRId64 "); follow it with "
                   "`clusterctl repair %s --wait`\n",
                   t->name, job_id, t->name);
            return CTL_OK;
        }
        return repair_follow(db, t, job_id, json);
    }
    peer = repair_pick_peer(t, m, from);
    if (!peer)
        return CTL_FAILED;
    if (repair_resume_job(ctl, db, r > 0 ? job_id : 0, last_from, t, peer, from != NULL, &job_id) <
        0)
        return CTL_FAILED;
    if (!json)
        printf("%s is in repair; its last recovery ended: recovery job %" PRId64
               " resumes from %s\n",
               t->name, job_id, peer->name);
    return wait ? repair_follow(db, t, job_id, json) : CTL_OK;
}

static int cmd_repair(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL, *from = NULL, *reason = NULL, *why;
    bool wait = false, json = false;
    const struct ctl_opt opts[] = {
        {"from", true, &from, NULL},
        {"wait", false, NULL, &wait},
        {"json", false, NULL, &json},
        {"reason", true, &reason, NULL},
        {0},
    };
    struct repair_members m = {0};
    struct repair_storage t;
    const struct repair_storage *peer;
    struct mode_change_result res;
    struct mode_who who = {ctl_actor(), "clusterctl"};
    struct repair_tx tx = {0};
    char why_buf[512];
    struct db *db;
    int r, rc = CTL_FAILED;

    r = ctl_parse_name(ctl, argc, argv, opts, "storage", &name, &reason);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (from && !ctl_name_valid(from))
        return ctl_usage_err(ctl, "bad --from storage name '%s'", from);
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    r = repair_load(db, name, &t, &m);
    if (r == -ENOENT) {
        ctl_err("no storage named %s", name);
        goto out;
    }
    if (r < 0) {
        ctl_err("cannot read the storages: %s", db_error(db));
        goto out;
    }
    if (t.mode == SMODE_REPAIR) {
        rc = repair_again(ctl, db, &t, &m, from, wait, json);
        goto out;
    }
    if (modes_check_transition(name, t.mode, SMODE_REPAIR, ACTOR_OPERATOR, false, false, why_buf,
                               sizeof(why_buf)) < 0) { /* the state machine's own words */
        ctl_err("refused: %s", why_buf);
        goto out;
    }
    why = repair_unhealthy(t.uri);
    if (why) {
        ctl_err("refused: %s must run on its (new) disk before the copy: %s", name, why);
        goto out;
    }
    peer = repair_pick_peer(&t, &m, from);
    if (!peer)
        goto out;
    snprintf(tx.payload, sizeof(tx.payload),
             "{\"storage_id\":%" PRId64 ",\"from_storage_id\":%" PRId64
             ",\"from_explicit\":%s,\"requested_by\":\"%s\"}",
             t.id, peer->id, from ? "true" : "false", who.actor);
    if (!reason)
        reason = "whole-disk recovery";
    mode_change_begin_repair(db, ctl_kv(ctl), name, reason, &who, repair_in_tx, &tx, &res);
    if (res.outcome != MODE_CHANGED) {
        ctl_err("%s%s", res.outcome == MODE_REFUSED ? "refused: " : "",
                res.message[0] ? res.message : "failed");
        goto out;
    }
    jobs_announce(ctl_kv(ctl), tx.job_id);
    if (!json)
        printf("%s: %s -> repair (cluster %s: %s); copying %s's disk, recovery job %" PRId64 "\n",
               name, storage_mode_name(res.from), t.cluster, cluster_mode_name(res.effective_after),
               peer->name, tx.job_id);
    if (!wait) {
        if (!json)
            printf("follow it with `clusterctl repair %s --wait` (or `clusterctl jobs`)\n", name);
        else
            printf("{\"event\":\"started\",\"storage\":\"%s\",\"job\":%" PRId64
                   ",\"peer\":\"%s\"}\n",
                   name, tx.job_id, peer->name);
        rc = CTL_OK;
        goto out;
    }
    rc = repair_follow(db, &t, tx.job_id, json);
out:
    free(m.v);
    return rc;
}

const struct ctl_cmd ctl_cmd_repair = {
    .name = "repair",
    .fn = cmd_repair,
    .synopsis = "STORAGE [--from PEER] [--wait] [--json] [--reason TEXT]",
    .summary = "rebuild a down or spare storage: whole-disk copy + narrow recovery",
    .help = "options:\n"
            "  --from PEER     the readable storage of the same cluster to copy from\n"
            "                  (default: the first healthy rw member)\n"
            "  --wait          follow the progress (files, bytes, rate, time left) until the\n"
            "                  storage is rw again; exit 1 with the reason if it fails\n"
            "  --json          with --wait: one JSON object per second (and at every phase\n"
            "                  change) instead of the bar; the last one has \"event\":\"done\"\n"
            "                  or \"failed\"\n"
            "  --reason TEXT   recorded in `clusterctl history`\n\n"
            "The storage goes to repair (its cluster is ro meanwhile: writes go to other\n"
            "clusters, reads go on from the other members). repaird copies PEER's whole disk\n"
            "onto it with librsync (only what differs, when the disk is stale), then copies or\n"
            "removes what changed in the cluster since the copy began, then sets it rw.\n"
            "Run again on a storage in repair to follow its job, or to restart it after it\n"
            "failed (it resumes where it stopped). Abort with `clusterctl mark-down STORAGE`.\n"
            "See docs/runbook-disk-replacement.md.\n",
};
