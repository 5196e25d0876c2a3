/* repaird/job_queue_int.h — what job_queue.c and job_sweep.c share and nobody else uses: the
 * per-thread queue handle and small parsing/formatting helpers. */
#ifndef REPAIRD_JOB_QUEUE_INT_H
#define REPAIRD_JOB_QUEUE_INT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

struct jq_shared;
struct db;
struct kv;

struct jq {
    struct jq_shared *sh;
    struct db *db;
    struct kv *kv;
    uint64_t rng;
    unsigned sweeps;
};

void jq_fmt_i64(char *out, size_t outlen, int64_t v);
void jq_fmt_u64(char *out, size_t outlen, uint64_t v);
/* A non-negative decimal of at most 18 digits. Returns 0 or -EINVAL. */
int jq_parse_i64(const char *s, size_t len, int64_t *ret);
/* Element `key` of a RESP2 flat map (an array of alternating keys and values), or NULL. */
const redisReply *jq_map_get(const redisReply *map, const char *key);
/* The job id of a stream entry [entry-id, [field, value, ...]], and the entry id into entry.
 * Returns 0 or -EINVAL. */
int jq_entry_job_id(const redisReply *e, int64_t *ret_id, char *entry, size_t entry_len);

#endif
