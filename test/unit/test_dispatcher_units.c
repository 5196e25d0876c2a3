/* test/unit/test_dispatcher_units.c — dispatcher parts that need no server: placement order
 * (rendezvous, modes), the upload spool (memory, then file; concurrent reads), the body cache
 * (MD5 check, LRU budget) and the error-status table. */
#include "body_cache.h"
#include "check.h"
#include "cluster_pick.h"
#include "digest.h"
#include "hash.h"
#include "respond.h"
#include "spool.h"
#include "topology.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct topo_storage storages[] = {
    {1, 10, "a1", "http://a1", SMODE_RW}, {2, 10, "a2", "http://a2", SMODE_RW},
    {3, 10, "a3", "http://a3", SMODE_RW}, {4, 10, "a4", "http://a4", SMODE_SPARE},
    {5, 20, "b1", "http://b1", SMODE_RW}, {6, 20, "b2", "http://b2", SMODE_DOWN},
    {7, 20, "b3", "http://b3", SMODE_RW}, {8, 30, "c1", "http://c1", SMODE_RW},
    {9, 30, "c2", "http://c2", SMODE_RW}, {10, 30, "c3", "http://c3", SMODE_RW},
};
static struct topo_cluster clusters[] = {
    {10, "a", CMODE_RW, 0, 4},
    {20, "b", CMODE_RO, 4, 3},
    {30, "c", CMODE_RW, 7, 3},
};
static struct topo snap = {clusters, 3, storages, 10, 1, 1};

static void test_placement(void)
{
    const struct topo_cluster *order[8];
    const struct topo_storage *st[8];
    bool spare[8];
    int first_a = 0, first_c = 0;
    size_t n;

    for (int i = 0; i < 2000; i++) {
        char key[32];

        snprintf(key, sizeof(key), "b/obj%d", i);
        n = cluster_pick_write(&snap, key, strlen(key), order, 8);
        if (n != 2 || order[0]->effective != CMODE_RW || order[1]->effective != CMODE_RW) {
            CHECK(0, "only rw clusters, both of them: got %zu", n);
            return;
        }
        /* descending score: the first has the higher rendezvous score */
        if (hash_rendezvous(key, strlen(key), order[0]->id) <
            hash_rendezvous(key, strlen(key), order[1]->id)) {
            CHECK(0, "order follows the rendezvous scores for %s", key);
            return;
        }
        first_a += order[0]->id == 10;
        first_c += order[0]->id == 30;
    }
    CHECK(first_a > 800 && first_c > 800, "both rw clusters come first for many keys (%d/%d)",
          first_a, first_c);
    n = cluster_pick_write(&snap, "b/x", 3, order, 1);
    CHECK(n == 1, "max is respected");
    n = cluster_write_targets(&snap, &clusters[0], st, spare, 8);
    CHECK(n == 4 && !spare[0] && !spare[1] && !spare[2] && spare[3] && st[3]->id == 4,
          "write targets: rw members first, then the spare");
    n = cluster_pick_read(&snap, &clusters[1], "0123456789abcdef0123456789abcdef", st, 8);
    CHECK(n == 2 && st[0]->id != 6 && st[1]->id != 6, "reads skip a down storage");
    n = cluster_pick_read(&snap, &clusters[0], "0123456789abcdef0123456789abcdef", st, 8);
    CHECK(n == 3, "reads skip the spare");
    CHECK(hash_rendezvous("0123456789abcdef0123456789abcdef", 32, st[0]->id) >=
              hash_rendezvous("0123456789abcdef0123456789abcdef", 32, st[1]->id),
          "read order is by descending score");
    CHECK(topo_cluster_find(&snap, 30) == &clusters[2] && !topo_cluster_find(&snap, 25),
          "cluster lookup by id");
}

