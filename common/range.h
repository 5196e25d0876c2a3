/* common/range.h — the HTTP Range request header (RFC 9110 §14), single byte ranges. */
#ifndef STF_RANGE_H
#define STF_RANGE_H

#include <stdint.h>

enum range_result {
    RANGE_NONE = 0,      /* no usable Range: serve the whole representation (200) */
    RANGE_OK,            /* one satisfiable range: *ret_off, *ret_len (206) */
    RANGE_UNSATISFIABLE, /* syntactically valid but outside the representation (416) */
};

/* Parses header (may be NULL) against a representation of size bytes. A malformed header,
 * a unit other than "bytes" and a request for several ranges yield RANGE_NONE (RFC 9110
 * allows a server to ignore them); "bytes=a-b", "bytes=a-" and "bytes=-n" are understood.
 * Every range on a zero-length representation is unsatisfiable. */
enum range_result range_parse(const char *header, uint64_t size, uint64_t *ret_off,
                              uint64_t *ret_len);

#endif
