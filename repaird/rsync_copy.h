/* repaird/rsync_copy.h — the byte-moving engine of the whole-disk copy: several files at once on
 * one curl multi handle, each streamed peer -> repaird -> target through a bounded pipe:
 * [signature of the target's copy ->] librsync delta from the peer -> patch on the target, which
 * verifies size and MD5 before the file becomes visible; or a DELETE on the target. Files the
 * target lacks go in batches that the target pulls from the peer itself (rsync_pull.h), verified
 * the same way. All bytes go through the throttle; no file is ever held in memory (a signature
 * is, bounded). */
#ifndef REPAIRD_RSYNC_COPY_H
#define REPAIRD_RSYNC_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blob_path.h"

struct throttle;
struct rcopy;

#define RCOPY_LANES_MAX 32
#define RCOPY_PULLS_MAX 16
#define RCOPY_SIG_MAX (32u << 20) /* = storaged's RSX_SIG_MAX */

enum rcopy_op {
    RCOPY_FETCH = 0, /* the target has no usable copy: delta from nothing (all literal) */
    RCOPY_UPDATE,    /* the target's copy differs: its signature first, then delta + patch */
    RCOPY_DELETE,    /* the target holds a file the peer does not: remove it */
};

struct rcopy_item {
    enum rcopy_op op;
    char name[BLOB_NAME_MAX + 1];
    uint64_t size;       /* the size expected (progress only) */
    char expect_md5[33]; /* "" = the peer's copy is the truth; else the result must have it
                          * (objects.etag), and the peer is spared reading the file twice */
    const char *src_uri; /* another peer for this item (borrowed), NULL = the engine's */
    uint64_t seq;        /* the caller's */
};

struct rcopy_result {
    int err;             /* 0; -ENOENT the peer has no such blob; -EBADMSG the result failed
                          * verification (the peer's copy differs from expect_md5, or twice in a
                          * row on the target); -EIO (HTTP error), -ETIMEDOUT, -ECONNREFUSED,
                          * -ECANCELED/-ESTALE (the job stops) */
    char errmsg[256];    /* one line when err != 0 */
    uint64_t wire_bytes; /* signature + delta bytes that went through repaird */
    uint64_t literal;    /* bytes the patch took from the delta rather than the basis */
    bool fell_back;      /* an UPDATE failed verification and was redone as a FETCH */
};

typedef void (*rcopy_done_fn)(void *arg, const struct rcopy_item *it,
                              const struct rcopy_result *res);
/* Called at least every 200 ms while the engine runs; a negative return aborts everything. */
typedef int (*rcopy_tick_fn)(void *arg);

struct rcopy_opts {
    const char *src_uri; /* the peer, "http://HOST:PORT" */
    const char *dst_uri; /* the storage being rebuilt */
    unsigned lanes;      /* files in flight at once, 1..RCOPY_LANES_MAX */
    unsigned pulls;      /* batches in flight at once, 0..RCOPY_PULLS_MAX: a FETCH of the
                          * engine's peer goes into a batch the target pulls from the peer
                          * itself (POST /_rsync/pull); 0 = every file through a lane */
    unsigned pull_files; /* files in one batch at most (0 = the largest) */
    struct throttle *throttle;
    bool defer_sync; /* patches with X-STF-Sync: defer (then call rcopy_sync before
                      * trusting them to be durable) */
    rcopy_done_fn done;
    void *done_arg;
    rcopy_tick_fn tick;
    void *tick_arg;
};

/* Returns 0 and *ret (free with rcopy_free), or -ENOMEM. */
int rcopy_new(const struct rcopy_opts *o, struct rcopy **ret);
/* Aborts whatever is in flight (no done callbacks) and frees. NULL-safe. */
void rcopy_free(struct rcopy *c);

/* Starts an item on a free lane, or adds it to a batch (started once full, or when rcopy_run
 * finds nothing else to do). Returns 0, or -EBUSY when no lane or batch can take it. */
int rcopy_submit(struct rcopy *c, const struct rcopy_item *it);
/* Whether rcopy_submit can take it now. */
bool rcopy_can_submit(const struct rcopy *c, const struct rcopy_item *it);
bool rcopy_has_free_lane(const struct rcopy *c);
unsigned rcopy_in_flight(const struct rcopy *c);

/* Moves bytes for up to timeout_ms, returning as soon as at least one item finished (its done
 * callback has run) or the time is up. Returns 0, or the tick's error, or -ENOMEM. */
int rcopy_run(struct rcopy *c, int timeout_ms);
/* Runs until nothing is in flight. Same returns as rcopy_run. */
int rcopy_drain(struct rcopy *c);

/* -errno for a CURLcode. */
int rcopy_curl_errno(int curl_code);
/* Resets a CURL easy handle to the engine's common options (url, http only, no proxy, no
 * signals, connect timeout, user agent, errbuf of CURL_ERROR_SIZE, emptied). */
void rcopy_easy_base(void *easy, const char *url, char *errbuf);

/* POST dst/_rsync/sync: every patch committed so far is durable afterwards.
 * Returns 0 or -errno with one line in err. */
int rcopy_sync(const char *dst_uri, char *err, size_t errlen);

/* The same sync run by the engine in the background of rcopy_run (transfers go on meanwhile):
 * what was committed before rcopy_sync_start is durable once rcopy_sync_poll returns 0.
 * rcopy_sync_start returns 0, -EBUSY (one is under way) or -ENOMEM; rcopy_sync_poll returns 1
 * while it runs (or none was started: -EINVAL), 0 done, -errno failed (one line in err). */
int rcopy_sync_start(struct rcopy *c);
int rcopy_sync_poll(struct rcopy *c, char *err, size_t errlen);

#endif
