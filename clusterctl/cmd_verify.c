/* clusterctl/cmd_verify.c — `clusterctl verify CLUSTER [--repair]`: runs verify's scans, reports
 * counts per storage and samples, and with --repair queues repair_object jobs for missing and
 * corrupt copies (repaird copies a good copy over), removes extra files older than a safety
 * age, and waits for the repairs. */
#include "buf.h"
#include "config.h"
#include "ctl.h"
#include "db.h"
#include "http_client.h"
#include "jobs.h"
#include "output.h"
#include "progress.h"
#include "verify_scan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VF_DEFAULT_MIN_AGE_S (24 * 3600)
#define VF_DELETE_BATCH 64
#define VF_DELETE_TIMEOUT_MS 10000u
#define VF_POLL_MS 500

static const char *const vf_kind_names[VF__KINDS] = {"missing", "corrupt", "extra"};

struct vf_repair {
    int64_t *jobs;
    size_t njobs;
    uint64_t repaired, repair_failed, repair_waiting;
    uint64_t removed, remove_failed, kept_young, kept_now_used;
    char last_error[300];
};

/* ---- the report ---------------------------------------------------------------------------- */

static uint64_t vf_problems(const struct vf *v, bool count_young)
{
    uint64_t n = 0;

    for (size_t i = 0; i < v->nst; i++) {
        n += v->st[i].missing + v->st[i].corrupt + v->st[i].extra;
        if (!count_young)
            n -= v->st[i].extra_young;
    }
    return n;
}

static bool vf_incomplete(const struct vf *v)
{
    for (size_t i = 0; i < v->nst; i++) {
        if (v->st[i].checked && (!v->st[i].manifest_ok || v->st[i].unchecked > 0))
            return true;
    }
    return false;
}

static int vf_print_human(const struct vf *v, const struct vf_repair *rep, bool repair)
{
    static const char *const h[] = {"storage", "mode",        "files",   "missing",  "corrupt",
                                    "extra",   "extra_bytes", "pending", "unchecked"};
    static const enum out_align a[] = {OUT_LEFT,  OUT_LEFT,  OUT_RIGHT, OUT_RIGHT, OUT_RIGHT,
                                       OUT_RIGHT, OUT_RIGHT, OUT_RIGHT, OUT_RIGHT};
    struct out_table *t = out_table_new(9, h, a);
    char read[32];
    int r = -ENOMEM;

    if (!t)
        return r;
    for (size_t i = 0; i < v->nst; i++) {
        const struct vf_storage *s = &v->st[i];
        char n[6][24], eb[32];
        const char *cells[9];

        snprintf(n[0], sizeof(n[0]), "%" PRIu64, s->files);
        snprintf(n[1], sizeof(n[1]), "%" PRIu64, s->missing);
        snprintf(n[2], sizeof(n[2]), "%" PRIu64, s->corrupt);
        snprintf(n[3], sizeof(n[3]), "%" PRIu64, s->extra);
        snprintf(n[4], sizeof(n[4]), "%" PRIu64, s->pending_delete);
        snprintf(n[5], sizeof(n[5]), "%" PRIu64, s->unchecked);
        out_bytes(s->extra_bytes, eb, sizeof(eb));
        cells[0] = s->name;
        cells[1] = storage_mode_name(s->mode);
        cells[2] = s->checked && s->manifest_ok ? n[0] : NULL;
        cells[3] = s->checked ? n[1] : NULL;
        cells[4] = s->checked ? n[2] : NULL;
        cells[5] = s->checked && s->manifest_ok ? n[3] : NULL;
        cells[6] = s->checked && s->manifest_ok ? eb : NULL;
        cells[7] = s->checked && s->manifest_ok ? n[4] : NULL;
        cells[8] = s->checked ? n[5] : NULL;
        if (out_table_add(t, cells) < 0)
            goto out;
    }
    out_bytes(v->bytes_read, read, sizeof(read));
    printf("verify %s: %" PRIu64 " objects, %s read%s in %" PRIu64 ".%01" PRIu64 " s\n", v->cluster,
           v->objects_done, read, v->quick ? " (--quick: sizes only)" : "", v->elapsed_ms / 1000,
           v->elapsed_ms / 100 % 10);
    out_table_print(t, stdout);
    for (size_t i = 0; i < v->nst; i++) {
        const struct vf_storage *s = &v->st[i];

        if (!s->checked)
            printf("%s: not checked (%s)\n", s->name, storage_mode_name(s->mode));
        else if (!s->manifest_ok)
            printf("%s: extra files not checked: %s\n", s->name, s->error);
        if (s->extra_young)
            printf("%s: %" PRIu64 " of its extra files are younger than the safety age (uploads "
                   "in flight?): reported, never removed\n",
                   s->name, s->extra_young);
    }
    if (v->objects_changed)
        printf("%" PRIu64 " objects changed while being read (overwritten, moved or deleted): "
               "not counted\n",
               v->objects_changed);
    if (v->nsamples)
        printf("\nsamples:\n");
    for (size_t i = 0; i < v->nsamples; i++) {
        const struct vf_sample *s = &v->samples[i];

        printf("  %-8s %s  %s%s%s\n", vf_kind_names[s->kind], v->st[s->storage].name, s->what,
               s->kind == VF_MISSING ? "" : ": ", s->kind == VF_MISSING ? "" : s->detail);
    }
    if (repair) {
        printf("\nrepair: %zu objects queued for repair_object: %" PRIu64 " repaired, %" PRIu64
               " failed, %" PRIu64 " still waiting; extra files: %" PRIu64 " removed, %" PRIu64
               " could not be removed, %" PRIu64 " kept (younger than the safety age), %" PRIu64
               " kept (in use meanwhile)\n",
               rep->njobs, rep->repaired, rep->repair_failed, rep->repair_waiting, rep->removed,
               rep->remove_failed, rep->kept_young, rep->kept_now_used);
        if (rep->last_error[0])
            printf("last repair error: %s\n", rep->last_error);
    }
    if (!repair && vf_problems(v, true) == 0 && !vf_incomplete(v))
        printf("\nno problems found\n");
    r = 0;
out:
    out_table_free(t);
    return r;
}

