/* test/unit/check.h — a few TAP macros for the unit tests (meson protocol 'tap').
 * Each CHECK prints one "ok"/"not ok" line; check_done() prints the plan and the exit code. */
#ifndef STF_CHECK_H
#define STF_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_n, check_failed;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        check_n++;                                                                         \
        if (cond) {                                                                        \
            printf("ok %d - ", check_n);                                                   \
        } else {                                                                           \
            check_failed++;                                                                \
            printf("not ok %d - %s:%d: ", check_n, __FILE__, __LINE__);                   \
        }                                                                                  \
        printf(__VA_ARGS__);                                                               \
        printf("\n");                                                                      \
    } while (0)

static inline int check_streq(const char *got, const char *want)
{
    return got && strcmp(got, want) == 0;
}

#define CHECK_STR(got, want, what)                                                         \
    CHECK(check_streq((got), (want)), "%s: got '%s' want '%s'", what,                    \
          check_streq((got), (got)) ? (const char *) (got) : "(null)", want)

static inline int check_done(void)
{
    printf("1..%d\n", check_n);
    return check_failed ? 1 : 0;
}

#endif
