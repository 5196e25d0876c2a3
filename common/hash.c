/* common/hash.c — MurmurHash3 through libmurmurhash, and rendezvous scores. */
#include "hash.h"

#include <inttypes.h>
#include <murmurhash.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t hash_murmur64(const void *data, size_t len)
{
    uint64_t out[2] = {0, 0};
    const unsigned char *p = data;

    /* libmurmurhash takes a 32-bit length: chain the halves of larger inputs. */
    while (len > UINT32_MAX) {
        lmmh_x64_128(p, UINT32_MAX, (uint32_t) out[0], out);
        p += UINT32_MAX;
        len -= UINT32_MAX;
    }
    lmmh_x64_128(p, (unsigned) len, (uint32_t) out[0], out);
    return out[0];
}

uint64_t hash_rendezvous(const char *key, size_t key_len, int64_t id)
{
    char small[512];
    char *tmp = small;
    uint64_t h;
    int n;

    if (key_len + 24 > sizeof(small)) {
        tmp = malloc(key_len + 24);
        if (!tmp)
            abort(); /* bounded by the caller's name limits; out of memory is fatal */
    }
    memcpy(tmp, key, key_len);
    n = snprintf(tmp + key_len, 24, "%" PRId64, id);
    h = hash_murmur64(tmp, key_len + (size_t) n);
    if (tmp != small)
        free(tmp);
    return h;
}
