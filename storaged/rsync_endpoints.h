/* storaged/rsync_endpoints.h — the internal endpoints of the whole-disk copy (SPEC §6), used by
 * repaird's recover_storage job; everything is streamed, nothing holds a whole file in memory.
 *
 * GET  /_rsync/manifest[?after=aa/bb/NAME]
 *      text/plain, one line per blob in byte order of its path: "aa/bb/NAME SIZE SEC.NSEC\n"
 *      (size in bytes, mtime), only paths after `after`; then a last line
 *      "# end files=N bytes=B\n" (a stream without it was cut short). Temp files, the marker and
 *      anything that is not a valid blob path are left out.
 * POST /_rsync/signature/NAME
 *      the librsync signature of the local blob (X-STF-Size: its size); 404 when absent.
 * POST /_rsync/delta/NAME   (body: a signature, or nothing for "no basis")
 *      the librsync delta from that basis to the local blob, with X-STF-Size, X-STF-MD5 (hex;
 *      left out when the request says X-STF-MD5-Known: the caller verifies against the MD5 it
 *      knows, objects.etag) and X-STF-Mtime (SEC.NSEC) of the local blob; 404 when absent.
 * POST /_rsync/patch/NAME   (body: a delta; X-STF-Expect-Size and X-STF-Expect-MD5 required,
 *      X-STF-Mtime optional, X-STF-Sync: defer optional)
 *      applies the delta to the local blob (the basis; none when absent) into a temp file,
 *      verifies size and MD5 (422 on a mismatch, nothing changed), sets the mtime, and commits
 *      it like a PUT: fsync, rename, directory fsync; with X-STF-Sync: defer the fsyncs are
 *      left to a later POST /_rsync/sync. 201 with X-STF-Literal-Bytes / X-STF-Copied-Bytes.
 * POST /_rsync/sync
 *      syncfs(2) of the storage root: everything committed before is durable. 204.
 * The batched fetch of blobs a storage lacks entirely (/_rsync/pack, /_rsync/pull) is in
 * rsync_batch.h. */
#ifndef STF_STORAGED_RSYNC_ENDPOINTS_H
#define STF_STORAGED_RSYNC_ENDPOINTS_H

#include "request.h"

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

extern const struct sd_endpoint sd_rsync_manifest_endpoint;
extern const struct sd_endpoint sd_rsync_signature_endpoint;
extern const struct sd_endpoint sd_rsync_delta_endpoint;
extern const struct sd_endpoint sd_rsync_patch_endpoint;
extern const struct sd_endpoint sd_rsync_sync_endpoint;

/* Route prefixes (router.c). */
#define RSYNC_PATH_MANIFEST "/_rsync/manifest"
#define RSYNC_PATH_SIGNATURE "/_rsync/signature/"
#define RSYNC_PATH_DELTA "/_rsync/delta/"
#define RSYNC_PATH_PATCH "/_rsync/patch/"
#define RSYNC_PATH_SYNC "/_rsync/sync"

/* Field parsers the /_rsync/ endpoints share. Each returns 0 or -EINVAL (-ERANGE: too many
 * digits). A decimal of at most 19 digits, <= max: */
int rsync_parse_u64(const char *s, uint64_t max, uint64_t *ret);
/* "SEC" or "SEC.NNNNNNNNN" (1..9 fraction digits): */
int rsync_parse_mtime(const char *s, struct timespec *ret);
/* 32 hex digits: */
int rsync_parse_md5_hex(const char *s, uint8_t out[16]);
/* The mtime of st as "SEC.NNNNNNNNN". */
void rsync_format_mtime(const struct stat *st, char out[40]);

#endif
