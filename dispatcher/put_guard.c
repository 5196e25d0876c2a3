/* dispatcher/put_guard.c — the guard jobs of uploads (see put_guard.h): their SQL, and their
 * delay from the environment. */
#include "put_guard.h"

#include "buf.h"
#include "db.h"
#include "env_knob.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD_SQL_MAX (64 * 1024) /* array literals of at most PUT_MAX_CLUSTERS entries */

/* Makes guards due soon (a sweep announces them); $1: a bigint[] of job ids. Not at once: a
 * storaged that had received a whole body may still be finishing that upload (fsync, rename)
 * after the dispatcher gave up on it, and a guard that ran before the rename would find
 * nothing and leave the file for good (seen in test `rebalance`: one copy on one storage). */
#define GUARD_FIRE_SQL                                                                             \
    "UPDATE jobs SET run_after = LEAST(run_after, now() + interval '10 seconds') "                 \
    "WHERE id = ANY($1::bigint[]) AND state = 'pending' RETURNING id"

/* Removes guards that have not started; $1: a bigint[] of job ids. */
#define GUARD_DROP_SQL                                                                             \
    "DELETE FROM jobs WHERE id = ANY($1::bigint[]) AND state = 'pending' RETURNING id"

static uint64_t guard_delay_ms = PUT_GUARD_DELAY_DEFAULT_MS;

int put_guard_init(char *err, size_t errlen)
{
    return env_duration_ms("STF_DISPATCHER_PUT_GUARD", 1000, &guard_delay_ms, err, errlen);
}

uint64_t put_guard_delay_ms(void)
{
    return guard_delay_ms;
}

/* "{a,b,c}" of ids[from..to) into out (a PostgreSQL bigint[] literal). */
static int ids_array(struct buf *out, const int64_t *ids, size_t from, size_t to)
{
    int r = buf_puts(out, "{");

    for (size_t i = from; r == 0 && i < to; i++)
        r = buf_printf(out, "%s%" PRId64, i > from ? "," : "", ids[i]);
    if (r == 0)
        r = buf_puts(out, "}");
    return r;
}

int put_guard_insert(struct db *db, size_t n, const int64_t *cluster_ids,
                     const char (*names)[NAMES_INTERNAL_LEN + 1], uint64_t delay_ms,
                     int64_t *ret_ids)
{
    struct buf cids, nms;
    char delay[24];
    const char *p[3];
    PGresult *res = NULL;
    int r;

    buf_init(&cids, GUARD_SQL_MAX);
    buf_init(&nms, GUARD_SQL_MAX);
    r = ids_array(&cids, cluster_ids, 0, n);
    r = r ? r : buf_puts(&nms, "{");
    for (size_t i = 0; r == 0 && i < n; i++)
        r = buf_printf(&nms, "%s%s", i ? "," : "", names[i]);
    r = r ? r : buf_puts(&nms, "}");
    if (r < 0)
        goto out;
    snprintf(delay, sizeof(delay), "%" PRIu64, delay_ms);
    p[0] = cids.ptr;
    p[1] = nms.ptr;
    p[2] = delay;
    res = db_exec(db,
                  "INSERT INTO jobs (kind, payload, run_after) "
                  "SELECT 'delete_files', jsonb_build_object('cluster_id', c, "
                  "'internal_name', n), now() + $3::bigint * interval '1 millisecond' "
                  "FROM unnest($1::bigint[], $2::text[]) AS u(c, n) "
                  "RETURNING id, payload->>'internal_name'",
                  3, p);
    r = res && PQntuples(res) == (int) n ? 0 : -EIO;
    for (int row = 0; r == 0 && row < PQntuples(res); row++) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(PQgetvalue(res, row, 1), names[i]) == 0)
                ret_ids[i] = strtoll(PQgetvalue(res, row, 0), NULL, 10);
        }
    }
out:
    PQclear(res);
    buf_release(&cids);
    buf_release(&nms);
    return r < 0 ? -EIO : 0;
}

/* Runs sql with the bigint[] of ids[from..to) as $1; the number of rows it returned, or -EIO. */
static int guard_run(struct db *db, const char *sql, const int64_t *ids, size_t from, size_t to)
{
    struct buf arr;
    const char *p[1];
    PGresult *res = NULL;
    int r;

    buf_init(&arr, GUARD_SQL_MAX);
    r = ids_array(&arr, ids, from, to);
    if (r == 0) {
        p[0] = arr.ptr;
        res = db_exec(db, sql, 1, p);
    }
    r = res ? PQntuples(res) : -EIO;
    PQclear(res);
    buf_release(&arr);
    return r;
}

int put_guard_settle(struct db *db, const int64_t *ids, size_t n, size_t cur)
{
    int r;

    if (cur >= n)
        return 0;
    r = guard_run(db, GUARD_DROP_SQL, ids, cur, cur + 1);
    if (r < 0)
        return -EIO;
    if (r == 0) {
        log_warn("event=put_guard_started job=%" PRId64 " note=\"the upload outlived its "
                 "guard (STF_DISPATCHER_PUT_GUARD): not committed\"",
                 ids[cur]);
        return -ESTALE;
    }
    if (cur + 1 < n && guard_run(db, GUARD_DROP_SQL, ids, cur + 1, n) < 0)
        return -EIO;
    if (cur > 0 && guard_run(db, GUARD_FIRE_SQL, ids, 0, cur) < 0)
        return -EIO;
    return 0;
}

void put_guard_fire(struct db *db, const int64_t *ids, size_t n)
{
    if (n == 0 || !db)
        return;
    if (guard_run(db, GUARD_FIRE_SQL, ids, 0, n) < 0)
        log_warn("event=put_guard_fire_failed jobs=%zu note=\"they run at their delay\"", n);
}
