/* test/unit/test_hash.c — MurmurHash3 against reference values, rendezvous stability. */
#include "check.h"
#include "digest.h"
#include "hash.h"

#include <murmurhash.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    const char *fox = "The quick brown fox jumps over the lazy dog";
    uint8_t md[16];
    char hex[33];
    struct md5_ctx *c;
    uint64_t a, b;
    int wins[3] = {0, 0, 0};

    /* Reference: Appleby's MurmurHash3.c, x64_128(fox, seed 0) = e34bbc7bbc071b6c ... */
    CHECK(hash_murmur64(fox, strlen(fox)) == 0xe34bbc7bbc071b6cULL, "murmur x64_128 reference");

    a = hash_rendezvous("b/o", 3, 1);
    b = hash_rendezvous("b/o", 3, 1);
    CHECK(a == b, "rendezvous is stable");
    CHECK(hash_rendezvous("b/o", 3, 1) != hash_rendezvous("b/o", 3, 2), "ids change the score");

    /* Spread: over many keys, each of three members wins a fair share. */
    for (int i = 0; i < 3000; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "bucket/key%d", i), best = 0;
        uint64_t top = 0;

        for (int id = 1; id <= 3; id++) {
            uint64_t s = hash_rendezvous(key, (size_t) n, id);
            if (s > top) {
                top = s;
                best = id - 1;
            }
        }
        wins[best]++;
    }
    CHECK(wins[0] > 800 && wins[1] > 800 && wins[2] > 800, "rendezvous spreads: %d %d %d",
          wins[0], wins[1], wins[2]);

    c = md5_new();
    md5_update(c, "hello", 5);
    md5_final(c, md);
    hex_encode(md, 16, hex);
    CHECK_STR(hex, "5d41402abc4b2a76b9719d911017c592", "md5 hello");
    CHECK(md5_from_base64("XUFAKrxLKna5cZ2REBfFkg==", md) == 0, "base64 md5 decodes");
    hex_encode(md, 16, hex);
    CHECK_STR(hex, "5d41402abc4b2a76b9719d911017c592", "base64 md5 value");
    CHECK(md5_from_base64("not-base64", md) == -EINVAL, "bad base64 md5 refused");
    md5_free(c);
    return check_done();
}
