/* repaird/job_recover_storage.c — the recover_storage job (SPEC §4, §8): a whole-disk copy of a
 * readable peer onto a storage in repair (the two manifests merged; files fetched, updated or
 * deleted through rsync_copy), then the narrow recovery of what changed since the copy began,
 * then repair -> rw. Progress (phase, cursor, counters, rate, ETA) lives in the job payload, so
 * a restarted repaird resumes where the last checkpoint left off and clusterctl can show it. */
#include "job.h"

#include "buf.h"
#include "db.h"
#include "http_client.h"
#include "log.h"
#include "mode_change.h"
#include "narrow_recovery.h"
#include "recover_manifest.h"
#include "rsync_copy.h"
#include "storage_list.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECOVER_LANES_DEFAULT 16
#define RECOVER_PULLS_DEFAULT 4       /* batches the target pulls from the peer at once */
#define RECOVER_PULL_FILES_DEFAULT 64 /* files in one batch */
#define RECOVER_WINDOW 1024           /* manifest entries between the cursor and the newest */
#define RECOVER_SAVE_MS 1000          /* progress saved (and modes checked) this often */
#define RECOVER_SYNC_MS 10000 /* the target synced (and the resume cursor moved) this often */
#define RECOVER_MTIME_SLACK_NS 2000000000LL /* copies of one write differ by milliseconds */
#define RECOVER_FILE_TRIES 3
#define RECOVER_BATCH 256 /* manifest entries decided (and their ETags looked up) at once */
#define RECOVER_HEALTH_TIMEOUT_MS 5000u
/* The peer must hold at least this share (per mille) of the cluster's objects: a peer with
 * far fewer files than the cluster has objects is a wrong or damaged disk, and mirroring it
 * would delete good files on the target. */
#define RECOVER_PEER_MIN_PERMILLE 990

enum recover_phase { PHASE_COPY = 0, PHASE_NARROW, PHASE_FINISH };
static const char *const recover_phase_names[] = {"copy", "narrow", "finish"};

struct recover_win {
    struct rcopy_item it;
    char rel[BLOB_REL_MAX];
    bool peer; /* an entry of the peer's manifest (counts towards files/bytes done) */
    bool done;
    bool retry; /* failed; to be submitted again */
    unsigned tries;
    unsigned alt; /* peers tried after the main one (its copy was missing or not the object) */
};

/* One decision of the merge, waiting to be pushed into the window. */
struct recover_next {
    struct manifest_entry pe, te;
    bool has_p, has_t, same;
    char etag[33]; /* objects.etag of the peer's file, "" when it is not a live object */
};

struct recover {
    struct job *job;
    struct db *db;
    struct storage_list all;
    const struct storage_info *target, *peer;
    const struct storage_info *alts[64]; /* other readable members, for bad or missing copies */
    unsigned nalts;
    int64_t storage_id, from_id;
    bool from_explicit;
    unsigned lanes, pulls, pull_files;
    uint64_t sync_ms;
    /* persisted in the payload */
    enum recover_phase phase;
    char started[64]; /* copy_started_at, as PostgreSQL prints timestamptz */
    char cursor[BLOB_REL_MAX];
    uint64_t files_total, bytes_total, files_done, bytes_done;
    uint64_t copied, updated, deleted, same, vanished, bytes_sent, bytes_literal;
    double copy_seconds; /* spent copying in earlier runs */
    struct narrow_progress narrow;
    /* this run */
    uint64_t run_start_ms, run_bytes_start, last_save_ms, last_sync_ms;
    struct recover_win win[RECOVER_WINDOW];
    uint64_t win_seq; /* seq of the oldest entry in the window */
    unsigned win_n;
    struct rcopy *rc;
    struct recover_next batch[RECOVER_BATCH];
    unsigned batch_n, batch_i;
    uint64_t lost;                  /* live objects no readable peer has a good copy of */
    bool sync_pending;              /* a background sync of the target is under way */
    char snap_cursor[BLOB_REL_MAX]; /* ... and what will be durable once it is done */
    uint64_t snap_files_done, snap_bytes_done;
    char durable[BLOB_REL_MAX]; /* the cursor a new run resumes from (saved as "cursor") */
    uint64_t durable_files, durable_bytes; /* files_done/bytes_done up to it */
    int file_err;
    char file_errmsg[400];
    int stop_err; /* -ECANCELED / -ESTALE seen by a transfer */
};

/* --- payload ----------------------------------------------------------------------------- */

/* The payload fields a run reads back. */
enum recover_key {
    K_STORAGE_ID,
    K_FROM_ID,
    K_FROM_EXPLICIT,
    K_PHASE,
    K_STARTED,
    K_CURSOR,
    K_FILES_TOTAL,
    K_BYTES_TOTAL,
    K_CURSOR_FILES,
    K_CURSOR_BYTES,
    K_COPIED,
    K_UPDATED,
    K_DELETED,
    K_SAME,
    K_VANISHED,
    K_LOST,
    K_SENT,
    K_LITERAL,
    K_COPY_S,
    K_N_STEP,
    K_N_AFTER_ID,
    K_N_AFTER_TS,
    K_N_CHECKED,
    K_N_COPIED,
    K_N_DELETED,
    K_N_LOST,
    K_N_BYTES,
    K__COUNT
};

