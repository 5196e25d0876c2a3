/* storaged/rsync_pack.h — the pack stream of POST /_rsync/pack: many whole blobs in one
 * response, for a storage that lacks them entirely (no librsync needed). Per requested blob,
 * in request order:
 *   "+ NAME SIZE SEC.NSEC\n" then SIZE bytes, then ". MD5HEX\n" (". -\n" when no MD5 was asked
 *   for)                                                   the blob
 *   "- NAME\n"                                             no such blob
 * and a last line "# end files=N\n" (a stream without it was cut short).
 * The decoder takes the stream in pieces of any size and calls back per blob. */
#ifndef STF_STORAGED_RSYNC_PACK_H
#define STF_STORAGED_RSYNC_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "blob_path.h"

#define PACK_LINE_MAX (BLOB_NAME_MAX + 80)

/* Each returns 0 or -errno, which stops the decoder with that error. */
struct pack_cbs {
    int (*begin)(void *arg, const char *name, uint64_t size, const struct timespec *mtime);
    int (*data)(void *arg, const void *data, size_t len);
    int (*end)(void *arg, const char *md5hex); /* "" when the stream carries no MD5 */
    int (*missing)(void *arg, const char *name);
};

enum pack_state { PACK_LINE = 0, PACK_DATA, PACK_TRAILER, PACK_ENDED, PACK_FAILED };

struct pack_decoder {
    const struct pack_cbs *cb;
    void *arg;
    enum pack_state state;
    char line[PACK_LINE_MAX];
    size_t line_len;
    uint64_t left; /* data bytes of the current blob still to come */
};

void pack_decoder_init(struct pack_decoder *d, const struct pack_cbs *cb, void *arg);
/* Feeds the next piece. Returns 0, -EPROTO for a malformed stream (or bytes after its end),
 * or a callback's error; once failed, every later call fails. */
int pack_decoder_feed(struct pack_decoder *d, const char *data, size_t len);
/* True once the end line was read. */
bool pack_decoder_ended(const struct pack_decoder *d);

#endif
