/* repaird/rsync_pull.h — one batch of the whole-disk copy's fetches: many files the target
 * lacks, asked of the target in one POST /_rsync/pull (the target fetches them straight from the
 * peer and verifies each), run on the engine's curl multi handle; the answer's lines become
 * one result per file. */
#ifndef REPAIRD_RSYNC_PULL_H
#define REPAIRD_RSYNC_PULL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "rsync_copy.h"

#define RPULL_FILES_MAX 1024 /* = storaged's RSYNC_BATCH_FILES_MAX */

struct rpull {
    CURL *h;
    bool running;
    struct rcopy_item *items;
    unsigned n;
    uint64_t bytes; /* sizes of the items added up */
    struct buf list, answer;
    struct curl_slist *hdrs;
    char url[512], errbuf[CURL_ERROR_SIZE];
};

/* Returns 0 or -ENOMEM; rpull_release frees (the handle must not be on a multi handle). */
int rpull_init(struct rpull *p);
void rpull_release(struct rpull *p);

/* Adds a file to a batch not yet started. Returns 0 or -ENOMEM. */
int rpull_add(struct rpull *p, const struct rcopy_item *it);

/* Starts the batch on multi: dst pulls from src, at most rate bytes/s (0 = unlimited).
 * Returns 0 or -errno. */
int rpull_start(struct rpull *p, CURLM *multi, const char *dst_uri, const char *src_uri,
                uint64_t rate);

/* The batch ended with code: reports every file through done (in order) and empties the
 * batch. err (!= 0) instead fails every file with it (the job stops). */
void rpull_finish(struct rpull *p, CURLcode code, int err, rcopy_done_fn done, void *arg);

#endif
