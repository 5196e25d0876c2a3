/* common/names.h — what a bucket name, an object name and an internal (on-disk) name may be
 * (SPEC §5), and fresh internal names from getrandom(2). */
#ifndef STF_NAMES_H
#define STF_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAMES_BUCKET_MAX 63
#define NAMES_OBJECT_MAX 1024
#define NAMES_INTERNAL_LEN 32 /* 16 random bytes as lower-case hex */

/* Bucket names: 1..63 of [a-z0-9._-], not "." or "..", not starting with '_' (reserved for
 * the API: /_health, /_metrics). Returns NULL when valid, else a one-line reason (static). */
const char *names_bucket_invalid(const char *s, size_t len);

/* Object names: 1..1024 bytes of valid UTF-8, no NUL or control characters (C0, DEL, C1),
 * no "." or ".." path segment. Returns NULL when valid, else a one-line reason (static). */
const char *names_object_invalid(const char *s, size_t len);

/* True if s is valid UTF-8 without control characters (used for prefixes and markers, which
 * may be empty and may end in the middle of a segment). */
bool names_text_valid(const char *s, size_t len);

/* Writes a fresh internal name (32 lower-case hex chars + NUL) into out[33].
 * Returns 0 or -errno from getrandom. */
int names_internal_new(char out[NAMES_INTERNAL_LEN + 1]);

/* True if s is exactly 32 lower-case hex characters. */
bool names_internal_valid(const char *s);

#endif
