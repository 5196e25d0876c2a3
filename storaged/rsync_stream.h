/* storaged/rsync_stream.h — librsync's streaming jobs over file descriptors with fixed buffers:
 * signatures and deltas pulled out piece by piece, signatures and deltas pushed in piece by piece.
 * Memory is bounded by the buffers and, for a delta, by the loaded signature; never by a file. */
#ifndef STF_STORAGED_RSYNC_STREAM_H
#define STF_STORAGED_RSYNC_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RSX_BUF_SIZE (128 * 1024) /* input and output buffer of every job */
#define RSX_SIG_MAX (32u << 20)   /* largest signature accepted (a 10 GiB file needs ~2 MiB) */

struct rsx_sig;     /* a loaded, indexed signature (librsync's rs_signature_t) */
struct rsx_reader;  /* pull: a file through a job into the caller's buffer */
struct rsx_loader;  /* push: signature bytes into a struct rsx_sig */
struct rsx_patcher; /* push: delta bytes, with a basis file, into an output file */

/* Routes librsync's own messages to our log (debug level) instead of stderr. Idempotent and
 * thread-safe; the constructors below call it. */
void rsx_init(void);

/* A reader of the signature of fd (read from its current offset to EOF; size is the file size,
 * used to choose the block length: ~sqrt(size), with the shortest safe strong sums, as the
 * whole file is checked with MD5 after a patch anyway). *ret owned by the caller.
 * Returns 0, -ENOMEM, or -EINVAL when librsync refuses the parameters. */
int rsx_sig_reader_new(int fd, uint64_t size, struct rsx_reader **ret);

/* A reader of the delta that turns the basis described by sig into the content of fd (read
 * from its current offset to EOF). sig NULL = no basis: the delta carries the whole file as
 * literal data. The reader takes sig over (freed with the reader, even on failure). */
int rsx_delta_reader_new(int fd, struct rsx_sig *sig, struct rsx_reader **ret);

/* Writes up to max (> 0) bytes of the stream into out. Returns the count (> 0), 0 once the
 * stream is complete, -EIO (or -errno) when the file cannot be read, -EPROTO when librsync
 * fails. fd is not closed by the reader. */
ssize_t rsx_read(struct rsx_reader *r, void *out, size_t max);
/* Bytes read from the file so far. */
uint64_t rsx_reader_in_bytes(const struct rsx_reader *r);
void rsx_reader_free(struct rsx_reader *r); /* NULL-safe */

/* A signature loader accepting at most max_bytes (<= RSX_SIG_MAX). Returns 0 or -ENOMEM. */
int rsx_loader_new(size_t max_bytes, struct rsx_loader **ret);
/* Feeds the next piece. Returns 0, -E2BIG past max_bytes, -EPROTO for a malformed signature. */
int rsx_loader_feed(struct rsx_loader *l, const void *data, size_t len);
/* Ends the input and indexes the signature. On success *ret is the signature (the caller owns
 * it: rsx_sig_free), or NULL when no byte at all was fed (no basis). Returns 0, -EPROTO for a
 * truncated or malformed signature, -ENOMEM. */
int rsx_loader_finish(struct rsx_loader *l, struct rsx_sig **ret);
void rsx_loader_free(struct rsx_loader *l); /* NULL-safe */
void rsx_sig_free(struct rsx_sig *sig);     /* NULL-safe */

/* A patcher applying a delta to basis_fd (-1: no basis; a delta that copies from it then
 * fails) and writing the result to out_fd with write(2), hashing it with MD5. More than
 * max_out output bytes fail with -EFBIG. The fds stay the caller's. Returns 0 or -ENOMEM. */
int rsx_patcher_new(int basis_fd, int out_fd, uint64_t max_out, struct rsx_patcher **ret);
/* Feeds the next piece of the delta. Returns 0; -EPROTO (malformed delta or data after its
 * end), -EFBIG, or -errno of a write (-ENOSPC...) or of a basis read. */
int rsx_patcher_feed(struct rsx_patcher *p, const void *data, size_t len);
/* Ends the delta. Returns 0 and the MD5 and size of what was written, or -EPROTO when the
 * delta was truncated, or an error as rsx_patcher_feed. */
int rsx_patcher_finish(struct rsx_patcher *p, uint8_t ret_md5[16], uint64_t *ret_size);
/* Literal and copied bytes so far (librsync's statistics). */
void rsx_patcher_stats(const struct rsx_patcher *p, uint64_t *ret_literal, uint64_t *ret_copied);
void rsx_patcher_free(struct rsx_patcher *p); /* NULL-safe */

#endif
