/* test/fuzz/fuzz_range.c — the Range header (common/range.c): results within the
 * representation, and agreement with a reference reading of RFC 9110 §14.1.2. */
#include "fuzz.h"

#include "range.h"

#include <stdbool.h>
#include <strings.h>

#define RANGE_HEADER_MAX 512

static void skip_ws(const char **s)
{
    while (**s == ' ' || **s == '\t')
        (*s)++;
}

/* Reads up to 19 decimal digits; sets *ret_digits to how many there were (20 = too many). */
static uint64_t ref_num(const char **s, int *ret_digits)
{
    uint64_t v = 0;
    int n = 0;

    while (**s >= '0' && **s <= '9' && n < 20) {
        if (n < 19)
            v = v * 10 + (uint64_t) (**s - '0');
        n++;
        (*s)++;
    }
    *ret_digits = n;
    return v;
}

static enum range_result ref_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
    uint64_t first, last;
    int nf, nl;

    skip_ws(&h);
    if (strncasecmp(h, "bytes", 5) != 0)
        return RANGE_NONE;
    h += 5;
    skip_ws(&h);
    if (*h++ != '=')
        return RANGE_NONE;
    skip_ws(&h);
    first = ref_num(&h, &nf);
    if (nf > 19 || *h++ != '-')
        return RANGE_NONE;
    last = ref_num(&h, &nl);
    if (nl > 19)
        return RANGE_NONE;
    skip_ws(&h);
    if (*h != '\0' || (nf == 0 && nl == 0))
        return RANGE_NONE;
    if (nf == 0) { /* suffix-range: the last `last` bytes */
        if (last == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *len = last < size ? last : size;
        *off = size - *len;
        return RANGE_OK;
    }
    if (nl > 0 && last < first)
        return RANGE_NONE;
    if (first >= size)
        return RANGE_UNSATISFIABLE;
    if (nl == 0 || last > size - 1)
        last = size - 1;
    *off = first;
    *len = last - first + 1;
    return RANGE_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t rep = 0, off = 0, len = 0, roff = 0, rlen = 0;
    enum range_result r, ref;
    char *h;

    if (size < 9)
        return 0;
    for (int i = 0; i < 8; i++)
        rep |= (uint64_t) data[1 + i] << (8 * i);
    switch (data[0] & 3) { /* representation sizes: tiny, 16-bit, any, near UINT64_MAX */
    case 0:
        rep &= 0xff;
        break;
    case 1:
        rep &= 0xffff;
        break;
    case 3:
        rep = UINT64_MAX - (rep & 0xff);
        break;
    }
    h = fuzz_strndup(data + 9, size - 9, RANGE_HEADER_MAX);

    r = range_parse(h, rep, &off, &len);
    FUZZ_ASSERT(r == RANGE_NONE || r == RANGE_OK || r == RANGE_UNSATISFIABLE, "result %d", r);
    if (r == RANGE_OK) {
        FUZZ_ASSERT(len >= 1 && off < rep && len <= rep - off,
                    "size %llu: off %llu len %llu outside", (unsigned long long) rep,
                    (unsigned long long) off, (unsigned long long) len);
    }
    ref = ref_range(h, rep, &roff, &rlen);
    FUZZ_ASSERT(r == ref, "'%s' size %llu: impl %d reference %d", h, (unsigned long long) rep, r,
                ref);
    if (r == RANGE_OK) {
        FUZZ_ASSERT(off == roff && len == rlen,
                    "'%s' size %llu: impl %llu+%llu reference %llu+%llu", h,
                    (unsigned long long) rep, (unsigned long long) off, (unsigned long long) len,
                    (unsigned long long) roff, (unsigned long long) rlen);
    }
    FUZZ_ASSERT(range_parse(NULL, rep, &off, &len) == RANGE_NONE, "NULL header");
    free(h);
    return 0;
}