static const char *const recover_keys[K__COUNT] = {
    [K_STORAGE_ID] = "storage_id",
    [K_FROM_ID] = "from_storage_id",
    [K_FROM_EXPLICIT] = "from_explicit",
    [K_PHASE] = "phase",
    [K_STARTED] = "copy_started_at",
    [K_CURSOR] = "cursor",
    [K_FILES_TOTAL] = "files_total",
    [K_BYTES_TOTAL] = "bytes_total",
    [K_CURSOR_FILES] = "cursor_files_done",
    [K_CURSOR_BYTES] = "cursor_bytes_done",
    [K_COPIED] = "files_copied",
    [K_UPDATED] = "files_updated",
    [K_DELETED] = "files_deleted",
    [K_SAME] = "files_same",
    [K_VANISHED] = "files_vanished",
    [K_LOST] = "files_lost",
    [K_SENT] = "bytes_sent",
    [K_LITERAL] = "bytes_literal",
    [K_COPY_S] = "copy_seconds",
    [K_N_STEP] = "narrow_step",
    [K_N_AFTER_ID] = "narrow_after_id",
    [K_N_AFTER_TS] = "narrow_after_ts",
    [K_N_CHECKED] = "narrow_checked",
    [K_N_COPIED] = "narrow_copied",
    [K_N_DELETED] = "narrow_deleted",
    [K_N_LOST] = "narrow_lost",
    [K_N_BYTES] = "narrow_bytes",
};

static uint64_t u64_of(const char *s)
{
    return s && *s ? strtoull(s, NULL, 10) : 0;
}

/* Reads every field in one query. Returns 0, -EINVAL (bad payload), -EIO. */
static int recover_load_payload(struct recover *rc)
{
    char keys[1024] = "{", *v[K__COUNT];
    const char *params[] = {rc->job->payload, keys};
    PGresult *res;
    int r = 0;

    for (size_t i = 0; i < K__COUNT; i++)
        snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%s%s", i ? "," : "",
                 recover_keys[i]);
    strcat(keys, "}");
    res = db_exec(rc->db,
                  "SELECT $1::jsonb ->> k FROM unnest($2::text[]) WITH ORDINALITY AS t(k, i) "
                  "ORDER BY i",
                  2, params);
    if (!res)
        return -EIO;
    if (PQntuples(res) != K__COUNT) {
        r = -EIO;
        goto out;
    }
    for (int i = 0; i < K__COUNT; i++)
        v[i] = PQgetisnull(res, i, 0) ? NULL : PQgetvalue(res, i, 0);
    if (!v[K_STORAGE_ID] || !v[K_FROM_ID]) {
        r = -EINVAL;
        goto out;
    }
    rc->storage_id = strtoll(v[K_STORAGE_ID], NULL, 10);
    rc->from_id = strtoll(v[K_FROM_ID], NULL, 10);
    rc->from_explicit = v[K_FROM_EXPLICIT] && strcmp(v[K_FROM_EXPLICIT], "true") == 0;
    rc->phase = PHASE_COPY;
    for (int p = 0; v[K_PHASE] && p <= PHASE_FINISH; p++) {
        if (strcmp(v[K_PHASE], recover_phase_names[p]) == 0)
            rc->phase = (enum recover_phase) p;
    }
    snprintf(rc->started, sizeof(rc->started), "%s", v[K_STARTED] ? v[K_STARTED] : "");
    snprintf(rc->cursor, sizeof(rc->cursor), "%s", v[K_CURSOR] ? v[K_CURSOR] : "");
    if (rc->cursor[0] && !blob_rel_path_valid(rc->cursor, strlen(rc->cursor))) {
        r = -EINVAL;
        goto out;
    }
    memcpy(rc->durable, rc->cursor, sizeof(rc->durable));
    rc->files_total = u64_of(v[K_FILES_TOTAL]);
    rc->bytes_total = u64_of(v[K_BYTES_TOTAL]);
    rc->files_done = rc->durable_files = u64_of(v[K_CURSOR_FILES]);
    rc->bytes_done = rc->durable_bytes = u64_of(v[K_CURSOR_BYTES]);
    rc->copied = u64_of(v[K_COPIED]);
    rc->updated = u64_of(v[K_UPDATED]);
    rc->deleted = u64_of(v[K_DELETED]);
    rc->same = u64_of(v[K_SAME]);
    rc->vanished = u64_of(v[K_VANISHED]);
    rc->lost = u64_of(v[K_LOST]);
    rc->bytes_sent = u64_of(v[K_SENT]);
    rc->bytes_literal = u64_of(v[K_LITERAL]);
    rc->copy_seconds = v[K_COPY_S] ? strtod(v[K_COPY_S], NULL) : 0;
    if (!v[K_N_STEP] || narrow_step_parse(v[K_N_STEP], &rc->narrow.step) < 0)
        rc->narrow.step = NARROW_OBJECTS;
    rc->narrow.after_id = v[K_N_AFTER_ID] ? strtoll(v[K_N_AFTER_ID], NULL, 10) : 0;
    snprintf(rc->narrow.after_ts, sizeof(rc->narrow.after_ts), "%s",
             v[K_N_AFTER_TS] ? v[K_N_AFTER_TS] : "");
    rc->narrow.checked = u64_of(v[K_N_CHECKED]);
    rc->narrow.copied = u64_of(v[K_N_COPIED]);
    rc->narrow.deleted = u64_of(v[K_N_DELETED]);
    rc->narrow.lost = u64_of(v[K_N_LOST]);
    rc->narrow.bytes = u64_of(v[K_N_BYTES]);
out:
    PQclear(res);
    return r;
}

static double recover_elapsed_s(const struct recover *rc)
{
    return (double) (job_now_ms() - rc->run_start_ms) / 1000.0;
}

/* Bytes of the disk gone through per second in this run, 0 while unknown. */
static double recover_rate(const struct recover *rc)
{
    double t = recover_elapsed_s(rc);

    return t >= 1.0 ? (double) (rc->bytes_done - rc->run_bytes_start) / t : 0;
}

