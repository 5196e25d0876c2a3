/* common/http_date.h — HTTP dates (RFC 9110 §5.6.7): IMF-fixdate output, and parsing of
 * IMF-fixdate, the obsolete RFC 850 form and asctime() form. */
#ifndef STF_HTTP_DATE_H
#define STF_HTTP_DATE_H

#include <stddef.h>
#include <time.h>

#define HTTP_DATE_LEN 30 /* "Sun, 06 Nov 1994 08:49:37 GMT" + NUL */

/* Formats t as "Sun, 06 Nov 1994 08:49:37 GMT" into out[HTTP_DATE_LEN]. */
void http_date_format(time_t t, char out[HTTP_DATE_LEN]);

/* Parses any of the three HTTP date forms. Returns 0 and sets *ret, or -EINVAL. */
int http_date_parse(const char *s, time_t *ret);

#endif
