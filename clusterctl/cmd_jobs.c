/* clusterctl/cmd_jobs.c — `clusterctl jobs [--json] [--limit N]`: the background work that is
 * queued, running or failed (from the jobs table), with attempts and the last error. */
#include "buf.h"
#include "config.h"
#include "ctl.h"
#include "db.h"
#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOBS_DEFAULT_LIMIT 100u
#define JOBS_MAX_LIMIT 100000u
#define JOBS_CELL_MAX 80 /* human table: longer payloads and errors are cut */

/* Columns of jobs_sql. One row per (job, payload key); a job without keys has one row with
 * NULL key. */
enum {
    J_ID,
    J_KIND,
    J_STATE,
    J_ATTEMPTS,
    J_LAST_ERROR,
    J_CREATED,
    J_UPDATED,
    J_RUN_AFTER,
    J_LOCKED_BY,
    J_LOCKED_UNTIL,
    J_AGE_S,
    J_DUE_IN_S,
    J_KEY,
    J_TYPE,
    J_VALUE
};

/* clang-format off */
#define JOBS_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Running first, then pending (by due time), then failed (most recent first); the first
 * $1 jobs of that order. */
static const char jobs_sql[] =
    "WITH j AS (SELECT *, CASE state WHEN 'running' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END"
    "           AS ord FROM jobs WHERE state IN ('pending', 'running', 'failed')"
    "           ORDER BY ord, CASE WHEN state = 'failed' THEN -id ELSE id END LIMIT $1::int)"
    " SELECT j.id, j.kind, j.state, j.attempts, j.last_error, " JOBS_TS("j.created_at") ", "
    JOBS_TS("j.updated_at") ", " JOBS_TS("j.run_after") ", j.locked_by, "
    JOBS_TS("j.locked_until") ","
    " floor(extract(epoch FROM now() - j.created_at))::bigint,"
    " ceil(extract(epoch FROM j.run_after - now()))::bigint,"
    " e.key, jsonb_typeof(e.value), e.value #>> '{}'"
    " FROM j LEFT JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(j.payload) = 'object'"
    "   THEN j.payload ELSE '{}'::jsonb END) e ON true"
    " ORDER BY j.ord, CASE WHEN j.state = 'failed' THEN -j.id ELSE j.id END, e.key";
/* clang-format on */

static const char counts_sql[] =
    "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'running'),"
    " count(*) FILTER (WHERE state = 'failed') FROM jobs"
    " WHERE state IN ('pending', 'running', 'failed')";