/* Merges the progress into the payload and saves it. Returns 0, -ESTALE, -EIO, -ENOMEM. */
static int recover_save(struct recover *rc)
{
    double rate = recover_rate(rc), copy_s = rc->copy_seconds;
    int64_t eta = -1;
    const char *params[2];
    PGresult *res = NULL;
    struct buf b;
    int r;

    if (rc->phase == PHASE_COPY) {
        copy_s += recover_elapsed_s(rc);
        if (rate > 0)
            eta = (int64_t) ((double) (rc->bytes_total > rc->bytes_done
                                           ? rc->bytes_total - rc->bytes_done
                                           : 0) /
                             rate);
    }
    buf_init(&b, 8192);
    r = buf_printf(&b, "{\"phase\":\"%s\",\"copy_started_at\":", recover_phase_names[rc->phase]);
    if (r == 0)
        r = buf_json_str(&b, rc->started);
    if (r == 0)
        r = buf_puts(&b, ",\"cursor\":");
    if (r == 0)
        r = buf_json_str(&b, rc->durable);
    if (r == 0)
        r = buf_puts(&b, ",\"narrow_after_ts\":");
    if (r == 0)
        r = buf_json_str(&b, rc->narrow.after_ts);
    if (r == 0)
        r = buf_puts(&b, ",\"peer\":");
    if (r == 0)
        r = buf_json_str(&b, rc->peer ? rc->peer->name : "");
    if (r == 0)
        r = buf_printf(
            &b,
            ",\"cursor_files_done\":%" PRIu64 ",\"cursor_bytes_done\":%" PRIu64
            ",\"from_storage_id\":%" PRId64 ",\"files_total\":%" PRIu64 ",\"bytes_total\":%" PRIu64
            ",\"files_done\":%" PRIu64 ",\"bytes_done\":%" PRIu64 ",\"files_copied\":%" PRIu64
            ",\"files_updated\":%" PRIu64 ",\"files_deleted\":%" PRIu64 ",\"files_same\":%" PRIu64
            ",\"files_vanished\":%" PRIu64 ",\"files_lost\":%" PRIu64 ",\"bytes_sent\":%" PRIu64
            ",\"bytes_literal\":%" PRIu64
            ",\"copy_seconds\":%.3f,\"rate_bytes_per_sec\":%.0f,\"eta_seconds\":%" PRId64
            ",\"narrow_step\":\"%s\",\"narrow_after_id\":%" PRId64 ",\"narrow_checked\":%" PRIu64
            ",\"narrow_copied\":%" PRIu64 ",\"narrow_deleted\":%" PRIu64 ",\"narrow_lost\":%" PRIu64
            ",\"narrow_bytes\":%" PRIu64 ",\"progress_at\":%lld}",
            rc->durable_files, rc->durable_bytes, rc->from_id, rc->files_total, rc->bytes_total,
            rc->files_done, rc->bytes_done, rc->copied, rc->updated, rc->deleted, rc->same,
            rc->vanished, rc->lost, rc->bytes_sent, rc->bytes_literal, copy_s, rate, eta,
            narrow_step_name(rc->narrow.step), rc->narrow.after_id, rc->narrow.checked,
            rc->narrow.copied, rc->narrow.deleted, rc->narrow.lost, rc->narrow.bytes,
            (long long) time(NULL));
    if (r < 0)
        goto out;
    params[0] = rc->job->payload;
    params[1] = b.ptr;
    res = db_exec(rc->db, "SELECT ($1::jsonb || $2::jsonb)::text", 2, params);
    if (!res || PQntuples(res) != 1) {
        r = -EIO;
        goto out;
    }
    r = job_save_payload(rc->job, PQgetvalue(res, 0, 0));
out:
    PQclear(res);
    buf_release(&b);
    return r;
}

/* --- storages ---------------------------------------------------------------------------- */

static bool recover_readable(enum storage_mode m)
{
    return m == SMODE_RW || m == SMODE_RO;
}

static bool recover_healthy(const struct storage_info *s)
{
    char url[STORAGE_URI_MAX + 16];
    struct http_req req = {.method = HTTP_GET, .url = url, .timeout_ms = RECOVER_HEALTH_TIMEOUT_MS};

    if (storage_url(s, "_health", url, sizeof(url)) < 0)
        return false;
    return http_status_ok(http_perform(&req));
}

/* Finds the target and a readable peer of its cluster. Returns JOB_DONE to go on, or the
 * result to return (job->error set). */
static enum job_result recover_pick(struct recover *rc)
{
    const struct storage_info *best = NULL;

    if (storage_list_load(rc->db, -1, &rc->all) < 0) {
        job_error(rc->job, "cannot read the storages: %s", db_error(rc->db));
        return JOB_WAIT;
    }
    for (size_t i = 0; i < rc->all.n; i++) {
        if (rc->all.v[i].id == rc->storage_id)
            rc->target = &rc->all.v[i];
    }
    if (!rc->target) {
        job_error(rc->job, "storage %" PRId64 " no longer exists", rc->storage_id);
        return JOB_FAIL;
    }
    for (size_t i = 0; i < rc->all.n; i++) {
        const struct storage_info *s = &rc->all.v[i];

        if (s->cluster_id != rc->target->cluster_id || s->id == rc->target->id ||
            !recover_readable(s->mode))
            continue;
        if (s->id == rc->from_id)
            rc->peer = s;
        if (!best || (s->mode == SMODE_RW && best->mode != SMODE_RW))
            best = s;
    }
    if (!rc->peer && rc->from_explicit) {
        job_error(rc->job,
                  "waiting: the peer given with --from (storage %" PRId64
                  ") is not a readable member of %s's cluster",
                  rc->from_id, rc->target->name);
        return JOB_WAIT;
    }
    if (!rc->peer && !best) {
        job_error(rc->job, "waiting: no readable storage left in %s's cluster to copy from",
                  rc->target->name);
        return JOB_WAIT;
    }
    if (!rc->peer) {
        log_warn("event=recover_peer_changed id=%" PRId64 " storage=%s old_peer_id=%" PRId64
                 " new_peer=%s note=\"the copy starts over from the new peer\"",
                 rc->job->id, rc->target->name, rc->from_id, best->name);
        rc->peer = best;
        rc->from_id = best->id;
        rc->cursor[0] = rc->durable[0] = '\0';
        rc->files_done = rc->bytes_done = rc->durable_files = rc->durable_bytes = 0;
        if (rc->phase == PHASE_COPY)
            rc->files_total = rc->bytes_total = 0;
    }
    for (size_t i = 0; i < rc->all.n && rc->nalts < 64; i++) {
        const struct storage_info *s = &rc->all.v[i];

        if (s->cluster_id == rc->target->cluster_id && s != rc->target && s != rc->peer &&
            recover_readable(s->mode))
            rc->alts[rc->nalts++] = s;
    }
    return JOB_DONE;
}

