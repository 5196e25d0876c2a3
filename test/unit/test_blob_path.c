/* test/unit/test_blob_path.c — internal name validation and the ROOT/aa/bb/<name> mapping:
 * accepted and refused names, the fan-out against the hash, and the on-disk path check. */
#include "blob_path.h"
#include "buf.h"
#include "check.h"
#include "hash.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned hex2(const char *s)
{
    unsigned v = 0;

    for (int i = 0; i < 2; i++)
        v = v * 16 + (unsigned) (s[i] <= '9' ? s[i] - '0' : s[i] - 'a' + 10);
    return v & 0xff;
}

static int rel_of(const char *name, char out[BLOB_REL_MAX])
{
    return blob_rel_path(name, strlen(name), out);
}

int main(void)
{
    static const char *const good[] = {
        "0123456789abcdef0123456789abcdef", "a", "A-b_c.d", "x..y", "get4096-0000", "z."};
    static const char *const bad[] = {
        "",     ".",    "..",   ".hidden",           "a/b", "a\\b", "a b",
        "a%2e", "a\tb", "a\nb", "\xc3\xa9t\xc3\xa9", "a:b", "~"};
    char long_name[BLOB_NAME_MAX + 2];
    char rel[BLOB_REL_MAX], fan[BLOB_FANOUT_LEN], want[16];
    const char *name = "0123456789abcdef0123456789abcdef";
    const char *fox = "The quick brown fox jumps over the lazy dog";
    struct buf b;
    uint64_t h;
    int spread[256] = {0}, used = 0;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK(blob_name_valid(good[i], strlen(good[i])), "valid name '%s'", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(blob_name_invalid(bad[i], strlen(bad[i])) != NULL, "invalid name #%zu", i);
    CHECK(!blob_name_valid("ab\0cd", 5), "embedded NUL refused");

    memset(long_name, 'a', sizeof(long_name));
    CHECK(blob_name_valid(long_name, BLOB_NAME_MAX), "128 characters accepted");
    CHECK(!blob_name_valid(long_name, BLOB_NAME_MAX + 1), "129 characters refused");
    CHECK(blob_rel_path(long_name, BLOB_NAME_MAX, rel) == 0 &&
              strlen(rel) == BLOB_FANOUT_LEN + BLOB_NAME_MAX,
          "longest name fits the relative path buffer");

    /* The fan-out is the hash's most significant byte, then the next, in lower-case hex. */
    h = hash_murmur64(name, strlen(name));
    snprintf(want, sizeof(want), "%02x/%02x/", (unsigned) (h >> 56) & 0xff,
             (unsigned) (h >> 48) & 0xff);
    CHECK(rel_of(name, rel) == 0, "relative path of a hex name");
    CHECK(strncmp(rel, want, 6) == 0 && strcmp(rel + 6, name) == 0, "rel '%s' = '%s<name>'", rel,
          want);
    blob_fanout(name, strlen(name), fan);
    CHECK(strncmp(fan, want, 5) == 0 && fan[5] == '\0', "fanout '%s'", fan);
    /* Reference value: MurmurHash3_x64_128(fox, seed 0), first half = e34bbc7bbc071b6c. */
    blob_fanout(fox, strlen(fox), fan);
    CHECK_STR(fan, "e3/4b", "fanout of the fox sentence");

    CHECK(rel_of("..", rel) == -EINVAL, "'..' refused by rel path");
    CHECK(rel_of("a/../b", rel) == -EINVAL, "'a/../b' refused by rel path");
    CHECK(rel_of("", rel) == -EINVAL, "empty refused by rel path");

    buf_init(&b, 4096);
    CHECK(blob_path("/srv/disk1", "hello", 5, &b) == 0, "blob_path");
    CHECK_STR(b.ptr, "/srv/disk1/cb/d8/hello", "full path");
    buf_reset(&b);
    CHECK(blob_path("/srv/disk1//", "hello", 5, &b) == 0, "blob_path, trailing slashes");
    CHECK_STR(b.ptr, "/srv/disk1/cb/d8/hello", "trailing slashes of the root are not doubled");
    buf_reset(&b);
    CHECK(blob_path("/", "hello", 5, &b) == 0, "blob_path under /");
    CHECK_STR(b.ptr, "/cb/d8/hello", "root '/'");
    buf_reset(&b);
    CHECK(blob_path("/srv/disk1", "../etc", 6, &b) == -EINVAL && b.len == 0,
          "blob_path refuses an escaping name and writes nothing");
    buf_release(&b);
    buf_init(&b, 8);
    CHECK(blob_path("/srv/disk1", "hello", 5, &b) == -E2BIG, "blob_path honours the buf max");
    buf_release(&b);

    CHECK(blob_rel_path_valid("cb/d8/hello", 11), "on-disk path with the right fan-out");
    CHECK(!blob_rel_path_valid("cb/d9/hello", 11), "wrong fan-out refused");
    CHECK(!blob_rel_path_valid("cb/d8/", 6), "no name refused");
    CHECK(!blob_rel_path_valid("cb/d8/.hello", 12), "hidden name refused");
    CHECK(!blob_rel_path_valid("cbd8/hello", 10), "bad shape refused");
    CHECK(!blob_rel_path_valid("cb/d8/he/lo", 11), "extra slash refused");
    CHECK(rel_of(name, rel) == 0 && blob_rel_path_valid(rel, strlen(rel)), "round trip");

    /* The fan-out spreads: 4096 names touch most of the 256 first-level directories. */
    for (int i = 0; i < 4096; i++) {
        char n[32];

        snprintf(n, sizeof(n), "obj%d", i);
        blob_fanout(n, strlen(n), fan);
        spread[hex2(fan)]++;
    }
    for (int i = 0; i < 256; i++)
        used += spread[i] > 0;
    CHECK(used > 240, "first-level fan-out spreads over %d of 256 directories", used);
    return check_done();
}