static const char *j_val(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int64_t j_int(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The rows of one job: [row, *ret_end). */
static int j_job_end(PGresult *res, int row)
{
    int n = PQntuples(res), end = row + 1;

    while (end < n && strcmp(PQgetvalue(res, end, J_ID), PQgetvalue(res, row, J_ID)) == 0)
        end++;
    return end;
}

/* One payload value with its JSON type. */
static void j_json_value(struct out_json *j, const char *key, const char *type, const char *v)
{
    char *end = NULL;
    long long n;

    if (strcmp(type, "number") == 0) {
        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno == 0 && end && *end == '\0' && end != v) {
            out_json_int(j, key, n);
            return;
        }
        out_json_str(j, key, v);
    } else if (strcmp(type, "boolean") == 0) {
        out_json_bool(j, key, strcmp(v, "true") == 0);
    } else if (strcmp(type, "null") == 0) {
        out_json_null(j, key);
    } else {
        out_json_str(j, key, v); /* string; a nested object/array as its JSON text */
    }
}

static int jobs_print_json(PGresult *res, PGresult *counts)
{
    struct out_json j;
    struct buf b;
    int r;

    buf_init(&b, (size_t) 1 << 30);
    out_json_begin(&j, &b);
    out_json_obj_open(&j, NULL);
    out_json_arr_open(&j, "jobs");
    for (int i = 0, end; i < PQntuples(res); i = end) {
        end = j_job_end(res, i);
        out_json_obj_open(&j, NULL);
        out_json_int(&j, "id", j_int(res, i, J_ID));
        out_json_str(&j, "kind", j_val(res, i, J_KIND));
        out_json_str(&j, "state", j_val(res, i, J_STATE));
        out_json_int(&j, "attempts", j_int(res, i, J_ATTEMPTS));
        out_json_obj_open(&j, "payload");
        for (int k = i; k < end; k++) {
            if (j_val(res, k, J_KEY))
                j_json_value(&j, j_val(res, k, J_KEY), PQgetvalue(res, k, J_TYPE),
                             PQgetvalue(res, k, J_VALUE));
        }
        out_json_obj_close(&j);
        out_json_str(&j, "last_error", j_val(res, i, J_LAST_ERROR));
        out_json_str(&j, "created_at", j_val(res, i, J_CREATED));
        out_json_str(&j, "updated_at", j_val(res, i, J_UPDATED));
        out_json_str(&j, "run_after", j_val(res, i, J_RUN_AFTER));
        out_json_str(&j, "locked_by", j_val(res, i, J_LOCKED_BY));
        out_json_str(&j, "locked_until", j_val(res, i, J_LOCKED_UNTIL));
        out_json_obj_close(&j);
    }
    out_json_arr_close(&j);
    out_json_obj_open(&j, "counts");
    out_json_int(&j, "pending", j_int(counts, 0, 0));
    out_json_int(&j, "running", j_int(counts, 0, 1));
    out_json_int(&j, "failed", j_int(counts, 0, 2));
    out_json_obj_close(&j);
    out_json_obj_close(&j);
    r = out_json_end(&j);
    if (r == 0)
        printf("%s\n", b.ptr);
    buf_release(&b);
    return r;
}

/* "45s", "12m", "3h", "2d". */
static void j_age(int64_t s, char *out, size_t outlen)
{
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(out, outlen, "%" PRId64 "s", s);
    else if (s < 7200)
        snprintf(out, outlen, "%" PRId64 "m", s / 60);
    else if (s < 172800)
        snprintf(out, outlen, "%" PRId64 "h", s / 3600);
    else
        snprintf(out, outlen, "%" PRId64 "d", s / 86400);
}

/* Copies s into out as one line cut to JOBS_CELL_MAX bytes (with "..."). */
static const char *j_cell(const char *s, char *out, size_t outlen)
{
    size_t i = 0, max = outlen - 1 < JOBS_CELL_MAX ? outlen - 1 : JOBS_CELL_MAX;

    if (!s)
        return NULL;
    for (; s[i] && i < max; i++)
        out[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    out[i] = '\0';
    if (s[i] && i >= 3) {
        while (i > 3 && ((unsigned char) out[i - 3] & 0xc0) == 0x80)
            i--; /* do not cut a UTF-8 character */
        memcpy(out + i - 3, "...", 4);
    }
    return out;
}

static int jobs_add_row(struct out_table *t, PGresult *res, int i, int end)
{
    char age[24], detail[160], target[256], target_cell[JOBS_CELL_MAX + 1],
        err_cell[JOBS_CELL_MAX + 1], id[24], tries[24];
    const char *state = PQgetvalue(res, i, J_STATE);
    size_t len = 0;

    snprintf(id, sizeof(id), "%" PRId64, j_int(res, i, J_ID));
    snprintf(tries, sizeof(tries), "%" PRId64, j_int(res, i, J_ATTEMPTS));
    j_age(j_int(res, i, J_AGE_S), age, sizeof(age));
    if (strcmp(state, "running") == 0) {
        snprintf(detail, sizeof(detail), "by %s",
                 j_val(res, i, J_LOCKED_BY) ? j_val(res, i, J_LOCKED_BY) : "?");
    } else if (strcmp(state, "pending") == 0) {
        int64_t due = j_int(res, i, J_DUE_IN_S);

        if (due > 0) {
            char in[24];

            j_age(due, in, sizeof(in));
            snprintf(detail, sizeof(detail), "retry in %s", in);
        } else {
            snprintf(detail, sizeof(detail), "due");
        }
    } else {
        snprintf(detail, sizeof(detail), "-");
    }
    target[0] = '\0';
    for (int k = i; k < end && len < sizeof(target) - 1; k++) {
        if (!j_val(res, k, J_KEY))
            continue;
        snprintf(target + len, sizeof(target) - len, "%s%s=%s", len ? " " : "",
                 PQgetvalue(res, k, J_KEY), PQgetvalue(res, k, J_VALUE));
        len = strlen(target);
    }
    return out_table_add(
        t, (const char *[]){id, PQgetvalue(res, i, J_KIND), state, tries, age, detail,
                            target[0] ? j_cell(target, target_cell, sizeof(target_cell)) : NULL,
                            j_cell(j_val(res, i, J_LAST_ERROR), err_cell, sizeof(err_cell))});
}

static int jobs_print_table(PGresult *res, PGresult *counts)
{
    static const char *const head[] = {"ID",  "KIND",   "STATE",  "TRIES",
                                       "AGE", "DETAIL", "TARGET", "LAST ERROR"};
    static const enum out_align align[] = {OUT_RIGHT, OUT_LEFT, OUT_LEFT, OUT_RIGHT,
                                           OUT_RIGHT, OUT_LEFT, OUT_LEFT, OUT_LEFT};
    struct out_table *t;
    int r = 0, shown = 0;

    if (PQntuples(res) > 0) {
        t = out_table_new(8, head, align);
        if (!t)
            return -ENOMEM;
        for (int i = 0, end; r == 0 && i < PQntuples(res); i = end, shown++) {
            end = j_job_end(res, i);
            r = jobs_add_row(t, res, i, end);
        }
        if (r == 0)
            r = out_table_print(t, stdout);
        out_table_free(t);
        if (r < 0)
            return r;
        printf("\n");
    }
    printf("jobs: %" PRId64 " pending, %" PRId64 " running, %" PRId64 " failed",
           j_int(counts, 0, 0), j_int(counts, 0, 1), j_int(counts, 0, 2));
    if (shown < j_int(counts, 0, 0) + j_int(counts, 0, 1) + j_int(counts, 0, 2))
        printf(" (%d shown; --limit N shows more)", shown);
    printf("\n");
    return 0;
}

static int cmd_jobs(struct ctl *ctl, int argc, char **argv)
{
    const char *limit_s = NULL;
    bool json = false;
    const struct ctl_opt opts[] = {
        {"json", false, NULL, &json},
        {"limit", true, &limit_s, NULL},
        {0},
    };
    unsigned limit = JOBS_DEFAULT_LIMIT;
    char limit_txt[16];
    PGresult *res = NULL, *counts = NULL;
    struct db *db;
    int r;

    r = ctl_parse(ctl, argc, argv, opts, NULL, 0, 0, NULL);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (limit_s && parse_uint(limit_s, 1, JOBS_MAX_LIMIT, &limit) < 0)
        return ctl_usage_err(ctl, "bad --limit '%s' (1..%u)", limit_s, JOBS_MAX_LIMIT);
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    snprintf(limit_txt, sizeof(limit_txt), "%u", limit);
    r = CTL_FAILED;
    /* one snapshot for the list and the counts */
    if (db_begin_with(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") < 0)
        goto db_fail;
    res = db_exec(db, jobs_sql, 1, (const char *[]){limit_txt});
    if (!res)
        goto db_fail;
    counts = db_exec(db, counts_sql, 0, NULL);
    if (!counts || db_commit(db) < 0)
        goto db_fail;
    if ((json ? jobs_print_json(res, counts) : jobs_print_table(res, counts)) < 0) {
        ctl_err("cannot format the jobs");
        goto out;
    }
    r = CTL_OK;
    goto out;
db_fail:
    ctl_err("cannot read the jobs: %s%s", db_error(db),
            strcmp(db_sqlstate(db), "42P01") == 0 ? " (run `clusterctl migrate` first)" : "");
    db_rollback(db);
out:
    PQclear(res);
    PQclear(counts);
    return r;
}

const struct ctl_cmd ctl_cmd_jobs = {
    .name = "jobs",
    .fn = cmd_jobs,
    .synopsis = "[--json] [--limit N]",
    .summary = "background work: running, queued and failed jobs with their last error",
    .help = "Running jobs first (DETAIL: the repaird holding the lease), then queued ones\n"
            "(due now, or when the next retry is), then failed ones, most recent first.\n"
            "Finished jobs are not shown. Times are UTC.\n\n"
            "options:\n"
            "  --json      {\"jobs\": [{\"id\", \"kind\", \"state\", \"attempts\", \"payload\",\n"
            "              \"last_error\", \"created_at\", \"updated_at\", \"run_after\",\n"
            "              \"locked_by\", \"locked_until\"}],\n"
            "               \"counts\": {\"pending\", \"running\", \"failed\"}}\n"
            "  --limit N   show at most N jobs (default 100); the counts are always complete\n",
};
