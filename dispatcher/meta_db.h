/* dispatcher/meta_db.h — every PostgreSQL statement the dispatcher runs for buckets and
 * objects: lookups, the short commit transaction of a write, deletes, moves and listings.
 * Jobs recorded inside a transaction are announced on Redis after COMMIT (kv may be NULL). */
#ifndef STF_DISP_META_DB_H
#define STF_DISP_META_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta.h"

struct buf;
struct db;
struct kv;

/* Lookups. Return 0, -ENOENT, or -EIO (PostgreSQL unreachable or failing). */
int meta_db_bucket_id(struct db *db, const char *name, int64_t *ret_id);
int meta_db_object_get(struct db *db, int64_t bucket_id, const char *name, struct obj_meta *ret);

/* PUT /b: 0 created, -EEXIST already there, -EIO. */
int meta_db_bucket_create(struct db *db, const char *name);
/* DELETE /b: marks the bucket deleted and records a delete_bucket job in one transaction.
 * 0 (and *ret_id), -ENOENT, -EIO. */
int meta_db_bucket_delete(struct db *db, struct kv *kv, const char *name, int64_t *ret_id);
/* MOVE /b: 0 (and *ret_id), -ENOENT source missing, -EEXIST destination exists, -EIO. */
int meta_db_bucket_move(struct db *db, const char *from, const char *to, int64_t *ret_id);

/* What a finished upload commits. */
struct obj_commit {
    int64_t bucket_id;
    const char *name;
    const char *internal_name;
    int64_t cluster_id;
    uint64_t size;
    const char *etag;
    const char *content_type;
    bool if_none_match_star; /* refuse (-EEXIST) when the object exists */
    const int64_t *guards;   /* put_guard.h: the upload's guards, settled in the transaction */
    size_t nguards;
    size_t attempt; /* the guard of the committed copy */
};

/* Inserts or replaces the row; a replaced version's files are recorded for deletion
 * (delete_files job) in the same transaction. Returns 0 and fills *ret (the new row), -ENOENT
 * when the bucket is gone, -EEXIST for If-None-Match: *, -ESTALE when the copy's guard has
 * started (put_guard_settle), -EIO (the outcome may be unknown: COMMIT sent, no answer). The
 * transaction is short and opened only now: no bytes move while it is open. */
int meta_db_object_commit(struct db *db, struct kv *kv, const struct obj_commit *c,
                          struct obj_meta *ret);

/* DELETE /b/o: removes the row and records a delete_files job. 0 (*ret_old filled), -ENOENT,
 * -EIO. */
int meta_db_object_delete(struct db *db, struct kv *kv, int64_t bucket_id, const char *name,
                          struct obj_meta *ret_old);

/* MOVE /b/o: renames the row (no bytes move). A replaced destination (overwrite) has its files
 * recorded for deletion. 0, -ENOENT (source missing), -EEXIST (destination exists and not
 * overwrite), -EIO. */
int meta_db_object_move(struct db *db, struct kv *kv, int64_t src_bucket, const char *src_name,
                        int64_t dst_bucket, const char *dst_name, bool overwrite);

/* GET /b?prefix&after&limit: appends the JSON document of SPEC §5 to out. 0 or -EIO/-E2BIG. */
int meta_db_list(struct db *db, int64_t bucket_id, const char *prefix, const char *after,
                 unsigned limit, struct buf *out);

#endif
