/* storaged/marker.h — the storage root marker ROOT/.stf-storage (SPEC §6): proof that the
 * directory is a real, initialised storage root and not an unmounted mount point. */
#ifndef STF_STORAGED_MARKER_H
#define STF_STORAGED_MARKER_H

#include <stddef.h>

#define MARKER_FILE ".stf-storage"
#define MARKER_MAGIC "stf-storage 1"
#define MARKER_ID_LEN 32 /* 16 random bytes as lower-case hex */

/* Checks ROOT/.stf-storage under an open root directory: it must be a regular file whose
 * first line is MARKER_MAGIC and which holds an "id <32 hex>" line. Writes the id into
 * ret_id (may be NULL). Returns 0, -ENOENT when the marker is missing, -EINVAL when it is
 * malformed, or -errno; with a one-line reason in reason. */
int marker_check(int root_fd, char ret_id[MARKER_ID_LEN + 1], char *reason, size_t len);

/* --init: creates the root directory (and its parents) when missing, and the marker when
 * missing (written to a temp name, fsync'd, renamed without replacing, directory fsync'd).
 * An existing valid marker is left alone; a malformed one is an error. Returns 0 or -errno
 * with a one-line reason. *ret_created tells whether a marker was written. */
int marker_init(const char *root, int *ret_created, char *reason, size_t len);

#endif
