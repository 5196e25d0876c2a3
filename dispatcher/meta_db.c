/* dispatcher/meta_db.c — the dispatcher's SQL: bucket and object lookups, the commit of a
 * finished upload, deletes, moves (renames without copying) and prefix listings. All
 * parameters are bound; transactions are short and retried on unique violations/deadlocks. */
#include "meta_db.h"

#include "buf.h"
#include "db.h"
#include "jobs.h"
#include "log.h"
#include "put_guard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMMIT_RETRIES 4

#define OBJECT_COLUMNS                                                                             \
    "id, bucket_id, cluster_id, size, floor(extract(epoch FROM updated_at))::bigint, "             \
    "internal_name, etag, content_type"

static void i64str(int64_t v, char out[24])
{
    snprintf(out, 24, "%" PRId64, v);
}

/* Copies row `row` of a result with OBJECT_COLUMNS into *m. */
static void meta_from_row(const PGresult *res, int row, struct obj_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    m->bucket_id = strtoll(PQgetvalue(res, row, 1), NULL, 10);
    m->cluster_id = strtoll(PQgetvalue(res, row, 2), NULL, 10);
    m->size = strtoull(PQgetvalue(res, row, 3), NULL, 10);
    m->mtime = strtoll(PQgetvalue(res, row, 4), NULL, 10);
    snprintf(m->internal_name, sizeof(m->internal_name), "%s", PQgetvalue(res, row, 5));
    snprintf(m->etag, sizeof(m->etag), "%s", PQgetvalue(res, row, 6));
    snprintf(m->content_type, sizeof(m->content_type), "%s", PQgetvalue(res, row, 7));
}

/* A retryable failure inside a transaction: another writer won a race. */
static bool retryable(struct db *db)
{
    const char *st = db_sqlstate(db);

    return db_is_unique_violation(db) || strcmp(st, "40P01") == 0 || strcmp(st, "40001") == 0;
}

int meta_db_bucket_id(struct db *db, const char *name, int64_t *ret_id)
{
    const char *p[1] = {name};

    return db_query_int64(db, "SELECT id FROM buckets WHERE name = $1 AND deleted_at IS NULL", 1, p,
                          ret_id);
}

int meta_db_object_get(struct db *db, int64_t bucket_id, const char *name, struct obj_meta *ret)
{
    char bid[24];
    const char *p[2] = {bid, name};
    PGresult *res;
    int r;

    i64str(bucket_id, bid);
    res = db_exec(db, "SELECT " OBJECT_COLUMNS " FROM objects WHERE bucket_id = $1 AND name = $2",
                  2, p);
    if (!res)
        return -EIO;
    r = PQntuples(res) == 1 ? 0 : -ENOENT;
    if (r == 0)
        meta_from_row(res, 0, ret);
    PQclear(res);
    return r;
}

int meta_db_bucket_create(struct db *db, const char *name)
{
    const char *p[1] = {name};
    PGresult *res;
    int r;

    res = db_exec(db,
                  "INSERT INTO buckets (name) VALUES ($1) "
                  "ON CONFLICT (name) WHERE deleted_at IS NULL DO NOTHING RETURNING id",
                  1, p);
    if (!res)
        return -EIO;
    r = PQntuples(res) == 1 ? 0 : -EEXIST;
    PQclear(res);
    return r;
}

/* Records a delete_files job for one version's files (inside the caller's transaction). */
static int record_delete_files(struct db *db, int64_t cluster_id, const char *internal_name,
                               int64_t *ret_job)
{
    char payload[128];

    snprintf(payload, sizeof(payload), "{\"cluster_id\": %" PRId64 ", \"internal_name\": \"%s\"}",
             cluster_id, internal_name);
    return jobs_insert(db, "delete_files", payload, ret_job);
}

static void announce(struct kv *kv, int64_t job)
{
    if (kv && job > 0)
        jobs_announce(kv, job);
}

