/* test/unit/test_range.c — Range header parsing and HTTP dates. */
#include "check.h"
#include "http_date.h"
#include "range.h"

#include <stdint.h>

int main(void)
{
    uint64_t off = 0, len = 0;
    char d[HTTP_DATE_LEN];
    time_t t = 0;

    CHECK(range_parse(NULL, 100, &off, &len) == RANGE_NONE, "no header");
    CHECK(range_parse("bytes=0-9", 100, &off, &len) == RANGE_OK && off == 0 && len == 10, "0-9");
    CHECK(range_parse("bytes=90-", 100, &off, &len) == RANGE_OK && off == 90 && len == 10,
          "open end");
    CHECK(range_parse("bytes=-10", 100, &off, &len) == RANGE_OK && off == 90 && len == 10,
          "suffix");
    CHECK(range_parse("bytes=-1000", 100, &off, &len) == RANGE_OK && off == 0 && len == 100,
          "suffix larger than size");
    CHECK(range_parse("bytes=50-5000", 100, &off, &len) == RANGE_OK && off == 50 && len == 50,
          "end clamped");
    CHECK(range_parse("bytes=100-", 100, &off, &len) == RANGE_UNSATISFIABLE, "start at size");
    CHECK(range_parse("bytes=-0", 100, &off, &len) == RANGE_UNSATISFIABLE, "empty suffix");
    CHECK(range_parse("bytes=0-0", 0, &off, &len) == RANGE_UNSATISFIABLE, "empty object");
    CHECK(range_parse("bytes=5-1", 100, &off, &len) == RANGE_NONE, "reversed ignored");
    CHECK(range_parse("bytes=0-1,5-6", 100, &off, &len) == RANGE_NONE, "multi ignored");
    CHECK(range_parse("items=0-1", 100, &off, &len) == RANGE_NONE, "other unit ignored");
    CHECK(range_parse("bytes=99999999999999999999-", 100, &off, &len) == RANGE_NONE,
          "overflow ignored");
    CHECK(range_parse("bytes=18446744073709551615-", 100, &off, &len) == RANGE_NONE,
          "20 digits ignored");

    http_date_format(784111777, d);
    CHECK_STR(d, "Sun, 06 Nov 1994 08:49:37 GMT", "format");
    CHECK(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &t) == 0 && t == 784111777,
          "IMF-fixdate");
    CHECK(http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", &t) == 0 && t == 784111777, "RFC 850");
    CHECK(http_date_parse("Sun Nov  6 08:49:37 1994", &t) == 0 && t == 784111777, "asctime");
    CHECK(http_date_parse("yesterday", &t) < 0, "junk refused");
    CHECK(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT x", &t) < 0, "trailing junk");
    return check_done();
}
