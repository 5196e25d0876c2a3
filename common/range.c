/* common/range.c — parsing of single byte ranges ("bytes=a-b", "a-", "-n") against a size,
 * with overflow-safe arithmetic on client-controlled numbers. */
#include "range.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Reads a decimal number of at most 19 digits (fits int64). Returns false when there is none. */
static bool range_num(const char **s, uint64_t *ret)
{
    uint64_t v = 0;
    int n = 0;

    while (**s >= '0' && **s <= '9') {
        if (++n > 19)
            return false;
        v = v * 10 + (uint64_t) (**s - '0');
        (*s)++;
    }
    *ret = v;
    return n > 0;
}

static void skip_ws(const char **s)
{
    while (**s == ' ' || **s == '\t')
        (*s)++;
}

enum range_result range_parse(const char *header, uint64_t size, uint64_t *ret_off,
                              uint64_t *ret_len)
{
    const char *s = header;
    uint64_t first = 0, last = 0;
    bool has_first, has_last;

    if (!s)
        return RANGE_NONE;
    skip_ws(&s);
    if (strncasecmp(s, "bytes", 5) != 0)
        return RANGE_NONE;
    s += 5;
    skip_ws(&s);
    if (*s++ != '=')
        return RANGE_NONE;
    skip_ws(&s);
    has_first = range_num(&s, &first);
    if (*s++ != '-')
        return RANGE_NONE;
    has_last = range_num(&s, &last);
    skip_ws(&s);
    if (*s != '\0') /* several ranges or trailing junk: ignore the header */
        return RANGE_NONE;
    if (!has_first && !has_last)
        return RANGE_NONE;
    if (has_first && has_last && last < first)
        return RANGE_NONE; /* invalid spec: RFC 9110 says ignore */
    if (!has_first) {      /* suffix: the last `last` bytes */
        if (last == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        if (last > size)
            last = size;
        *ret_off = size - last;
        *ret_len = last;
        return RANGE_OK;
    }
    if (first >= size)
        return RANGE_UNSATISFIABLE;
    if (!has_last || last >= size)
        last = size - 1;
    *ret_off = first;
    *ret_len = last - first + 1;
    return RANGE_OK;
}