/* Modes now (checked at every checkpoint). Returns 0, -EPERM when the target left repair,
 * -EAGAIN when the peer is no longer readable, -EIO. */
static int recover_check_modes(struct recover *rc, char *err, size_t errlen)
{
    char a[24], b[24];
    const char *params[] = {a, b};
    PGresult *res;
    int r = 0;

    snprintf(a, sizeof(a), "%" PRId64, rc->storage_id);
    snprintf(b, sizeof(b), "%" PRId64, rc->from_id);
    res = db_exec(rc->db, "SELECT id, mode FROM storages WHERE id IN ($1::bigint, $2::bigint)", 2,
                  params);
    if (!res) {
        snprintf(err, errlen, "database: %s", db_error(rc->db));
        return -EIO;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        const char *mode = PQgetvalue(res, i, 1);
        enum storage_mode m;

        if (storage_mode_parse(mode, &m) < 0)
            continue;
        if (id == rc->storage_id && m != SMODE_REPAIR) {
            snprintf(err, errlen, "%s left repair (it is %s now): recovery abandoned",
                     rc->target->name, mode);
            r = -EPERM;
        } else if (id == rc->from_id && !recover_readable(m) && r == 0) {
            snprintf(err, errlen, "the peer %s is %s now", rc->peer->name, mode);
            r = -EAGAIN;
        }
    }
    PQclear(res);
    return r;
}

/* --- the copy ---------------------------------------------------------------------------- */

static struct recover_win *win_at(struct recover *rc, uint64_t seq)
{
    return &rc->win[seq % RECOVER_WINDOW];
}

/* Moves the cursor over the entries done at the front of the window. */
static void recover_advance(struct recover *rc)
{
    while (rc->win_n > 0 && win_at(rc, rc->win_seq)->done) {
        struct recover_win *w = win_at(rc, rc->win_seq);

        snprintf(rc->cursor, sizeof(rc->cursor), "%s", w->rel);
        if (w->peer) {
            rc->files_done++;
            rc->bytes_done += w->it.size;
        }
        rc->win_seq++;
        rc->win_n--;
    }
}

static void recover_file_done(void *arg, const struct rcopy_item *it,
                              const struct rcopy_result *res)
{
    struct recover *rc = arg;
    struct recover_win *w = win_at(rc, it->seq);

    rc->bytes_sent += res->wire_bytes;
    rc->bytes_literal += res->literal;
    if ((res->err == -EBADMSG && it->expect_md5[0]) || (res->err == -ENOENT && w->alt > 0)) {
        /* this peer's copy is not the object (or is gone): another readable member's may be */
        if (w->alt < rc->nalts) {
            w->it.src_uri = rc->alts[w->alt++]->uri;
            w->it.op = RCOPY_FETCH;
            w->retry = true;
            return;
        }
        w->done = true;
        rc->lost++;
        log_warn("event=recover_object_lost id=%" PRId64 " name=%s etag=%s reason=\"%s\"",
                 rc->job->id, it->name, it->expect_md5, res->errmsg);
        return;
    }
    if (res->err == 0 || res->err == -ENOENT) {
        w->done = true;
        if (res->err == -ENOENT)
            rc->vanished++; /* deleted on the peer meanwhile: its delete job covers the target */
        else if (it->op == RCOPY_DELETE)
            rc->deleted++;
        else if (it->op == RCOPY_UPDATE)
            rc->updated++;
        else
            rc->copied++;
        return;
    }
    if (res->err == -ECANCELED || res->err == -ESTALE) {
        rc->stop_err = res->err;
        return;
    }
    log_warn("event=recover_file_failed id=%" PRId64 " name=%s op=%d try=%u error=\"%s\"",
             rc->job->id, it->name, (int) it->op, w->tries + 1, res->errmsg);
    if (++w->tries < RECOVER_FILE_TRIES) {
        w->retry = true;
        return;
    }
    if (!rc->file_err) {
        rc->file_err = res->err;
        snprintf(rc->file_errmsg, sizeof(rc->file_errmsg), "%s", res->errmsg);
    }
}

static int recover_tick(void *arg)
{
    struct recover *rc = arg;

    return job_heartbeat(rc->job);
}

/* What is on the target up to the cursor is durable: a new run may resume from there. */
static void recover_durable(struct recover *rc, const char *cursor, uint64_t files, uint64_t bytes)
{
    memcpy(rc->durable, cursor, sizeof(rc->durable));
    rc->durable_files = files;
    rc->durable_bytes = bytes;
}

/* Checkpoints. Every RECOVER_SAVE_MS the progress is saved (the modes checked first); every
 * RECOVER_SYNC_MS a sync of the target starts in the background (the copy goes on), and once it
 * is done the resume cursor moves to where the copy stood when it started. forced: everything
 * up to now, synchronously. Returns 0 or -errno with err set. */