static int vf_print_json(const struct vf *v, const struct vf_repair *rep, bool repair)
{
    struct out_json j;
    struct buf b;
    int r;

    buf_init(&b, 1 << 22);
    out_json_begin(&j, &b);
    out_json_obj_open(&j, NULL);
    out_json_str(&j, "cluster", v->cluster);
    out_json_bool(&j, "quick", v->quick);
    out_json_uint(&j, "objects", v->objects_done);
    out_json_uint(&j, "objects_changed", v->objects_changed);
    out_json_uint(&j, "bytes_read", v->bytes_read);
    out_json_uint(&j, "elapsed_ms", v->elapsed_ms);
    out_json_uint(&j, "problems", vf_problems(v, false));
    out_json_bool(&j, "complete", !vf_incomplete(v));
    out_json_arr_open(&j, "storages");
    for (size_t i = 0; i < v->nst; i++) {
        const struct vf_storage *s = &v->st[i];

        out_json_obj_open(&j, NULL);
        out_json_str(&j, "name", s->name);
        out_json_str(&j, "mode", storage_mode_name(s->mode));
        out_json_bool(&j, "checked", s->checked);
        out_json_bool(&j, "manifest_ok", s->manifest_ok);
        out_json_str(&j, "error", s->error[0] ? s->error : NULL);
        out_json_uint(&j, "files", s->files);
        out_json_uint(&j, "missing", s->missing);
        out_json_uint(&j, "corrupt", s->corrupt);
        out_json_uint(&j, "extra", s->extra);
        out_json_uint(&j, "extra_bytes", s->extra_bytes);
        out_json_uint(&j, "extra_young", s->extra_young);
        out_json_uint(&j, "pending_delete", s->pending_delete);
        out_json_uint(&j, "unchecked", s->unchecked);
        out_json_obj_close(&j);
    }
    out_json_arr_close(&j);
    out_json_arr_open(&j, "samples");
    for (size_t i = 0; i < v->nsamples; i++) {
        const struct vf_sample *s = &v->samples[i];

        out_json_obj_open(&j, NULL);
        out_json_str(&j, "kind", vf_kind_names[s->kind]);
        out_json_str(&j, "storage", v->st[s->storage].name);
        if (s->object_id)
            out_json_int(&j, "object_id", s->object_id);
        else
            out_json_null(&j, "object_id");
        out_json_str(&j, "what", s->what);
        out_json_str(&j, "detail", s->detail);
        out_json_obj_close(&j);
    }
    out_json_arr_close(&j);
    if (repair) {
        out_json_obj_open(&j, "repair");
        out_json_uint(&j, "repair_jobs", rep->njobs);
        out_json_uint(&j, "repaired", rep->repaired);
        out_json_uint(&j, "repair_failed", rep->repair_failed);
        out_json_uint(&j, "repair_waiting", rep->repair_waiting);
        out_json_uint(&j, "extra_removed", rep->removed);
        out_json_uint(&j, "extra_remove_failed", rep->remove_failed);
        out_json_uint(&j, "extra_kept_young", rep->kept_young);
        out_json_uint(&j, "extra_kept_in_use", rep->kept_now_used);
        out_json_str(&j, "last_error", rep->last_error[0] ? rep->last_error : NULL);
        out_json_obj_close(&j);
    } else {
        out_json_null(&j, "repair");
    }
    out_json_obj_close(&j);
    r = out_json_end(&j);
    if (r == 0)
        printf("%s\n", b.ptr);
    buf_release(&b);
    return r;
}

