/* common/blob_path.h — internal (on-disk) blob names and where they live under a storage root:
 * ROOT/aa/bb/<name>, aa/bb = the top two bytes, in hex, of hash_murmur64(name). */
#ifndef STF_BLOB_PATH_H
#define STF_BLOB_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define BLOB_NAME_MAX 128                                  /* longest internal name */
#define BLOB_FANOUT_LEN 6                                  /* "aa/bb/" */
#define BLOB_REL_MAX (BLOB_FANOUT_LEN + BLOB_NAME_MAX + 1) /* "aa/bb/<name>" + NUL */

/* Internal names: 1..128 characters of [A-Za-z0-9_.-], not starting with '.' (so never "."
 * or "..", never a hidden file such as the root's ".tmp" or ".stf-storage"). The dispatcher
 * uses 32 lower-case hex characters. Returns NULL when valid, else a one-line reason (static). */
const char *blob_name_invalid(const char *name, size_t len);

static inline bool blob_name_valid(const char *name, size_t len)
{
    return blob_name_invalid(name, len) == NULL;
}

/* Writes the fan-out directory of a name, "aa/bb" plus NUL, into out[6]: aa is the most
 * significant byte of hash_murmur64(name), bb the next one (independent of the CPU's byte
 * order). Does not validate the name. */
void blob_fanout(const char *name, size_t len, char out[BLOB_FANOUT_LEN]);

/* Writes "aa/bb/<name>" (relative to the root, for openat() on a root directory fd) into
 * out[BLOB_REL_MAX]. Returns 0, or -EINVAL for a name that is not a valid internal name. */
int blob_rel_path(const char *name, size_t len, char out[BLOB_REL_MAX]);

/* Appends "ROOT/aa/bb/<name>" to *ret (the caller releases it with buf_release()); a trailing
 * '/' of root is not doubled. Returns 0, -EINVAL for an invalid name, or buf's -ENOMEM/-E2BIG. */
int blob_path(const char *root, const char *name, size_t len, struct buf *ret);

/* True if rel is exactly "aa/bb/<name>" for a valid name whose fan-out is aa/bb: the check
 * for paths found on disk or received from a peer (whole-disk copy) before they are used. */
bool blob_rel_path_valid(const char *rel, size_t len);

#endif