int meta_db_bucket_delete(struct db *db, struct kv *kv, const char *name, int64_t *ret_id)
{
    const char *p[1] = {name};
    char payload[64];
    int64_t id = 0, job = 0;
    int r;

    if (db_begin(db) < 0)
        return -EIO;
    r = db_query_int64(db,
                       "UPDATE buckets SET deleted_at = now() "
                       "WHERE name = $1 AND deleted_at IS NULL RETURNING id",
                       1, p, &id);
    if (r == 0) {
        snprintf(payload, sizeof(payload), "{\"bucket_id\": %" PRId64 "}", id);
        r = jobs_insert(db, "delete_bucket", payload, &job);
    }
    if (r < 0) {
        db_rollback(db);
        return r == -ENOENT ? -ENOENT : -EIO;
    }
    if (db_commit(db) < 0)
        return -EIO;
    announce(kv, job);
    *ret_id = id;
    return 0;
}

int meta_db_bucket_move(struct db *db, const char *from, const char *to, int64_t *ret_id)
{
    const char *p[2] = {from, to};
    int r;

    r = db_query_int64(db,
                       "UPDATE buckets SET name = $2 "
                       "WHERE name = $1 AND deleted_at IS NULL RETURNING id",
                       2, p, ret_id);
    if (r == -EIO && db_is_unique_violation(db))
        return -EEXIST;
    return r == -ENOENT ? -ENOENT : (r < 0 ? -EIO : 0);
}

/* Locks the bucket row against a concurrent DELETE /b for the rest of the transaction. */
static int lock_live_bucket(struct db *db, int64_t bucket_id)
{
    char bid[24];
    const char *p[1] = {bid};

    i64str(bucket_id, bid);
    return db_query_int64(db,
                          "SELECT id FROM buckets WHERE id = $1 AND deleted_at IS NULL "
                          "FOR SHARE",
                          1, p, NULL);
}

/* One try of the commit transaction. Returns 0, -EAGAIN (retry), or a final error. */
static int commit_once(struct db *db, const struct obj_commit *c, struct obj_meta *ret,
                       int64_t *ret_job)
{
    char bid[24], cid[24], size[24], oid[24];
    const char *sel[2] = {bid, c->name};
    PGresult *res = NULL;
    int r;

    i64str(c->bucket_id, bid);
    i64str(c->cluster_id, cid);
    snprintf(size, sizeof(size), "%" PRIu64, c->size);
    if (db_begin(db) < 0)
        return -EIO;
    r = lock_live_bucket(db, c->bucket_id);
    if (r < 0)
        goto fail;
    res = db_exec(db,
                  "SELECT id, cluster_id, internal_name FROM objects "
                  "WHERE bucket_id = $1 AND name = $2 FOR UPDATE",
                  2, sel);
    if (!res) {
        r = -EIO;
        goto fail;
    }
    if (PQntuples(res) == 1) {
        int64_t old_cluster = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        char old_name[NAMES_INTERNAL_LEN + 1];
        const char *up[7] = {oid, c->internal_name, cid, size, c->etag, c->content_type, NULL};

        if (c->if_none_match_star) {
            r = -EEXIST;
            goto fail;
        }
        snprintf(oid, sizeof(oid), "%s", PQgetvalue(res, 0, 0));
        snprintf(old_name, sizeof(old_name), "%s", PQgetvalue(res, 0, 2));
        PQclear(res);
        res = db_exec(db,
                      "UPDATE objects SET internal_name = $2, cluster_id = $3, size = $4, "
                      "etag = $5, content_type = $6, updated_at = now() WHERE id = $1 "
                      "RETURNING " OBJECT_COLUMNS,
                      6, up);
        if (!res || PQntuples(res) != 1) {
            r = -EIO;
            goto fail;
        }
        meta_from_row(res, 0, ret);
        r = record_delete_files(db, old_cluster, old_name, ret_job);
        if (r < 0)
            goto fail;
    } else {
        const char *ins[7] = {bid, c->name, c->internal_name, cid, size, c->etag, c->content_type};

        PQclear(res);
        res = db_exec(db,
                      "INSERT INTO objects (bucket_id, name, internal_name, cluster_id, "
                      "size, etag, content_type) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                      "RETURNING " OBJECT_COLUMNS,
                      7, ins);
        if (!res || PQntuples(res) != 1) {
            r = retryable(db) ? -EAGAIN : -EIO;
            goto fail;
        }
        meta_from_row(res, 0, ret);
    }
    PQclear(res);
    res = NULL;
    r = put_guard_settle(db, c->guards, c->nguards, c->attempt);
    if (r < 0)
        goto fail;
    if (db_commit(db) < 0)
        return retryable(db) ? -EAGAIN : -EIO;
    return 0;
fail:
    if (r == -EIO && retryable(db))
        r = -EAGAIN;
    PQclear(res);
    db_rollback(db);
    return r;
}

