/* common/http_date.c — formatting and parsing of HTTP dates (IMF-fixdate, RFC 850, asctime),
 * always in GMT and independent of the process locale and time zone. */
#include "http_date.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* The instants a four-digit year can spell: 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define HTTP_DATE_MIN (-62167219200LL)
#define HTTP_DATE_MAX 253402300799LL

void http_date_format(time_t t, char out[HTTP_DATE_LEN])
{
    struct tm tm;

    /* clamped: gmtime_r fails (leaving tm unset) where the year does not fit an int */
    if ((long long) t < HTTP_DATE_MIN)
        t = (time_t) HTTP_DATE_MIN;
    else if ((long long) t > HTTP_DATE_MAX)
        t = (time_t) HTTP_DATE_MAX;
    gmtime_r(&t, &tm);
    snprintf(out, HTTP_DATE_LEN, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday % 7],
             tm.tm_mday % 100, months[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000,
             tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100);
}

static int days_in_month(int mon, int year)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return mon == 1 && leap ? 29 : days[mon];
}

static int month_parse(const char *s)
{
    for (int i = 0; i < 12; i++) {
        if (strncmp(s, months[i], 3) == 0)
            return i;
    }
    return -1;
}

/* Reads exactly n digits. */
static int digits(const char **s, int n, int *ret)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*s)[i];

        if (c < '0' || c > '9')
            return -EINVAL;
        v = v * 10 + (c - '0');
    }
    *s += n;
    *ret = v;
    return 0;
}

static int expect(const char **s, const char *lit)
{
    size_t n = strlen(lit);

    if (strncmp(*s, lit, n) != 0)
        return -EINVAL;
    *s += n;
    return 0;
}

/* "08:49:37" */
static int parse_time(const char **s, struct tm *tm)
{
    if (digits(s, 2, &tm->tm_hour) < 0 || expect(s, ":") < 0 || digits(s, 2, &tm->tm_min) < 0 ||
        expect(s, ":") < 0 || digits(s, 2, &tm->tm_sec) < 0)
        return -EINVAL;
    if (tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60)
        return -EINVAL;
    return 0;
}

static int parse_month(const char **s, struct tm *tm)
{
    int m = month_parse(*s);

    if (m < 0)
        return -EINVAL;
    tm->tm_mon = m;
    *s += 3;
    return 0;
}

int http_date_parse(const char *s, time_t *ret)
{
    const char *comma = strchr(s, ',');
    struct tm tm;
    time_t t;
    int r;

    memset(&tm, 0, sizeof(tm));
    if (comma && comma - s == 3) { /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        s = comma + 1;
        r = expect(&s, " ");
        r = r ?: digits(&s, 2, &tm.tm_mday);
        r = r ?: expect(&s, " ");
        r = r ?: parse_month(&s, &tm);
        r = r ?: expect(&s, " ");
        r = r ?: digits(&s, 4, &tm.tm_year);
        r = r ?: expect(&s, " ");
        r = r ?: parse_time(&s, &tm);
        r = r ?: expect(&s, " GMT");
        tm.tm_year -= 1900;
    } else if (comma) { /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        s = comma + 1;
        r = expect(&s, " ");
        r = r ?: digits(&s, 2, &tm.tm_mday);
        r = r ?: expect(&s, "-");
        r = r ?: parse_month(&s, &tm);
        r = r ?: expect(&s, "-");
        r = r ?: digits(&s, 2, &tm.tm_year);
        r = r ?: expect(&s, " ");
        r = r ?: parse_time(&s, &tm);
        r = r ?: expect(&s, " GMT");
        if (tm.tm_year < 70) /* RFC 9110: a two-digit year more than 50 years ahead is past */
            tm.tm_year += 100;
    } else { /* asctime: Sun Nov  6 08:49:37 1994 */
        r = strlen(s) >= 4 ? 0 : -EINVAL;
        if (r == 0)
            s += 4;
        r = r ?: parse_month(&s, &tm);
        r = r ?: expect(&s, " ");
        if (r == 0 && *s == ' ') {
            s++;
            r = digits(&s, 1, &tm.tm_mday);
        } else {
            r = r ?: digits(&s, 2, &tm.tm_mday);
        }
        r = r ?: expect(&s, " ");
        r = r ?: parse_time(&s, &tm);
        r = r ?: expect(&s, " ");
        r = r ?: digits(&s, 4, &tm.tm_year);
        tm.tm_year -= 1900;
    }
    /* a day the month does not have ("31 Feb") is refused, not moved into the next month */
    if (r < 0 || *s != '\0' || tm.tm_mday < 1 ||
        tm.tm_mday > days_in_month(tm.tm_mon, tm.tm_year + 1900))
        return -EINVAL;
    errno = 0;
    t = timegm(&tm); /* -1 is also 1969-12-31T23:59:59Z */
    if (t == (time_t) -1 && errno != 0)
        return -EINVAL;
    *ret = t;
    return 0;
}
