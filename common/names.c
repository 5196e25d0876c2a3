/* common/names.c — validation of bucket and object names (SPEC §5) and generation of
 * internal names (128 random bits as hex). */
#include "names.h"

#include "digest.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

const char *names_bucket_invalid(const char *s, size_t len)
{
    if (len == 0)
        return "bucket name is empty";
    if (len > NAMES_BUCKET_MAX)
        return "bucket name is longer than 63 bytes";
    if (s[0] == '_')
        return "bucket names starting with '_' are reserved";
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return "bucket name may not be '.' or '..'";
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return "bucket name may only hold a-z 0-9 . _ -";
    }
    return NULL;
}

/* Length of the UTF-8 sequence at s (at most len bytes), or 0 when it is invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq_len(const unsigned char *s, size_t len, uint32_t *ret_cp)
{
    uint32_t cp;
    size_t n;

    if (s[0] < 0x80) {
        *ret_cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *ret_cp = cp;
    return n;
}

bool names_text_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n = utf8_seq_len(p + i, len - i, &cp);

        if (n == 0)
            return false;
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
            return false;
        i += n;
    }
    return true;
}

const char *names_object_invalid(const char *s, size_t len)
{
    size_t seg = 0;

    if (len == 0)
        return "object name is empty";
    if (len > NAMES_OBJECT_MAX)
        return "object name is longer than 1024 bytes";
    if (memchr(s, '\0', len))
        return "object name holds a NUL byte";
    if (!names_text_valid(s, len))
        return "object name is not valid UTF-8 or holds control characters";
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            size_t n = i - seg;

            if ((n == 1 && s[seg] == '.') || (n == 2 && s[seg] == '.' && s[seg + 1] == '.'))
                return "object name may not hold '.' or '..' segments";
            seg = i + 1;
        }
    }
    return NULL;
}

int names_internal_new(char out[NAMES_INTERNAL_LEN + 1])
{
    uint8_t raw[NAMES_INTERNAL_LEN / 2];
    size_t got = 0;

    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t) n;
    }
    hex_encode(raw, sizeof(raw), out);
    return 0;
}

bool names_internal_valid(const char *s)
{
    size_t i;

    for (i = 0; s[i]; i++) {
        if (i >= NAMES_INTERNAL_LEN ||
            !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return i == NAMES_INTERNAL_LEN;
}