int meta_db_object_commit(struct db *db, struct kv *kv, const struct obj_commit *c,
                          struct obj_meta *ret)
{
    int64_t job = 0;
    int r = -EAGAIN;

    for (int i = 0; i < COMMIT_RETRIES && r == -EAGAIN; i++) {
        job = 0;
        r = commit_once(db, c, ret, &job);
    }
    if (r == -EAGAIN)
        r = -EIO;
    if (r == 0)
        announce(kv, job);
    return r;
}

int meta_db_object_delete(struct db *db, struct kv *kv, int64_t bucket_id, const char *name,
                          struct obj_meta *ret_old)
{
    char bid[24];
    const char *p[2] = {bid, name};
    PGresult *res = NULL;
    int64_t job = 0;
    int r;

    i64str(bucket_id, bid);
    if (db_begin(db) < 0)
        return -EIO;
    res = db_exec(db,
                  "DELETE FROM objects WHERE bucket_id = $1 AND name = $2 "
                  "RETURNING " OBJECT_COLUMNS,
                  2, p);
    if (!res) {
        r = -EIO;
        goto fail;
    }
    if (PQntuples(res) != 1) {
        r = -ENOENT;
        goto fail;
    }
    meta_from_row(res, 0, ret_old);
    r = record_delete_files(db, ret_old->cluster_id, ret_old->internal_name, &job);
    if (r < 0)
        goto fail;
    PQclear(res);
    if (db_commit(db) < 0)
        return -EIO;
    announce(kv, job);
    return 0;
fail:
    PQclear(res);
    db_rollback(db);
    return r == -ENOENT ? -ENOENT : -EIO;
}

/* One try of a move; see meta_db_object_move. */
static int move_once(struct db *db, int64_t src_bucket, const char *src_name, int64_t dst_bucket,
                     const char *dst_name, bool overwrite, int64_t *ret_job)
{
    char sb[24], dbk[24], sid[24];
    const char *psrc[2] = {sb, src_name}, *pdst[2] = {dbk, dst_name};
    const char *pmv[3] = {sid, dbk, dst_name};
    PGresult *res = NULL;
    int64_t src_id = 0;
    int r;

    i64str(src_bucket, sb);
    i64str(dst_bucket, dbk);
    if (db_begin(db) < 0)
        return -EIO;
    r = lock_live_bucket(db, dst_bucket);
    if (r < 0)
        goto fail;
    r = db_query_int64(db, "SELECT id FROM objects WHERE bucket_id = $1 AND name = $2 FOR UPDATE",
                       2, psrc, &src_id);
    if (r < 0)
        goto fail;
    i64str(src_id, sid);
    res = db_exec(db,
                  "SELECT id, cluster_id, internal_name FROM objects "
                  "WHERE bucket_id = $1 AND name = $2 FOR UPDATE",
                  2, pdst);
    if (!res) {
        r = -EIO;
        goto fail;
    }
    if (PQntuples(res) == 1) {
        const char *pdel[1] = {PQgetvalue(res, 0, 0)};

        if (!overwrite || strtoll(PQgetvalue(res, 0, 0), NULL, 10) == src_id) {
            r = overwrite ? 0 : -EEXIST; /* onto itself with overwrite: nothing to do */
            if (r == 0) {
                PQclear(res);
                return db_commit(db) < 0 ? -EIO : 0;
            }
            goto fail;
        }
        r = db_run(db, "DELETE FROM objects WHERE id = $1", 1, pdel);
        if (r == 0)
            r = record_delete_files(db, strtoll(PQgetvalue(res, 0, 1), NULL, 10),
                                    PQgetvalue(res, 0, 2), ret_job);
        if (r < 0)
            goto fail;
    }
    PQclear(res);
    res = NULL;
    r = db_run(db, "UPDATE objects SET bucket_id = $2, name = $3 WHERE id = $1", 3, pmv);
    if (r < 0)
        goto fail;
    if (db_commit(db) < 0)
        return retryable(db) ? -EAGAIN : -EIO;
    return 0;
fail:
    if (r == -EIO && retryable(db))
        r = -EAGAIN;
    PQclear(res);
    db_rollback(db);
    return r;
}

