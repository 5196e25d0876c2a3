/* test/fuzz/fuzz_http_date.c — HTTP dates (common/http_date.c): every time formats to a fixed
 * IMF-fixdate that parses back to it, and an accepted date is exactly the instant it names. */
#include "fuzz.h"

#include "http_date.h"

#include <stdbool.h>
#include <time.h>

#define DATE_INPUT_MAX 64
#define DATE_MIN (-62167219200LL) /* 0000-01-01T00:00:00Z: the format has four-digit years */
#define DATE_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static bool in_list(const char *s, const char *const *list, int n)
{
    for (int i = 0; i < n; i++) {
        if (strncmp(s, list[i], 3) == 0)
            return true;
    }
    return false;
}

static bool digits_at(const char *s, const char *pos)
{
    for (; *pos; pos++) {
        if (*pos == 'd' && !(*s >= '0' && *s <= '9'))
            return false;
        if (*pos != 'd' && *pos != 'x' && *pos != *s)
            return false;
        s++;
    }
    return true;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT", exactly. */
static void check_shape(const char *out)
{
    FUZZ_ASSERT(strlen(out) == HTTP_DATE_LEN - 1, "'%s' has length %zu", out, strlen(out));
    FUZZ_ASSERT(in_list(out, wdays, 7) && in_list(out + 8, months, 12) &&
                    digits_at(out, "xxx, dd xxx dddd dd:dd:dd GMT"),
                "'%s' is no IMF-fixdate", out);
}

static void check_format(int64_t v)
{
    time_t t = (time_t) v, back = 0, want = t;
    char out[HTTP_DATE_LEN];

    http_date_format(t, out);
    check_shape(out);
    if (v < DATE_MIN)
        want = (time_t) DATE_MIN;
    else if (v > DATE_MAX)
        want = (time_t) DATE_MAX;
    FUZZ_ASSERT(http_date_parse(out, &back) == 0 && back == want,
                "%lld formats as '%s', which parses as %lld", (long long) v, out, (long long) back);
}

/* An accepted date must be the instant it spells: formatting that instant gives back the same
 * day, month, year and time (no "31 Feb" silently becoming 3 March). */
static void check_exact(const char *s, time_t t)
{
    char want[64], want2[64];
    struct tm tm;
    const char *comma = strchr(s, ',');

    if (strstr(s, ":60 ")) /* a leap second is the next second */
        return;
    FUZZ_ASSERT(gmtime_r(&t, &tm) != NULL, "'%s' gave %lld", s, (long long) t);
    if (comma && comma - s == 3) {
        snprintf(want, sizeof(want), " %02d %s %04d %02d:%02d:%02d GMT", tm.tm_mday % 100,
                 months[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000, tm.tm_hour % 100,
                 tm.tm_min % 100, tm.tm_sec % 100);
        FUZZ_ASSERT(strcmp(comma + 1, want) == 0, "'%s' parsed as '%s'", s, want);
    } else if (comma) {
        FUZZ_ASSERT(tm.tm_year >= 70 && tm.tm_year < 170, "'%s': two-digit year gave %d", s,
                    tm.tm_year + 1900);
        snprintf(want, sizeof(want), " %02d-%s-%02d %02d:%02d:%02d GMT", tm.tm_mday % 100,
                 months[tm.tm_mon % 12], tm.tm_year % 100, tm.tm_hour % 100, tm.tm_min % 100,
                 tm.tm_sec % 100);
        FUZZ_ASSERT(strcmp(comma + 1, want) == 0, "'%s' parsed as '%s'", s, want);
    } else {
        /* asctime: the day is "SP 1DIGIT" or 2DIGIT */
        snprintf(want, sizeof(want), "%s %2d %02d:%02d:%02d %04d", months[tm.tm_mon % 12],
                 tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100,
                 (tm.tm_year + 1900) % 10000);
        snprintf(want2, sizeof(want2), "%s %02d %02d:%02d:%02d %04d", months[tm.tm_mon % 12],
                 tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100,
                 (tm.tm_year + 1900) % 10000);
        FUZZ_ASSERT(strlen(s) >= 4 && (strcmp(s + 4, want) == 0 || strcmp(s + 4, want2) == 0),
                    "'%s' parsed as '%s'", s, want);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s, out[HTTP_DATE_LEN];
    time_t t = 0, back = 0;
    int64_t v = 0;

    if (size >= 8) {
        for (int i = 0; i < 8; i++)
            v |= (int64_t) ((uint64_t) data[i] << (8 * i));
        check_format(v);
        check_format(v % (DATE_MAX + 1)); /* mostly inside the four-digit years */
    }

    s = fuzz_strndup(data, size, DATE_INPUT_MAX);
    if (http_date_parse(s, &t) == 0) {
        check_exact(s, t);
        /* 9999-12-31T23:59:60 is the one accepted instant past what the format can spell */
        FUZZ_ASSERT(t >= DATE_MIN && t <= DATE_MAX + 1, "'%s' -> %lld", s, (long long) t);
        if (t > DATE_MAX)
            goto out;
        http_date_format(t, out);
        FUZZ_ASSERT(http_date_parse(out, &back) == 0 && back == t, "'%s' -> %lld -> '%s' -> %lld",
                    s, (long long) t, out, (long long) back);
    }
out:
    free(s);
    return 0;
}