static int recover_checkpoint(struct recover *rc, bool force, char *err, size_t errlen)
{
    uint64_t now = job_now_ms();
    int r;

    recover_advance(rc);
    if (force) {
        rc->sync_pending = false;
        r = rcopy_sync(rc->target->uri, err, errlen);
        if (r < 0)
            return r;
        recover_durable(rc, rc->cursor, rc->files_done, rc->bytes_done);
    } else if (rc->sync_pending) {
        r = rcopy_sync_poll(rc->rc, err, errlen);
        if (r < 0)
            return r;
        if (r == 0) {
            rc->sync_pending = false;
            recover_durable(rc, rc->snap_cursor, rc->snap_files_done, rc->snap_bytes_done);
        }
    }
    if (force || now - rc->last_save_ms >= RECOVER_SAVE_MS) {
        rc->last_save_ms = now;
        r = recover_check_modes(rc, err, errlen);
        if (r < 0)
            return r;
        r = recover_save(rc);
        if (r < 0) {
            snprintf(err, errlen, "cannot save the progress: %s", strerror(-r));
            return r;
        }
    }
    if (force || rc->sync_pending || now - rc->last_sync_ms < rc->sync_ms)
        return 0;
    rc->last_sync_ms = now;
    memcpy(rc->snap_cursor, rc->cursor, sizeof(rc->snap_cursor));
    rc->snap_files_done = rc->files_done;
    rc->snap_bytes_done = rc->bytes_done;
    r = rcopy_sync_start(rc->rc);
    if (r < 0) {
        snprintf(err, errlen, "cannot start a sync: %s", strerror(-r));
        return r;
    }
    rc->sync_pending = true;
    return 0;
}

static int recover_submit(struct recover *rc, struct recover_win *w)
{
    w->retry = false;
    return rcopy_submit(rc->rc, &w->it);
}

/* Submits entries waiting for a retry. */
static int recover_retries(struct recover *rc)
{
    for (unsigned i = 0; i < rc->win_n; i++) {
        struct recover_win *w = win_at(rc, rc->win_seq + i);
        int r;

        if (w->retry && rcopy_can_submit(rc->rc, &w->it) && (r = recover_submit(rc, w)) < 0)
            return r;
    }
    return 0;
}

static bool recover_retry_pending(struct recover *rc)
{
    for (unsigned i = 0; i < rc->win_n; i++) {
        if (win_at(rc, rc->win_seq + i)->retry)
            return true;
    }
    return false;
}

static enum rcopy_op recover_op(const struct recover_next *n)
{
    return !n->has_p ? RCOPY_DELETE : !n->has_t ? RCOPY_FETCH : RCOPY_UPDATE;
}

/* Whether the engine can take the entry now (one that is the same file needs nothing). */
static bool recover_can_push(struct recover *rc, const struct recover_next *n)
{
    struct rcopy_item it = {.op = recover_op(n), .size = n->has_p ? n->pe.size : 0};

    return n->same || rcopy_can_submit(rc->rc, &it);
}

/* Adds one merged manifest entry to the window (and starts it unless it is the same file). */
static int recover_push(struct recover *rc, const struct recover_next *n)
{
    uint64_t seq = rc->win_seq + rc->win_n;
    struct recover_win *w = win_at(rc, seq);
    const struct manifest_entry *e = n->has_p ? &n->pe : &n->te;

    memset(w, 0, sizeof(*w));
    /* (memcpy: n and w both live in rc, which snprintf's restrict checks cannot tell apart) */
    memcpy(w->rel, e->rel, sizeof(w->rel));
    memcpy(w->it.name, manifest_name(e), strlen(manifest_name(e)) + 1);
    memcpy(w->it.expect_md5, n->etag, sizeof(w->it.expect_md5));
    w->it.seq = seq;
    w->it.size = n->has_p ? n->pe.size : 0;
    w->peer = n->has_p;
    rc->win_n++;
    if (n->same) {
        w->done = true;
        rc->same++;
        return 0;
    }
    w->it.op = recover_op(n);
    return recover_submit(rc, w);
}

/* Looks up objects.etag of the batch's peer files in one query: a live object's copy is then
 * verified against its ETag rather than the peer's copy (which the peer need not hash). */
static int recover_lookup_etags(struct recover *rc)
{
    struct buf names;
    const char *params[1];
    PGresult *res;
    bool any = false;
    int r;

    buf_init(&names, RECOVER_BATCH * (BLOB_NAME_MAX + 1) + 8);
    r = buf_puts(&names, "{");
    for (unsigned i = 0; r == 0 && i < rc->batch_n; i++) {
        const struct recover_next *n = &rc->batch[i];

        if (!n->has_p || n->same)
            continue;
        /* blob names hold no character that needs quoting in an array literal */
        r = buf_printf(&names, "%s%s", any ? "," : "", manifest_name(&n->pe));
        any = true;
    }
    if (r == 0)
        r = buf_puts(&names, "}");
    if (r < 0 || !any)
        goto out;
    params[0] = names.ptr;
    res = db_exec(rc->db,
                  "SELECT internal_name, etag FROM objects WHERE internal_name = ANY($1::text[])",
                  1, params);
    if (!res) {
        r = -EIO;
        goto out;
    }
    for (int k = 0; k < PQntuples(res); k++) {
        const char *name = PQgetvalue(res, k, 0), *etag = PQgetvalue(res, k, 1);

        if (strlen(etag) != 32)
            continue;
        for (unsigned i = 0; i < rc->batch_n; i++) {
            struct recover_next *n = &rc->batch[i];

            if (n->has_p && !n->same && strcmp(manifest_name(&n->pe), name) == 0)
                memcpy(n->etag, etag, 33);
        }
    }
    PQclear(res);
out:
    buf_release(&names);
    return r;
}

/* The reading positions in the two manifests. */
struct recover_merge_pos {
    struct manifest_file *mp, *mt;
    struct manifest_entry pe, te;
    int hp, ht;
};

