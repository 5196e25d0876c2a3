/* test/unit/test_rsync_stream.c — storaged's librsync streaming: signature -> delta -> patch
 * round trips through small, odd-sized pieces, the no-basis path, and refused inputs; and the
 * decoder of the batched pack stream (any piece sizes, missing blobs, malformed streams). */
#include "check.h"
#include "digest.h"
#include "rsync_pack.h"
#include "rsync_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint8_t rnd8(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t) rng;
}

/* An anonymous file holding data. */
static int mem_file(const void *data, size_t len)
{
    char path[] = "/tmp/rsx-test-XXXXXX";
    int fd = mkstemp(path);

    if (fd < 0)
        return -1;
    unlink(path);
    if (len > 0 && write(fd, data, len) != (ssize_t) len) {
        close(fd);
        return -1;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

struct bytes {
    uint8_t *p;
    size_t n;
};

/* Drains a reader in pieces of at most `piece` bytes. Returns 0 or the reader's error. */
static int drain(struct rsx_reader *r, size_t piece, struct bytes *out)
{
    uint8_t *tmp = malloc(piece);
    int err = 0;

    out->p = NULL;
    out->n = 0;
    for (;;) {
        ssize_t n = rsx_read(r, tmp, piece);

        if (n < 0) {
            err = (int) n;
            break;
        }
        if (n == 0)
            break;
        out->p = realloc(out->p, out->n + (size_t) n);
        memcpy(out->p + out->n, tmp, (size_t) n);
        out->n += (size_t) n;
    }
    free(tmp);
    return err;
}

/* Feeds data in pieces of 1, 7, 4096, 65521 ... bytes in turn. */
static const size_t pieces[] = {1, 7, 4096, 65521, 3, 200000};

static int feed_loader(struct rsx_loader *l, const struct bytes *b)
{
    size_t off = 0;

    for (unsigned i = 0; off < b->n; i++) {
        size_t k = pieces[i % 6] < b->n - off ? pieces[i % 6] : b->n - off;
        int r = rsx_loader_feed(l, b->p + off, k);

        if (r < 0)
            return r;
        off += k;
    }
    return 0;
}

static int feed_patcher(struct rsx_patcher *p, const struct bytes *b)
{
    size_t off = 0;

    for (unsigned i = 0; off < b->n; i++) {
        size_t k = pieces[i % 6] < b->n - off ? pieces[i % 6] : b->n - off;
        int r = rsx_patcher_feed(p, b->p + off, k);

        if (r < 0)
            return r;
        off += k;
    }
    return 0;
}

static int read_back(int fd, struct bytes *out)
{
    off_t end = lseek(fd, 0, SEEK_END);

    out->n = (size_t) end;
    out->p = malloc(out->n + 1);
    return pread(fd, out->p, out->n, 0) == (ssize_t) out->n ? 0 : -EIO;
}

struct trip {
    int sig_err, loader_err, delta_err, patch_err;
    uint64_t delta_bytes, lit, copied, size;
    bool equal, md5_ok;
};

/* basis -> signature -> delta of target -> patch basis -> compare with target. basis NULL: no
 * basis at all (empty signature body, no basis fd). */
static void round_trip(const uint8_t *basis, size_t blen, const uint8_t *target, size_t tlen,
                       size_t piece, struct trip *t)
{
    int bfd = basis ? mem_file(basis, blen) : -1, tfd = mem_file(target, tlen);
    int ofd = mem_file(NULL, 0);
    struct rsx_reader *sr = NULL, *dr = NULL;
    struct rsx_loader *ld = NULL;
    struct rsx_patcher *pt = NULL;
    struct rsx_sig *sig = NULL;
    struct bytes sigb = {0}, delta = {0}, out = {0};
    uint8_t md5[16], want[16];
    struct md5_ctx *c = md5_new();

    memset(t, 0, sizeof(*t));
    if (basis) {
        t->sig_err = rsx_sig_reader_new(bfd, blen, &sr);
        if (!t->sig_err)
            t->sig_err = drain(sr, piece, &sigb);
        lseek(bfd, 0, SEEK_SET);
    }
    rsx_loader_new(RSX_SIG_MAX, &ld);
    t->loader_err = feed_loader(ld, &sigb);
    if (!t->loader_err)
        t->loader_err = rsx_loader_finish(ld, &sig);
    if (t->loader_err)
        goto out;
    t->delta_err = rsx_delta_reader_new(tfd, sig, &dr);
    if (!t->delta_err)
        t->delta_err = drain(dr, piece, &delta);
    if (t->delta_err)
        goto out;
    t->delta_bytes = delta.n;
    rsx_patcher_new(bfd, ofd, tlen, &pt);
    t->patch_err = feed_patcher(pt, &delta);
    if (!t->patch_err)
        t->patch_err = rsx_patcher_finish(pt, md5, &t->size);
    if (t->patch_err)
        goto out;
    rsx_patcher_stats(pt, &t->lit, &t->copied);
    read_back(ofd, &out);
    t->equal = out.n == tlen && memcmp(out.p, target, tlen) == 0;
    md5_update(c, target, tlen);
    md5_final(c, want);
    t->md5_ok = memcmp(md5, want, 16) == 0;
out:
    md5_free(c);
    rsx_reader_free(sr);
    rsx_reader_free(dr);
    rsx_loader_free(ld);
    rsx_patcher_free(pt);
    free(sigb.p);
    free(delta.p);
    free(out.p);
    if (bfd >= 0)
        close(bfd);
    close(tfd);
    close(ofd);
}

/* --- the pack stream decoder ------------------------------------------------------------- */

struct pack_seen {
    char log[512]; /* "begin NAME SIZE SEC;data N;end MD5;missing NAME;" */
    size_t data;
};

static void seen_add(struct pack_seen *s, const char *what, const char *a, unsigned long long b)
{
    size_t n = strlen(s->log);

    snprintf(s->log + n, sizeof(s->log) - n, "%s %s %llu;", what, a, b);
}

static int seen_begin(void *arg, const char *name, uint64_t size, const struct timespec *mtime)
{
    struct pack_seen *s = arg;

    seen_add(s, "begin", name, (unsigned long long) size);
    return mtime->tv_sec == 1700000000 && mtime->tv_nsec == 5 ? 0 : -EINVAL;
}

static int seen_data(void *arg, const void *data, size_t len)
{
    struct pack_seen *s = arg;

    (void) data;
    s->data += len;
    return 0;
}

static int seen_end(void *arg, const char *md5hex)
{
    struct pack_seen *s = arg;

    seen_add(s, "end", md5hex[0] ? md5hex : "-", (unsigned long long) s->data);
    s->data = 0;
    return 0;
}

static int seen_missing(void *arg, const char *name)
{
    seen_add(arg, "missing", name, 0);
    return 0;
}

static const struct pack_cbs seen_cbs = {seen_begin, seen_data, seen_end, seen_missing};

/* Feeds text in pieces of `piece` bytes. Returns the first error, 0, and whether it ended. */
static int pack_run(const char *text, size_t len, size_t piece, struct pack_seen *s, bool *ended)
{
    struct pack_decoder d;
    int r = 0;

    memset(s, 0, sizeof(*s));
    pack_decoder_init(&d, &seen_cbs, s);
    for (size_t off = 0; off < len && r == 0; off += piece)
        r = pack_decoder_feed(&d, text + off, len - off < piece ? len - off : piece);
    *ended = pack_decoder_ended(&d);
    return r;
}

static void test_pack_decoder(void)
{
    static const char ok[] =
        "+ aaa 5 1700000000.000000005\nhello. 5d41402abc4b2a76b9719d911017c592\n"
        "- bbb\n+ ccc 0 1700000000.000000005\n. -\n# end files=2\n";
    static const char *const bad[] = {
        "+ aaa 5 1700000000.000000005\nhello# end files=1\n",       /* no trailer */
        "+ ../x 1 1700000000.000000005\nx. -\n# end files=1\n",     /* bad name */
        "+ aaa 5 1700000000.000000005\nhello. zz\n# end files=1\n", /* bad MD5 */
        "? what\n",                                                 /* unknown line */
        "# end files=0\nmore",                                      /* bytes after the end */
    };
    struct pack_seen s;
    bool ended;
    int r;

    for (size_t piece = 1; piece <= sizeof(ok); piece = piece * 3 + 1) {
        r = pack_run(ok, sizeof(ok) - 1, piece, &s, &ended);
        CHECK(r == 0 && ended, "pack stream in %zu-byte pieces: decoded (%d)", piece, r);
        CHECK_STR(s.log,
                  "begin aaa 5;end 5d41402abc4b2a76b9719d911017c592 5;missing bbb 0;"
                  "begin ccc 0;end - 0;",
                  "pack stream: the callbacks");
    }
    r = pack_run(ok, sizeof(ok) - 1 - 14, 7, &s, &ended);
    CHECK(r == 0 && !ended, "a pack stream without its end line is not ended");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = pack_run(bad[i], strlen(bad[i]), 4, &s, &ended);
        CHECK(r == -EPROTO, "malformed pack stream %zu refused (%d)", i, r);
    }
}

int main(void)
{
    size_t n = 300 * 1000, big = 5 * 1000 * 1000;
    uint8_t *a = malloc(big), *b = malloc(big + 4096);
    struct trip t;

    for (size_t i = 0; i < big; i++)
        a[i] = rnd8();

    /* a small edit in the middle: a changed run, an insertion, a deletion */
    memcpy(b, a, n);
    for (size_t i = 1000; i < 1100; i++)
        b[i] ^= 0x5a;
    memmove(b + 150000 + 33, b + 150000, n - 150000);
    memset(b + 150000, 'x', 33);
    memmove(b + 250000, b + 250500, n + 33 - 250500);
    round_trip(a, n, b, n + 33 - 500, 1000, &t);
    CHECK(t.sig_err == 0 && t.loader_err == 0 && t.delta_err == 0 && t.patch_err == 0,
          "edited file: no errors (%d %d %d %d)", t.sig_err, t.loader_err, t.delta_err,
          t.patch_err);
    CHECK(t.equal && t.md5_ok, "edited file: the patch rebuilds the target exactly");
    CHECK(t.size == n + 33 - 500, "edited file: the patcher reports the size");
    CHECK(t.delta_bytes < n / 10, "edited file: delta %llu bytes for a %zu-byte file",
          (unsigned long long) t.delta_bytes, n);
    CHECK(t.copied > n * 9 / 10 && t.lit < n / 10, "edited file: %llu copied, %llu literal",
          (unsigned long long) t.copied, (unsigned long long) t.lit);

    round_trip(a, n, a, n, 65536, &t);
    CHECK(t.patch_err == 0 && t.equal && t.lit == 0, "identical file: nothing literal (%llu)",
          (unsigned long long) t.lit);

    round_trip(NULL, 0, a, n, 4096, &t);
    CHECK(t.loader_err == 0 && t.patch_err == 0 && t.equal && t.md5_ok,
          "no basis: the delta carries the whole file");
    CHECK(t.lit == n && t.copied == 0 && t.delta_bytes >= n && t.delta_bytes < n + n / 100,
          "no basis: all literal (%llu of %zu, delta %llu)", (unsigned long long) t.lit, n,
          (unsigned long long) t.delta_bytes);

    round_trip(NULL, 0, a, 0, 4096, &t);
    CHECK(t.patch_err == 0 && t.equal && t.size == 0, "an empty file round-trips");

    round_trip(a, 0, a, n, 777, &t);
    CHECK(t.patch_err == 0 && t.equal, "an empty basis with a signature round-trips");

    memcpy(b, a, big);
    for (size_t i = 0; i < big; i += 100000)
        b[i] ^= 1;
    round_trip(a, big, b, big, 128 * 1024, &t);
    CHECK(t.patch_err == 0 && t.equal && t.md5_ok && t.lit < big / 20,
          "5 MB with 50 flipped bytes: exact, %llu literal bytes", (unsigned long long) t.lit);

    /* refusals */
    {
        struct rsx_loader *ld = NULL;
        struct rsx_sig *sig = NULL;
        int r;

        rsx_loader_new(RSX_SIG_MAX, &ld);
        r = rsx_loader_feed(ld, "garbage!", 8);
        if (r == 0)
            r = rsx_loader_finish(ld, &sig);
        CHECK(r == -EPROTO && !sig, "a malformed signature is refused (%d)", r);
        rsx_loader_free(ld);

        rsx_loader_new(16, &ld);
        r = rsx_loader_feed(ld, a, 17);
        CHECK(r == -E2BIG, "a signature beyond the bound is refused (%d)", r);
        rsx_loader_free(ld);
    }
    {
        int tfd = mem_file(a, n), ofd = mem_file(NULL, 0);
        struct rsx_reader *dr = NULL;
        struct rsx_patcher *pt = NULL;
        struct bytes delta;
        uint8_t md5[16];
        uint64_t size;
        int r;

        rsx_delta_reader_new(tfd, NULL, &dr);
        drain(dr, 4096, &delta);
        rsx_patcher_new(-1, ofd, n, &pt);
        r = rsx_patcher_feed(pt, delta.p, delta.n / 2);
        if (r == 0)
            r = rsx_patcher_finish(pt, md5, &size);
        CHECK(r == -EPROTO, "a truncated delta is refused at the end (%d)", r);
        rsx_patcher_free(pt);

        rsx_patcher_new(-1, ofd, n - 1, &pt);
        r = rsx_patcher_feed(pt, delta.p, delta.n);
        if (r == 0)
            r = rsx_patcher_finish(pt, md5, &size);
        CHECK(r == -EFBIG, "a result beyond max_out is refused (%d)", r);
        rsx_patcher_free(pt);

        rsx_patcher_new(-1, ofd, n, &pt);
        r = rsx_patcher_feed(pt, delta.p, delta.n);
        if (r == 0)
            r = rsx_patcher_feed(pt, "x", 1);
        CHECK(r == -EPROTO, "bytes after the end of a delta are refused (%d)", r);
        rsx_patcher_free(pt);
        free(delta.p);
        rsx_reader_free(dr);
        close(tfd);
        close(ofd);
    }
    {
        /* a delta that copies from a basis, applied without one */
        int bfd = mem_file(a, n), tfd = mem_file(a, n), ofd = mem_file(NULL, 0);
        struct rsx_reader *sr = NULL, *dr = NULL;
        struct rsx_loader *ld = NULL;
        struct rsx_patcher *pt = NULL;
        struct rsx_sig *sig = NULL;
        struct bytes sigb, delta;
        uint8_t md5[16];
        uint64_t size;
        int r;

        rsx_sig_reader_new(bfd, n, &sr);
        drain(sr, 9999, &sigb);
        rsx_loader_new(RSX_SIG_MAX, &ld);
        feed_loader(ld, &sigb);
        rsx_loader_finish(ld, &sig);
        rsx_delta_reader_new(tfd, sig, &dr);
        drain(dr, 9999, &delta);
        rsx_patcher_new(-1, ofd, n, &pt);
        r = rsx_patcher_feed(pt, delta.p, delta.n);
        if (r == 0)
            r = rsx_patcher_finish(pt, md5, &size);
        CHECK(r < 0, "copying from a missing basis fails (%d)", r);
        rsx_patcher_free(pt);
        rsx_reader_free(sr);
        rsx_reader_free(dr);
        rsx_loader_free(ld);
        free(sigb.p);
        free(delta.p);
        close(bfd);
        close(tfd);
        close(ofd);
    }
    free(a);
    free(b);
    test_pack_decoder();
    return check_done();
}