/* ---- --repair: missing and corrupt copies ---------------------------------------------------- */

/* Queues repair_object for every bad object (or takes the one already waiting). */
static int vf_queue_repairs(struct ctl *ctl, struct db *db, const struct vf *v,
                            struct vf_repair *rep)
{
    rep->jobs = calloc(v->nbad + 1, sizeof(*rep->jobs));
    if (!rep->jobs)
        return -ENOMEM;
    for (size_t i = 0; i < v->nbad; i++) {
        char ids[24], payload[64];
        const char *params[] = {ids};
        int64_t id = 0;
        int r;

        snprintf(ids, sizeof(ids), "%" PRId64, v->bad[i]);
        snprintf(payload, sizeof(payload), "{\"object_id\": %" PRId64 "}", v->bad[i]);
        r = db_query_int64(db,
                           "SELECT id FROM jobs WHERE kind = 'repair_object' AND state = "
                           "'pending' AND payload ->> 'object_id' = $1 ORDER BY id LIMIT 1",
                           1, params, &id);
        if (r == -ENOENT) {
            r = jobs_insert(db, "repair_object", payload, &id);
            if (r == 0)
                (void) jobs_announce(ctl_kv(ctl), id);
        }
        if (r < 0)
            return -EIO;
        rep->jobs[rep->njobs++] = id;
    }
    return 0;
}

/* Follows the repair jobs until each is done or failed. */
static int vf_wait_repairs(struct db *db, struct vf_repair *rep, bool show)
{
    struct progress pg;
    struct buf arr;
    char line[512];
    int r = 0;

    buf_init(&arr, rep->njobs * 24 + 8);
    r = buf_puts(&arr, "{");
    for (size_t i = 0; r == 0 && i < rep->njobs; i++)
        r = buf_printf(&arr, "%s%" PRId64, i ? "," : "", rep->jobs[i]);
    r = r ?: buf_puts(&arr, "}");
    if (r < 0)
        goto out;
    progress_init(&pg, stderr);
    for (;;) {
        const char *params[] = {arr.ptr};
        PGresult *res = db_exec(db,
                                "SELECT count(*) FILTER (WHERE state = 'failed'), "
                                "  count(*) FILTER (WHERE state IN ('pending', 'running')), "
                                "  max(last_error) FILTER (WHERE last_error IS NOT NULL) "
                                "FROM jobs WHERE id = ANY($1::bigint[])",
                                1, params);

        if (!res) {
            r = -EIO;
            break;
        }
        rep->repair_failed = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        rep->repair_waiting = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
        rep->repaired = rep->njobs - rep->repair_failed - rep->repair_waiting;
        snprintf(rep->last_error, sizeof(rep->last_error), "%s", PQgetvalue(res, 0, 2));
        PQclear(res);
        if (rep->repair_waiting == 0)
            break;
        if (show) {
            snprintf(line, sizeof(line),
                     "waiting for repaird: %" PRIu64 "/%zu repairs done, %" PRIu64 " failed%s%s",
                     rep->repaired, rep->njobs, rep->repair_failed,
                     rep->last_error[0] ? "; last error: " : "", rep->last_error);
            progress_show(&pg, line, false);
        }
        progress_sleep_ms(VF_POLL_MS);
    }
    progress_end(&pg);
out:
    buf_release(&arr);
    return r;
}