/* Decides the next RECOVER_BATCH entries. Returns 0 (batch_n = 0: both manifests are done) or
 * -EPROTO (a malformed manifest) / -EIO (the ETag lookup failed), with err set. */
static int recover_fill(struct recover *rc, struct recover_merge_pos *m, char *err, size_t errlen)
{
    rc->batch_n = rc->batch_i = 0;
    while (rc->batch_n < RECOVER_BATCH && (m->hp > 0 || m->ht > 0)) {
        struct recover_next *n = &rc->batch[rc->batch_n++];
        int64_t dt;

        memset(n, 0, sizeof(*n));
        if (m->ht == 0 || (m->hp > 0 && strcmp(m->pe.rel, m->te.rel) < 0)) {
            n->pe = m->pe; /* only the peer has it */
            n->has_p = true;
            m->hp = manifest_next(m->mp, &m->pe);
        } else if (m->hp == 0 || strcmp(m->pe.rel, m->te.rel) > 0) {
            n->te = m->te; /* only the target: a leftover */
            n->has_t = true;
            m->ht = manifest_next(m->mt, &m->te);
        } else {
            n->pe = m->pe;
            n->te = m->te;
            n->has_p = n->has_t = true;
            dt = n->pe.mtime_ns - n->te.mtime_ns;
            n->same = n->pe.size == n->te.size && dt <= RECOVER_MTIME_SLACK_NS &&
                      dt >= -RECOVER_MTIME_SLACK_NS;
            m->hp = manifest_next(m->mp, &m->pe);
            m->ht = manifest_next(m->mt, &m->te);
        }
        if (m->hp < 0 || m->ht < 0) {
            snprintf(err, errlen, "malformed manifest line from %s",
                     m->hp < 0 ? rc->peer->name : rc->target->name);
            return -EPROTO;
        }
    }
    if (recover_lookup_etags(rc) < 0) {
        snprintf(err, errlen, "database: %s", db_error(rc->db));
        return -EIO;
    }
    return 0;
}

/* Waits for a lane (and a window slot), checkpointing meanwhile. */
static int recover_wait(struct recover *rc, char *err, size_t errlen)
{
    int r = rcopy_run(rc->rc, 500);

    if (r == 0 && rc->stop_err)
        r = rc->stop_err;
    if (r < 0) {
        snprintf(err, errlen, "stopped: %s", strerror(-r));
        return r;
    }
    r = recover_retries(rc);
    if (r < 0) {
        snprintf(err, errlen, "cannot start a transfer: %s", strerror(-r));
        return r;
    }
    return recover_checkpoint(rc, false, err, errlen);
}

/* The merge of the two manifests. Returns 0 when the copy is complete, or -errno (err). */
static int recover_merge(struct recover *rc, struct manifest_file *mp, struct manifest_file *mt,
                         char *err, size_t errlen)
{
    struct recover_merge_pos m = {.mp = mp, .mt = mt};
    bool exhausted = false;
    int r;

    m.hp = manifest_next(mp, &m.pe);
    m.ht = manifest_next(mt, &m.te);
    if (m.hp < 0 || m.ht < 0) {
        snprintf(err, errlen, "malformed manifest line from %s",
                 m.hp < 0 ? rc->peer->name : rc->target->name);
        return -EPROTO;
    }
    rc->batch_n = rc->batch_i = 0;
    for (;;) {
        if (rc->file_err) {
            snprintf(err, errlen, "%s", rc->file_errmsg);
            return rc->file_err;
        }
        if (rc->batch_i == rc->batch_n && !exhausted) {
            r = recover_fill(rc, &m, err, errlen);
            if (r < 0)
                return r;
            exhausted = rc->batch_n == 0;
        }
        if (exhausted) {
            if (rcopy_in_flight(rc->rc) == 0 && !recover_retry_pending(rc))
                return 0;
            r = recover_wait(rc, err, errlen);
            if (r < 0)
                return r;
            continue;
        }
        if (rc->win_n >= RECOVER_WINDOW || !recover_can_push(rc, &rc->batch[rc->batch_i])) {
            r = recover_wait(rc, err, errlen);
            if (r < 0)
                return r;
            continue;
        }
        r = recover_push(rc, &rc->batch[rc->batch_i++]);
        if (r < 0) {
            snprintf(err, errlen, "cannot start a transfer: %s", strerror(-r));
            return r;
        }
        recover_advance(rc);
    }
}

/* Objects rows of the cluster (for the peer sanity check). Returns the count or -EIO. */
static int64_t recover_cluster_objects(struct recover *rc)
{
    char cid[24];
    const char *params[] = {cid};
    int64_t n = 0;

    snprintf(cid, sizeof(cid), "%" PRId64, rc->target->cluster_id);
    if (db_query_int64(rc->db, "SELECT count(*) FROM objects WHERE cluster_id = $1::bigint", 1,
                       params, &n) < 0)
        return -EIO;
    return n;
}