static void test_spool(void)
{
    struct spool *sp;
    char buf[300000], back[300000];
    ssize_t n;
    uint64_t got = 0;

    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char) (i * 7 + i / 1000);
    setenv("TMPDIR", "/tmp", 1);
    /* unknown size: memory first, then a file holding everything */
    sp = spool_new(SPOOL_UNKNOWN);
    CHECK(sp != NULL, "spool");
    CHECK(spool_write(sp, buf, 1000) == 0, "small write");
    n = spool_read(sp, 0, back, sizeof(back));
    CHECK(n == 1000 && memcmp(back, buf, 1000) == 0, "read back from memory");
    CHECK(spool_read(sp, 1000, back, 10) == 0, "nothing beyond what was written");
    CHECK(spool_write(sp, buf + 1000, sizeof(buf) - 1000) == 0, "large write spills to a file");
    while (got < sizeof(buf)) {
        n = spool_read(sp, got, back + got, 7777);
        if (n <= 0)
            break;
        got += (uint64_t) n;
    }
    CHECK(got == sizeof(buf) && memcmp(back, buf, sizeof(buf)) == 0,
          "every byte reads back across the memory/file boundary");
    CHECK(!spool_complete(sp) && spool_size(sp) == sizeof(buf), "size, not complete");
    spool_finish(sp);
    CHECK(spool_complete(sp), "complete");
    spool_free(sp);
    /* known small size: memory only; known large: file only */
    sp = spool_new(10);
    CHECK(spool_write(sp, "0123456789", 10) == 0 && spool_read(sp, 3, back, 100) == 7 &&
              memcmp(back, "3456789", 7) == 0,
          "exact-size memory spool");
    spool_free(sp);
    sp = spool_new(sizeof(buf));
    CHECK(spool_write(sp, buf, sizeof(buf)) == 0 && spool_read(sp, 299990, back, 100) == 10 &&
              memcmp(back, buf + 299990, 10) == 0,
          "file spool");
    spool_free(sp);
}

static void md5_hex(const char *data, size_t len, char out[33])
{
    struct md5_ctx *c = md5_new();
    uint8_t d[16];

    md5_update(c, data, len);
    md5_final(c, d);
    md5_free(c);
    hex_encode(d, 16, out);
}

static void test_body_cache(void)
{
    struct body_cache *bc = body_cache_new(16 * 64 * 1024); /* 64 KiB per stripe */
    const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    char hex[33], name[33], *got, big[40000];
    int kept = 0;

    md5_hex("hello world", 11, hex);
    CHECK(!body_cache_put(bc, a, "00000000000000000000000000000000", "hello world", 11),
          "a body that does not match its MD5 is refused");
    CHECK(body_cache_get(bc, a, 11, 0, 11) == NULL, "and not cached");
    CHECK(body_cache_put(bc, a, hex, "hello world", 11), "a good body is taken");
    got = body_cache_get(bc, a, 11, 6, 5);
    CHECK(got && memcmp(got, "world", 5) == 0, "a range of it comes back");
    free(got);
    CHECK(body_cache_get(bc, a, 12, 0, 1) == NULL, "a size mismatch is a miss");
    CHECK(body_cache_get(bc, a, 11, 10, 5) == NULL, "a range beyond the end is a miss");
    /* the budget: 40 KB bodies, 64 KiB per stripe, so most early ones get evicted */
    memset(big, 'x', sizeof(big));
    md5_hex(big, sizeof(big), hex);
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "%032x", i);
        body_cache_put(bc, name, hex, big, sizeof(big));
    }
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "%032x", i);
        got = body_cache_get(bc, name, sizeof(big), 0, 1);
        kept += got != NULL;
        free(got);
    }
    CHECK(kept > 0 && kept <= 16, "the byte budget holds (%d kept)", kept);
    body_cache_free(bc);
}

int main(void)
{
    test_placement();
    test_spool();
    test_body_cache();
    CHECK(status_of_errno(-ENOENT) == 404 && status_of_errno(-EINVAL) == 400 &&
              status_of_errno(-E2BIG) == 413 && status_of_errno(-EIO) == 503 &&
              status_of_errno(-ENOMEM) == 500,
          "errno to status table");
    return check_done();
}