/* ---- --repair: extra files ------------------------------------------------------------------ */

/* Deletes one batch of extra files of storage si after checking again, in one snapshot, that
 * no object and no open delete_files job of the cluster names them. */
static int vf_remove_batch(struct db *db, const struct vf *v, size_t si, const size_t *idx,
                           size_t n, struct vf_repair *rep)
{
    char names[VF_DELETE_BATCH][BLOB_NAME_MAX + 1], urls[VF_DELETE_BATCH][600];
    bool used[VF_DELETE_BATCH], pending[VF_DELETE_BATCH];
    struct http_req reqs[VF_DELETE_BATCH];
    size_t nreq = 0, which[VF_DELETE_BATCH];
    int r;

    for (size_t i = 0; i < n; i++)
        snprintf(names[i], sizeof(names[i]), "%s", v->extra[idx[i]].name);
    r = vf_classify(db, v->cluster_id, names, n, used, pending);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (used[i] || pending[i]) {
            rep->kept_now_used++;
            continue;
        }
        snprintf(urls[nreq], sizeof(urls[nreq]), "%.255s/%.128s", v->st[si].uri, names[i]);
        reqs[nreq] = (struct http_req){
            .method = HTTP_DELETE, .url = urls[nreq], .timeout_ms = VF_DELETE_TIMEOUT_MS};
        which[nreq++] = i;
    }
    if (nreq > 0 && http_multi_run(reqs, nreq, VF_DELETE_TIMEOUT_MS + 1000) < 0)
        return -EIO;
    for (size_t k = 0; k < nreq; k++) {
        long st = reqs[k].info.status;

        if (reqs[k].err == 0 && (http_status_ok(st) || st == 404)) {
            rep->removed++;
            continue;
        }
        rep->remove_failed++;
        /* a long message is cut to the buffer: fine for a one-line error */
        if (snprintf(rep->last_error, sizeof(rep->last_error), "removing %s from %s: %s",
                 names[which[k]], v->st[si].name,
                 reqs[k].err ? reqs[k].errmsg : "unexpected HTTP status") < 0)
            rep->last_error[0] = '\0';
    }
    return 0;
}

static int vf_remove_extra(struct db *db, const struct vf *v, struct vf_repair *rep)
{
    time_t now = time(NULL);
    size_t idx[VF_DELETE_BATCH];
    int r;

    for (size_t si = 0; si < v->nst; si++) {
        size_t n = 0;

        for (size_t i = 0; i <= v->nextra; i++) {
            bool last = i == v->nextra;

            if (!last && v->extra[i].storage == si) {
                if ((int64_t) now - v->extra[i].mtime < (int64_t) v->min_age_s)
                    rep->kept_young++;
                else
                    idx[n++] = i;
            }
            if (n == VF_DELETE_BATCH || (last && n > 0)) {
                r = vf_remove_batch(db, v, si, idx, n, rep);
                if (r < 0)
                    return r;
                n = 0;
            }
        }
    }
    return 0;
}

/* ---- the command ---------------------------------------------------------------------------- */

