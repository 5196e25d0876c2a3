/* storaged/rsync_batch.h — the batched endpoints of the whole-disk copy, for blobs the storage
 * being rebuilt lacks entirely: the target pulls many of them at once straight from the peer
 * (one loopback or network crossing, no relay, no librsync, one request per batch).
 *
 * POST /_rsync/pack   (on the peer; body: one line per blob, "NAME 0|1\n", 1 = send its MD5)
 *      200, the pack stream of rsync_pack.h: each blob whole, read once (hashed while it is
 *      sent when asked).
 * POST /_rsync/pull   (on the target; X-STF-Source: http://HOST:PORT of the peer, optional
 *      X-STF-Max-Bytes-Per-Sec; body: one line per blob, "NAME SIZE MD5HEX|-\n")
 *      fetches the blobs with one POST SOURCE/_rsync/pack, writes each to a temp file next to
 *      its place while hashing it, checks its MD5 (against the one given, else against the one
 *      the peer computed while sending), sets the peer's mtime and commits it without fsync
 *      (a later POST /_rsync/sync makes it durable). 200 with one line per blob, in order:
 *      "NAME STATUS BYTES REASON\n": 201 stored, 404 the peer has no such blob, 422 failed
 *      verification (nothing stored), 502 the peer's stream failed before it, 5xx a local
 *      error; then "# end\n". */
#ifndef STF_STORAGED_RSYNC_BATCH_H
#define STF_STORAGED_RSYNC_BATCH_H

#include "request.h"

#define RSYNC_PATH_PACK "/_rsync/pack"
#define RSYNC_PATH_PULL "/_rsync/pull"
#define RSYNC_BATCH_FILES_MAX 1024 /* blobs in one pack or pull request */

extern const struct sd_endpoint sd_rsync_pack_endpoint;
extern const struct sd_endpoint sd_rsync_pull_endpoint;

#endif
