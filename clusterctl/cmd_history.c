/* clusterctl/cmd_history.c — `clusterctl history [STORAGE|CLUSTER] [--json] [--limit N]`: the
 * recorded mode changes (who, when, from, to, why) as a table or JSON. */
#include "buf.h"
#include "config.h"
#include "ctl.h"
#include "db.h"
#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_DEFAULT_LIMIT 100u
#define HISTORY_MAX_LIMIT 100000u

/* Columns of the query below. */
enum { H_ID, H_TIME, H_KIND, H_NAME, H_FROM, H_TO, H_ACTOR, H_PROGRAM, H_REASON };

/* The last `limit` rows (of NAME when given), oldest first. */
static const char history_sql[] =
    "SELECT id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " target_kind, target_name, from_mode, to_mode, actor, program, reason"
    " FROM (SELECT * FROM mode_history WHERE $1::text IS NULL OR target_name = $1"
    "       ORDER BY created_at DESC, id DESC LIMIT $2::int) h"
    " ORDER BY created_at, id";

static const char *h_val(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* A cell safe for a one-line table: control characters become spaces (copied into out). */
static const char *h_cell(const char *s, char *out, size_t outlen)
{
    size_t i = 0;

    if (!s)
        return NULL;
    for (; s[i] && i + 1 < outlen; i++)
        out[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    out[i] = '\0';
    return out;
}

static int history_print_json(PGresult *res)
{
    struct out_json j;
    struct buf b;
    int r;

    buf_init(&b, (size_t) 1 << 30);
    out_json_begin(&j, &b);
    out_json_obj_open(&j, NULL);
    out_json_arr_open(&j, "history");
    for (int i = 0; i < PQntuples(res); i++) {
        out_json_obj_open(&j, NULL);
        out_json_int(&j, "id", strtoll(PQgetvalue(res, i, H_ID), NULL, 10));
        out_json_str(&j, "time", h_val(res, i, H_TIME));
        out_json_str(&j, "kind", h_val(res, i, H_KIND));
        out_json_str(&j, "name", h_val(res, i, H_NAME));
        out_json_str(&j, "from", h_val(res, i, H_FROM));
        out_json_str(&j, "to", h_val(res, i, H_TO));
        out_json_str(&j, "reason", h_val(res, i, H_REASON));
        out_json_str(&j, "actor", h_val(res, i, H_ACTOR));
        out_json_str(&j, "program", h_val(res, i, H_PROGRAM));
        out_json_obj_close(&j);
    }
    out_json_arr_close(&j);
    out_json_obj_close(&j);
    r = out_json_end(&j);
    if (r == 0)
        printf("%s\n", b.ptr);
    buf_release(&b);
    return r;
}

static int history_print_table(PGresult *res)
{
    static const char *const head[] = {"TIME", "KIND",  "NAME",    "FROM",
                                       "TO",   "ACTOR", "PROGRAM", "REASON"};
    struct out_table *t = out_table_new(8, head, NULL);
    int r = t ? 0 : -ENOMEM;

    for (int i = 0; r == 0 && i < PQntuples(res); i++) {
        char reason[512], actor[128];
        const char *why = h_val(res, i, H_REASON);

        if (why && !*why)
            why = NULL; /* shown as "-" */
        r = out_table_add(
            t, (const char *[]){h_val(res, i, H_TIME), h_val(res, i, H_KIND), h_val(res, i, H_NAME),
                                h_val(res, i, H_FROM), h_val(res, i, H_TO),
                                h_cell(h_val(res, i, H_ACTOR), actor, sizeof(actor)),
                                h_val(res, i, H_PROGRAM), h_cell(why, reason, sizeof(reason))});
    }
    if (r == 0)
        r = out_table_print(t, stdout);
    out_table_free(t);
    return r;
}

/* Whether a storage or cluster of that name exists now. */
static int history_name_known(struct db *db, const char *name, bool *ret)
{
    int64_t n = 0;
    int r = db_query_int64(db,
                           "SELECT (SELECT count(*) FROM storages WHERE name = $1) +"
                           " (SELECT count(*) FROM clusters WHERE name = $1)",
                           1, (const char *[]){name}, &n);

    *ret = n > 0;
    return r;
}

static int cmd_history(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL, *limit_s = NULL;
    bool json = false, known = false;
    const struct ctl_opt opts[] = {
        {"json", false, NULL, &json},
        {"limit", true, &limit_s, NULL},
        {0},
    };
    unsigned limit = HISTORY_DEFAULT_LIMIT;
    char limit_txt[16];
    PGresult *res = NULL;
    struct db *db;
    int r, n;

    r = ctl_parse(ctl, argc, argv, opts, &name, 0, 1, NULL);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (name && !ctl_name_valid(name))
        return ctl_usage_err(ctl, "bad storage or cluster name '%s'", name);
    if (limit_s && parse_uint(limit_s, 1, HISTORY_MAX_LIMIT, &limit) < 0)
        return ctl_usage_err(ctl, "bad --limit '%s' (1..%u)", limit_s, HISTORY_MAX_LIMIT);
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    snprintf(limit_txt, sizeof(limit_txt), "%u", limit);
    res = db_exec(db, history_sql, 2, (const char *[]){name, limit_txt});
    if (!res) {
        ctl_err("cannot read the history: %s%s", db_error(db),
                strcmp(db_sqlstate(db), "42P01") == 0 ? " (run `clusterctl migrate` first)" : "");
        return CTL_FAILED;
    }
    n = PQntuples(res);
    r = CTL_FAILED;
    if (n == 0 && name) {
        if (history_name_known(db, name, &known) < 0) {
            ctl_err("cannot read the history: %s", db_error(db));
            goto out;
        }
        if (!known) {
            ctl_err("no storage or cluster named %s, and none had that name before", name);
            goto out;
        }
    }
    if (json) {
        if (history_print_json(res) < 0)
            goto fmt_fail;
    } else if (n == 0) {
        printf("no mode changes recorded%s%s\n", name ? " for " : "", name ? name : "");
    } else {
        if (history_print_table(res) < 0)
            goto fmt_fail;
        if ((unsigned) n == limit)
            printf("(the last %u changes; --limit N shows more)\n", limit);
    }
    r = CTL_OK;
    goto out;
fmt_fail:
    ctl_err("cannot format the history");
out:
    PQclear(res);
    return r;
}

const struct ctl_cmd ctl_cmd_history = {
    .name = "history",
    .fn = cmd_history,
    .synopsis = "[STORAGE|CLUSTER] [--json] [--limit N]",
    .summary = "recorded mode changes: when, what, from, to, who, why",
    .help =
        "Shows the mode changes of one storage or cluster (by name), or of all, oldest\n"
        "first. Additions and removals appear too (from/to \"-\" and \"removed\").\n"
        "Times are UTC.\n\n"
        "options:\n"
        "  --json      {\"history\": [{\"id\", \"time\", \"kind\", \"name\", \"from\", \"to\",\n"
        "              \"reason\", \"actor\", \"program\"}]}\n"
        "  --limit N   the last N changes (default 100)\n",
};