static int recover_copy(struct recover *rc, char *err, size_t errlen)
{
    struct manifest_file mp = {0}, mt = {0};
    struct rcopy_opts o = {.src_uri = rc->peer->uri,
                           .dst_uri = rc->target->uri,
                           .lanes = rc->lanes,
                           .pulls = rc->pulls,
                           .pull_files = rc->pull_files,
                           .throttle = rc->job->ctx->throttle,
                           .defer_sync = true,
                           .done = recover_file_done,
                           .done_arg = rc,
                           .tick = recover_tick,
                           .tick_arg = rc};
    bool fresh = rc->cursor[0] == '\0';
    int64_t objects;
    int r;

    r = manifest_fetch(rc->peer->uri, rc->cursor, rc->job->ctx->throttle, recover_tick, rc, &mp,
                       err, errlen);
    if (r < 0)
        goto out;
    r = manifest_fetch(rc->target->uri, rc->cursor, rc->job->ctx->throttle, recover_tick, rc, &mt,
                       err, errlen);
    if (r < 0)
        goto out;
    rc->bytes_sent += mp.wire_bytes + mt.wire_bytes;
    if (fresh) {
        objects = recover_cluster_objects(rc);
        if (objects < 0) {
            r = -EIO;
            snprintf(err, errlen, "database: %s", db_error(rc->db));
            goto out;
        }
        if ((uint64_t) objects * RECOVER_PEER_MIN_PERMILLE / 1000 > mp.files) {
            r = -EUCLEAN;
            snprintf(err, errlen,
                     "the peer %s holds %" PRIu64 " files but the cluster has %" PRId64
                     " objects: refusing to mirror it (choose another with --from)",
                     rc->peer->name, mp.files, objects);
            goto out;
        }
        rc->files_total = mp.files;
        rc->bytes_total = mp.bytes;
        rc->files_done = rc->bytes_done = 0;
    }
    rc->run_bytes_start = rc->bytes_done;
    rc->last_sync_ms = job_now_ms();
    log_info("event=recover_copy id=%" PRId64 " storage=%s peer=%s cursor=%s peer_files=%" PRIu64
             " peer_bytes=%" PRIu64 " target_files=%" PRIu64 " lanes=%u pulls=%u",
             rc->job->id, rc->target->name, rc->peer->name, rc->cursor[0] ? rc->cursor : "-",
             mp.files, mp.bytes, mt.files, rc->lanes, rc->pulls);
    r = rcopy_new(&o, &rc->rc);
    if (r < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    r = recover_merge(rc, &mp, &mt, err, errlen);
out:
    manifest_close(&mp);
    manifest_close(&mt);
    return r;
}

/* --- the narrow recovery and the end ---------------------------------------------------- */

static int recover_narrow_save(void *arg, const struct narrow_progress *p)
{
    struct recover *rc = arg;

    rc->narrow = *p;
    return recover_save(rc);
}

static int recover_narrow(struct recover *rc, char *err, size_t errlen)
{
    struct storage_info *peers = calloc(rc->all.n + 1, sizeof(*peers));
    struct narrow_ctx ctx = {.job = rc->job,
                             .cluster_id = rc->target->cluster_id,
                             .since = rc->started,
                             .target = rc->target,
                             .throttle = rc->job->ctx->throttle,
                             .lanes = rc->lanes,
                             .save = recover_narrow_save,
                             .save_arg = rc};
    size_t n = 0;
    int r;

    if (!peers) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    peers[n++] = *rc->peer; /* the peer of the copy first, then the other readable ones */
    for (size_t i = 0; i < rc->all.n; i++) {
        const struct storage_info *s = &rc->all.v[i];

        if (s->cluster_id == rc->target->cluster_id && s->id != rc->target->id &&
            s->id != rc->peer->id && recover_readable(s->mode))
            peers[n++] = *s;
    }
    ctx.peers = peers;
    ctx.npeers = n;
    r = narrow_recover(&ctx, &rc->narrow, err, errlen);
    free(peers);
    return r;
}

/* repair -> rw (or -> down after a definitive failure). */
static enum job_result recover_set_mode(struct recover *rc, bool success, const char *detail)
{
    struct mode_change_result mres;
    int r;

    r = mode_change_repair_finished(rc->db, rc->job->ctx->kv, rc->storage_id, success, detail,
                                    &mres);
    if (r == 0)
        return JOB_DONE;
    if (r == -EPERM || r == -ENOENT) {
        if (success)
            job_error(rc->job, "%s", mres.message);
        return success ? JOB_FAIL : JOB_DONE;
    }
    job_error(rc->job, "cannot change %s's mode: %s", rc->target->name, mres.message);
    return JOB_WAIT;
}

/* The outcome of a run that stopped with err (-errno). */
static enum job_result recover_stopped(struct recover *rc, int r, const char *err)
{
    char detail[600];

    switch (r) {
    case -ECANCELED:
    case -ESTALE:
        return JOB_CANCELLED;
    case -EPERM: /* the operator took the storage out of repair */
        job_error(rc->job, "%s", err);
        return JOB_FAIL;
    case -EUCLEAN:
        job_error(rc->job, "%s", err);
        snprintf(detail, sizeof(detail), "recovery failed: %s", err);
        recover_set_mode(rc, false, detail);
        return JOB_FAIL;
    default:
        /* a storage away, a peer no longer readable, a transfer that keeps failing: wait and
         * resume from the last checkpoint */
        job_error(rc->job, "waiting: %s", err);
        return JOB_WAIT;
    }
}

/* An integer in [min, max] from the environment, else def. */
static long recover_env(const char *name, long min, long max, long def)
{
    const char *s = getenv(name);
    char *end = NULL;
    long v = s && *s ? strtol(s, &end, 10) : 0;

    return end && *end == '\0' && v >= min && v <= max ? v : def;
}

static enum job_result recover_phases(struct recover *rc)
{
    char err[600] = "", detail[600];
    int r;

    if (rc->phase == PHASE_COPY) {
        r = recover_copy(rc, err, sizeof(err));
        if (rc->rc) {
            int r2;

            if (r == 0)
                r = rcopy_drain(rc->rc);
            rcopy_free(rc->rc); /* aborts what is still in flight: the cursor excludes it */
            rc->rc = NULL;
            if (r != -ESTALE &&
                (r2 = recover_checkpoint(rc, true, err[0] ? detail : err, sizeof(detail))) < 0 &&
                r == 0)
                r = r2;
        }
        if (r < 0)
            return recover_stopped(rc, r, err);
        rc->copy_seconds += recover_elapsed_s(rc);
        log_info("event=recover_copy_done id=%" PRId64 " storage=%s files=%" PRIu64
                 " copied=%" PRIu64 " updated=%" PRIu64 " deleted=%" PRIu64 " same=%" PRIu64
                 " vanished=%" PRIu64 " bytes_sent=%" PRIu64 " seconds=%.1f",
                 rc->job->id, rc->target->name, rc->files_done, rc->copied, rc->updated,
                 rc->deleted, rc->same, rc->vanished, rc->bytes_sent, rc->copy_seconds);
        rc->phase = PHASE_NARROW;
        rc->narrow = (struct narrow_progress){.step = NARROW_OBJECTS};
        r = recover_save(rc);
        if (r < 0)
            return recover_stopped(rc, r == -ESTALE ? -ESTALE : -EIO, "cannot save progress");
    }
    if (rc->phase == PHASE_NARROW) {
        r = recover_narrow(rc, err, sizeof(err));
        if (r < 0)
            return recover_stopped(rc, r, err);
        log_info("event=recover_narrow_done id=%" PRId64 " storage=%s since=\"%s\" checked=%" PRIu64
                 " copied=%" PRIu64 " deleted=%" PRIu64 " lost=%" PRIu64,
                 rc->job->id, rc->target->name, rc->started, rc->narrow.checked, rc->narrow.copied,
                 rc->narrow.deleted, rc->narrow.lost);
        rc->phase = PHASE_FINISH;
        r = recover_save(rc);
        if (r < 0)
            return recover_stopped(rc, r == -ESTALE ? -ESTALE : -EIO, "cannot save progress");
    }
    r = rcopy_sync(rc->target->uri, err, sizeof(err));
    if (r < 0)
        return recover_stopped(rc, r, err);
    snprintf(detail, sizeof(detail),
             "recovered from %s: %" PRIu64 " files copied, %" PRIu64 " updated, %" PRIu64
             " removed, %" PRIu64 " unchanged; narrow recovery: %" PRIu64 " copied, %" PRIu64
             " removed",
             rc->peer->name, rc->copied, rc->updated, rc->deleted, rc->same, rc->narrow.copied,
             rc->narrow.deleted);
    return recover_set_mode(rc, true, detail);
}

static enum job_result recover_storage_run(struct job *job)
{
    struct recover *rc = calloc(1, sizeof(*rc));
    enum job_result res;
    int r;

    if (!rc) {
        job_error(job, "out of memory");
        return JOB_RETRY;
    }
    rc->job = job;
    rc->db = job->ctx->db;
    rc->lanes =
        (unsigned) recover_env("STF_RECOVER_LANES", 1, RCOPY_LANES_MAX, RECOVER_LANES_DEFAULT);
    rc->pulls =
        (unsigned) recover_env("STF_RECOVER_PULLS", 0, RCOPY_PULLS_MAX, RECOVER_PULLS_DEFAULT);
    rc->pull_files =
        (unsigned) recover_env("STF_RECOVER_PULL_FILES", 1, 1024, RECOVER_PULL_FILES_DEFAULT);
    rc->sync_ms = (uint64_t) recover_env("STF_RECOVER_SYNC_MS", 100, 3600000, RECOVER_SYNC_MS);
    rc->run_start_ms = job_now_ms();
    rc->last_save_ms = rc->run_start_ms;
    r = recover_load_payload(rc);
    if (r < 0) {
        job_error(job, r == -EINVAL ? "bad payload: needs storage_id, from_storage_id and a "
                                      "valid cursor"
                                    : "cannot read the payload");
        res = r == -EINVAL ? JOB_FAIL : JOB_WAIT;
        goto out;
    }
    res = recover_pick(rc);
    if (res != JOB_DONE)
        goto out;
    if (rc->target->mode != SMODE_REPAIR) {
        if (rc->phase == PHASE_FINISH && rc->target->mode == SMODE_RW) {
            res = JOB_DONE; /* finished before, only the outcome was not recorded */
            goto out;
        }
        job_error(job, "%s is %s, not repair: recovery abandoned", rc->target->name,
                  storage_mode_name(rc->target->mode));
        res = JOB_FAIL;
        goto out;
    }
    if (!recover_healthy(rc->target) || !recover_healthy(rc->peer)) {
        job_error(job, "waiting: %s or %s does not answer /_health", rc->target->name,
                  rc->peer->name);
        res = JOB_WAIT;
        goto out;
    }
    if (!rc->started[0]) {
        PGresult *q = db_exec(rc->db, "SELECT now()::text", 0, NULL);

        if (!q || PQntuples(q) != 1) {
            PQclear(q);
            job_error(job, "database: %s", db_error(rc->db));
            res = JOB_WAIT;
            goto out;
        }
        snprintf(rc->started, sizeof(rc->started), "%s", PQgetvalue(q, 0, 0));
        PQclear(q);
    }
    log_info("event=recover_run id=%" PRId64 " storage=%s peer=%s phase=%s cursor=%s "
             "copy_started_at=\"%s\" attempt=%d",
             job->id, rc->target->name, rc->peer->name, recover_phase_names[rc->phase],
             rc->cursor[0] ? rc->cursor : "-", rc->started, job->attempts);
    r = recover_save(rc);
    if (r < 0) {
        job_error(job, "cannot save the progress");
        res = r == -ESTALE ? JOB_CANCELLED : JOB_WAIT;
        goto out;
    }
    res = recover_phases(rc);
    if (res == JOB_DONE)
        log_info("event=recover_done id=%" PRId64 " storage=%s peer=%s files=%" PRIu64
                 " bytes_sent=%" PRIu64 " copy_seconds=%.1f",
                 job->id, rc->target->name, rc->peer->name, rc->files_done, rc->bytes_sent,
                 rc->copy_seconds);
out:
    if (rc->rc)
        rcopy_free(rc->rc);
    storage_list_release(&rc->all);
    free(rc);
    return res;
}

const struct job_kind job_kind_recover_storage = {
    .name = "recover_storage",
    .run = recover_storage_run,
};
