/* dispatcher/spool.h — the bounded spool of one upload: the body as it arrives, kept so that
 * every storage of a cluster can read it at its own pace and a failed attempt can be retried
 * on the next cluster. Small bodies stay in memory; larger ones go to an unlinked temp file
 * ($TMPDIR, else /var/tmp), so the dispatcher's memory does not grow with object size.
 * One writer thread; any number of reader threads. */
#ifndef STF_DISP_SPOOL_H
#define STF_DISP_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SPOOL_MEM_MAX (256 * 1024)    /* known sizes up to this stay in memory */
#define SPOOL_MEM_CHUNKED (64 * 1024) /* memory part of a body of unknown size */
#define SPOOL_UNKNOWN UINT64_MAX

struct spool;

/* expected = the Content-Length, or SPOOL_UNKNOWN (chunked). Returns NULL on ENOMEM. */
struct spool *spool_new(uint64_t expected);
void spool_free(struct spool *sp);

/* Appends (writer thread only). Returns 0 or -errno (ENOSPC, EIO, ...). */
int spool_write(struct spool *sp, const void *data, size_t len);
/* Marks the body complete (writer thread). */
void spool_finish(struct spool *sp);

/* Bytes appended so far and whether the body is complete (any thread). */
uint64_t spool_size(const struct spool *sp);
bool spool_complete(const struct spool *sp);

/* Copies up to len bytes from off into buf (any thread). Returns the count (0 when nothing is
 * available there yet), or -errno. */
ssize_t spool_read(struct spool *sp, uint64_t off, void *buf, size_t len);

#endif
