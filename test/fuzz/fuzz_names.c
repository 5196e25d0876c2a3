/* test/fuzz/fuzz_names.c — bucket, object, text and internal name validation (common/names.c)
 * against independent reference checks written from SPEC §5 and the Unicode tables. */
#include "fuzz.h"

#include "blob_path.h"
#include "names.h"

#include <stdbool.h>

/* Well-formed UTF-8 byte sequences (Unicode 15, table 3-7). Returns the sequence length at
 * s (at most n bytes), or 0 when ill-formed. */
static size_t ref_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char b = s[0], lo = 0x80, hi = 0xbf;
    size_t len;

    if (b <= 0x7f)
        return 1;
    if (b >= 0xc2 && b <= 0xdf)
        len = 2;
    else if (b >= 0xe0 && b <= 0xef)
        len = 3;
    else if (b >= 0xf0 && b <= 0xf4)
        len = 4;
    else
        return 0;
    if (b == 0xe0)
        lo = 0xa0;
    else if (b == 0xed)
        hi = 0x9f;
    else if (b == 0xf0)
        lo = 0x90;
    else if (b == 0xf4)
        hi = 0x8f;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return len;
}

/* Valid UTF-8 without C0, DEL or C1 (U+0080..U+009F is C2 80..C2 9F). */
static bool ref_text_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *) str;

    for (size_t i = 0; i < n;) {
        size_t len = ref_utf8_len(s + i, n - i);

        if (len == 0 || s[i] < 0x20 || s[i] == 0x7f || (s[i] == 0xc2 && s[i + 1] <= 0x9f))
            return false;
        i += len;
    }
    return true;
}

static bool ref_bucket_valid(const char *s, size_t n)
{
    if (n < 1 || n > 63 || s[0] == '_' || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789._-", s[i]) || s[i] == '\0')
            return false;
    }
    return true;
}

static bool ref_object_valid(const char *s, size_t n)
{
    return n >= 1 && n <= 1024 && ref_text_valid(s, n) && !fuzz_has_dot_segment(s, n);
}

static bool ref_internal_valid(const char *s)
{
    size_t n = strlen(s);

    if (n != 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!strchr("0123456789abcdef", s[i]))
            return false;
    }
    return true;
}

/* A reason is a short single line. */
static void check_reason(const char *why)
{
    FUZZ_ASSERT(why[0] != '\0' && strchr(why, '\n') == NULL && strlen(why) < 120, "'%s'", why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *) data, *why;
    char *cs;
    bool ok;

    /* the functions take (pointer, length): hand them the raw bytes, embedded NULs included */
    why = names_bucket_invalid(s, size);
    ok = ref_bucket_valid(s, size);
    FUZZ_ASSERT((why == NULL) == ok, "bucket len %zu: impl %s, reference %s", size,
                why ? why : "valid", ok ? "valid" : "invalid");
    if (why)
        check_reason(why);

    why = names_object_invalid(s, size);
    ok = ref_object_valid(s, size);
    FUZZ_ASSERT((why == NULL) == ok, "object len %zu: impl %s, reference %s", size,
                why ? why : "valid", ok ? "valid" : "invalid");
    if (why) {
        check_reason(why);
    } else {
        /* what the SPEC forbids, checked on the bytes without any UTF-8 decoding */
        FUZZ_ASSERT(memchr(s, '\0', size) == NULL && !fuzz_has_ctl(s, size), "control byte");
        FUZZ_ASSERT(!fuzz_has_dot_segment(s, size), "dot segment");
        FUZZ_ASSERT(size <= NAMES_OBJECT_MAX, "too long");
    }

    ok = names_text_valid(s, size);
    FUZZ_ASSERT(ok == ref_text_valid(s, size), "text len %zu: impl %d", size, ok);

    cs = fuzz_strndup(data, size, 256);
    ok = names_internal_valid(cs);
    FUZZ_ASSERT(ok == ref_internal_valid(cs), "internal '%s': impl %d", cs, ok);
    /* the dispatcher's internal names are what storaged stores: always valid blob names */
    if (ok)
        FUZZ_ASSERT(blob_name_valid(cs, strlen(cs)), "internal name '%s' is no blob name", cs);
    free(cs);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char fresh[NAMES_INTERNAL_LEN + 1];

    (void) argc;
    (void) argv;
    FUZZ_ASSERT(names_internal_new(fresh) == 0, "getrandom");
    FUZZ_ASSERT(ref_internal_valid(fresh) && names_internal_valid(fresh), "'%s'", fresh);
    return 0;
}
