/* test/unit/test_names.c — bucket, object and internal name rules of SPEC §5. */
#include "check.h"
#include "names.h"

#include <string.h>

static int bucket_ok(const char *s)
{
    return names_bucket_invalid(s, strlen(s)) == NULL;
}

static int object_ok(const char *s)
{
    return names_object_invalid(s, strlen(s)) == NULL;
}

int main(void)
{
    char long_name[1100];
    char a[NAMES_INTERNAL_LEN + 1], b[NAMES_INTERNAL_LEN + 1];

    CHECK(bucket_ok("photos"), "plain bucket");
    CHECK(bucket_ok("a.b_c-9"), "all allowed characters");
    CHECK(!bucket_ok(""), "empty bucket");
    CHECK(!bucket_ok("Photos"), "upper case refused");
    CHECK(!bucket_ok("a/b"), "slash refused");
    CHECK(!bucket_ok("."), "dot refused");
    CHECK(!bucket_ok(".."), "dotdot refused");
    CHECK(!bucket_ok("_health"), "reserved prefix refused");
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    CHECK(!bucket_ok(long_name), "64 bytes refused");
    long_name[63] = '\0';
    CHECK(bucket_ok(long_name), "63 bytes accepted");

    CHECK(object_ok("path/to/photo.jpg"), "path");
    CHECK(object_ok("\xc3\xa9t\xc3\xa9/\xe2\x82\xac.txt"), "utf-8");
    CHECK(object_ok("a..b/.c/d."), "dots inside segments");
    CHECK(object_ok("a//b"), "empty segment");
    CHECK(!object_ok(""), "empty object");
    CHECK(!object_ok("a/../b"), "dotdot segment");
    CHECK(!object_ok("./b"), "dot segment");
    CHECK(!object_ok("a/.."), "trailing dotdot");
    CHECK(!object_ok("a\x01"
                     "b"),
          "control char");
    CHECK(!object_ok("a\x7f"), "DEL");
    CHECK(!object_ok("a\xc2\x85"), "C1 control");
    CHECK(!object_ok("\xff"), "invalid utf-8");
    CHECK(!object_ok("\xc0\xaf"), "overlong utf-8");
    CHECK(!object_ok("\xed\xa0\x80"), "surrogate");
    CHECK(names_object_invalid("a\0b", 3) != NULL, "NUL refused");
    memset(long_name, 'x', 1025);
    CHECK(names_object_invalid(long_name, 1025) != NULL, "1025 bytes refused");
    CHECK(names_object_invalid(long_name, 1024) == NULL, "1024 bytes accepted");

    CHECK(names_text_valid("", 0), "empty prefix is valid text");
    CHECK(names_internal_new(a) == 0 && names_internal_new(b) == 0, "internal names");
    CHECK(strlen(a) == 32 && names_internal_valid(a), "internal name is 32 hex: %s", a);
    CHECK(strcmp(a, b) != 0, "internal names differ");
    CHECK(!names_internal_valid("ABCDEF0123456789abcdef0123456789"), "upper hex refused");
    CHECK(!names_internal_valid("abc"), "short refused");
    return check_done();
}
