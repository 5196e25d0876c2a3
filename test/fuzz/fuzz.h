/* test/fuzz/fuzz.h — what every fuzz target shares: the libFuzzer entry points, an assertion
 * that aborts with a message (libFuzzer then saves the input), and bounded input copies. */
#ifndef STF_FUZZ_H
#define STF_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant: on failure, print where and why, then abort (a crash for libFuzzer, a failed
 * test for the replay driver). */
#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A malloc'd, NUL-terminated copy of the first min(size, max) bytes (the caller frees it).
 * Exactly sized, so ASan sees any read past the terminator. Never returns NULL. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size, size_t max)
{
    size_t n = size < max ? size : max;
    char *s = malloc(n + 1);

    if (s == NULL)
        abort();
    if (n > 0)
        memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* True if [s, s + n) holds a byte below 0x20 or DEL. */
static inline int fuzz_has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] == 0x7f)
            return 1;
    }
    return 0;
}

/* True if the '/'-separated path [s, s + n) has a "." or ".." segment. */
static inline int fuzz_has_dot_segment(const char *s, size_t n)
{
    size_t seg = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            size_t len = i - seg;

            if ((len == 1 && s[seg] == '.') || (len == 2 && s[seg] == '.' && s[seg + 1] == '.'))
                return 1;
            seg = i + 1;
        }
    }
    return 0;
}

#endif