static int cmd_verify(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL, *min_age = NULL, *rate = NULL;
    bool repair = false, quick = false, json = false, no_wait = false;
    const struct ctl_opt opts[] = {
        {"repair", false, NULL, &repair},
        {"quick", false, NULL, &quick},
        {"min-age", true, &min_age, NULL},
        {"max-bytes-per-sec", true, &rate, NULL},
        {"no-wait", false, NULL, &no_wait},
        {"json", false, NULL, &json},
        {0},
    };
    struct vf v = {0};
    struct vf_repair rep = {0};
    uint64_t age_ms = (uint64_t) VF_DEFAULT_MIN_AGE_S * 1000;
    struct db *db;
    int rc = CTL_FAILED, r = ctl_parse_name(ctl, argc, argv, opts, "cluster", &name, NULL);

    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (min_age && parse_duration_ms(min_age, &age_ms) < 0)
        return ctl_usage_err(ctl, "bad --min-age '%s' (a duration such as 30m, 24h)", min_age);
    if (rate && parse_size(rate, &v.rate) < 0)
        return ctl_usage_err(ctl,
                             "bad --max-bytes-per-sec '%s' (a size such as 64M; 0 = "
                             "unlimited)",
                             rate);
    if (no_wait && !repair)
        return ctl_usage_err(ctl, "--no-wait goes with --repair");
    if (!(db = ctl_db(ctl)) || !ctl_config(ctl))
        return CTL_FAILED;
    if (!rate)
        v.rate = ctl->cfg->repaird.max_bytes_per_sec;
    v.quick = quick;
    v.min_age_s = age_ms / 1000;
    v.progress = !json; /* on stderr: in place on a terminal, else a line every 10 s */
    r = vf_load(db, name, &v);
    if (r == -ENOENT) {
        ctl_err("refused: no cluster named '%s'", name);
        goto out;
    }
    if (r == 0)
        r = vf_scan_extra(db, &v);
    if (r == 0)
        r = vf_scan_objects(db, &v);
    if (r == 0 && repair)
        r = vf_queue_repairs(ctl, db, &v, &rep);
    if (r == 0 && repair)
        r = vf_remove_extra(db, &v, &rep);
    if (r == 0 && repair && !no_wait && rep.njobs > 0)
        r = vf_wait_repairs(db, &rep, !json);
    else if (r == 0 && repair)
        rep.repair_waiting = rep.njobs;
    if (r < 0) {
        ctl_err("verify %s failed: %s", name, r == -ENOMEM ? "out of memory" : db_error(db));
        goto out;
    }
    r = json ? vf_print_json(&v, &rep, repair) : vf_print_human(&v, &rep, repair);
    if (r < 0)
        goto out;
    if (v.extra_truncated)
        ctl_err("more than %d extra files: only the first were handled; run verify again",
                VF_EXTRA_MAX);
    if (repair)
        rc = rep.repair_failed == 0 && rep.remove_failed == 0 && !vf_incomplete(&v) &&
                     (no_wait || rep.repair_waiting == 0) && !v.extra_truncated
                 ? CTL_OK
                 : CTL_FAILED;
    else
        rc = vf_problems(&v, false) == 0 && !vf_incomplete(&v) ? CTL_OK : CTL_FAILED;
out:
    free(rep.jobs);
    vf_release(&v);
    return rc;
}

const struct ctl_cmd ctl_cmd_verify = {
    .name = "verify",
    .fn = cmd_verify,
    .synopsis = "CLUSTER [--repair]",
    .summary = "compare metadata with the disks: missing, extra, corrupt copies",
    .help =
        "Reads every rw, ro and spare storage of CLUSTER: its file list against the metadata\n"
        "(extra files that belong to no object; old versions a delete_files job will remove\n"
        "are shown as pending), and every object's copy on each of them (missing, wrong size,\n"
        "wrong MD5). Prints counts per storage and samples. Exit 0 when nothing is wrong,\n"
        "1 when something is (or could not be checked), 2 on a usage error.\n\n"
        "options:\n"
        "  --repair                queue repair_object jobs for missing and corrupt copies\n"
        "                          (repaird copies a good copy over) and wait for them; remove\n"
        "                          extra files older than --min-age\n"
        "  --min-age DURATION      safety age of extra files: younger ones may be uploads in\n"
        "                          flight and are never removed (default 24h)\n"
        "  --quick                 sizes only (HEAD), no MD5: does not read the bytes\n"
        "  --max-bytes-per-sec N   read at most this fast (default [repaird] max_bytes_per_sec;\n"
        "                          0 = unlimited)\n"
        "  --no-wait               with --repair: queue the repairs, do not wait for them\n"
        "  --json                  the report as one JSON object\n",
};