int meta_db_object_move(struct db *db, struct kv *kv, int64_t src_bucket, const char *src_name,
                        int64_t dst_bucket, const char *dst_name, bool overwrite)
{
    int64_t job = 0;
    int r = -EAGAIN;

    for (int i = 0; i < COMMIT_RETRIES && r == -EAGAIN; i++) {
        job = 0;
        r = move_once(db, src_bucket, src_name, dst_bucket, dst_name, overwrite, &job);
    }
    if (r == -EAGAIN)
        r = -EIO;
    if (r == 0)
        announce(kv, job);
    return r;
}

/* Escapes LIKE metacharacters of prefix and appends '%'. */
static int like_prefix(const char *prefix, struct buf *out)
{
    int r = 0;

    for (const char *s = prefix; *s && r == 0; s++) {
        if (*s == '%' || *s == '_' || *s == '\\')
            r = buf_append(out, "\\", 1);
        if (r == 0)
            r = buf_append(out, s, 1);
    }
    return r ?: buf_append(out, "%", 1);
}

int meta_db_list(struct db *db, int64_t bucket_id, const char *prefix, const char *after,
                 unsigned limit, struct buf *out)
{
    char bid[24], lim[16];
    struct buf like;
    const char *p[4] = {bid, after, NULL, lim};
    PGresult *res = NULL;
    int n, shown, r;

    buf_init(&like, 4 * 1024 + 8);
    i64str(bucket_id, bid);
    snprintf(lim, sizeof(lim), "%u", limit + 1);
    r = like_prefix(prefix, &like);
    if (r < 0)
        goto out;
    p[2] = like.ptr;
    res = db_exec(db,
                  "SELECT name, size, etag, "
                  "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                  "FROM objects WHERE bucket_id = $1 AND name > $2 AND name LIKE $3 "
                  "ORDER BY name LIMIT $4",
                  4, p);
    if (!res) {
        r = -EIO;
        goto out;
    }
    n = PQntuples(res);
    shown = n > (int) limit ? (int) limit : n;
    r = buf_puts(out, "{\"objects\":[");
    for (int i = 0; i < shown && r == 0; i++) {
        r = buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        r = r ?: buf_json_str(out, PQgetvalue(res, i, 0));
        r = r
                ?: buf_printf(out, ",\"size\":%s,\"etag\":\"%s\",\"last_modified\":\"%s\"}",
                              PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
    }
    r = r ?: buf_puts(out, "],\"next\":");
    if (r == 0 && n > (int) limit && shown > 0)
        r = buf_json_str(out, PQgetvalue(res, shown - 1, 0));
    else if (r == 0)
        r = buf_puts(out, "null");
    r = r ?: buf_puts(out, "}\n");
out:
    PQclear(res);
    buf_release(&like);
    return r;
}
