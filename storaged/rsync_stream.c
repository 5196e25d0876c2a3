/* storaged/rsync_stream.c — drives librsync jobs (signature, delta, loadsig, patch) with
 * rs_job_iter over fixed buffers, so that whole files never sit in memory. */
#include "rsync_stream.h"

#include "digest.h"
#include "log.h"

#include <errno.h>
#include <librsync.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rsx_sig {
    rs_signature_t *sums;
};

struct rsx_reader {
    rs_job_t *job;
    struct rsx_sig *sig; /* delta readers: the signature the job points into */
    int fd;
    bool eof, done;
    size_t in_off, in_len;
    uint64_t in_bytes;
    char in[RSX_BUF_SIZE];
};

struct rsx_loader {
    rs_job_t *job;
    rs_signature_t *sums;
    size_t max, fed;
    bool failed;
};

struct rsx_patcher {
    rs_job_t *job;
    struct md5_ctx *md5;
    int basis_fd, out_fd;
    uint64_t max_out, out_bytes;
    bool done;
    char out[RSX_BUF_SIZE];
};

static pthread_once_t rsx_once = PTHREAD_ONCE_INIT;

static void rsx_trace(rs_loglevel level, const char *msg)
{
    (void) level;
    log_debug("event=librsync msg=\"%.200s\"", msg);
}

static void rsx_init_once(void)
{
    rs_trace_set_level(RS_LOG_ERR);
    rs_trace_to(rsx_trace);
}

void rsx_init(void)
{
    pthread_once(&rsx_once, rsx_init_once);
}

/* --- pull: signature and delta readers ------------------------------------------------- */

static int rsx_reader_alloc(int fd, struct rsx_reader **ret)
{
    struct rsx_reader *r;

    rsx_init();
    r = malloc(sizeof(*r));
    if (!r)
        return -ENOMEM;
    memset(r, 0, offsetof(struct rsx_reader, in));
    r->fd = fd;
    *ret = r;
    return 0;
}

int rsx_sig_reader_new(int fd, uint64_t size, struct rsx_reader **ret)
{
    rs_magic_number magic = 0;
    size_t block_len = 0, strong_len = (size_t) -1; /* shortest safe strong sums */
    struct rsx_reader *r = NULL;
    int err;

    if (rs_sig_args(size > INT64_MAX ? -1 : (rs_long_t) size, &magic, &block_len, &strong_len) !=
        RS_DONE)
        return -EINVAL;
    err = rsx_reader_alloc(fd, &r);
    if (err < 0)
        return err;
    r->job = rs_sig_begin(block_len, strong_len, magic);
    if (!r->job) {
        free(r);
        return -EINVAL;
    }
    *ret = r;
    return 0;
}

int rsx_delta_reader_new(int fd, struct rsx_sig *sig, struct rsx_reader **ret)
{
    struct rsx_reader *r = NULL;
    int err;

    err = rsx_reader_alloc(fd, &r);
    if (err < 0) {
        rsx_sig_free(sig);
        return err;
    }
    r->sig = sig;
    r->job = rs_delta_begin(sig ? sig->sums : NULL);
    if (!r->job) {
        rsx_reader_free(r);
        return -ENOMEM;
    }
    *ret = r;
    return 0;
}

/* Refills the input buffer when it is empty. Returns 0 or -errno. */
static int rsx_reader_fill(struct rsx_reader *r)
{
    ssize_t n;

    if (r->in_len > 0 || r->eof)
        return 0;
    do {
        n = read(r->fd, r->in, sizeof(r->in));
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    r->in_off = 0;
    r->in_len = (size_t) n;
    r->in_bytes += (uint64_t) n;
    r->eof = n == 0;
    return 0;
}

ssize_t rsx_read(struct rsx_reader *r, void *out, size_t max)
{
    rs_buffers_t b;
    int err;

    if (r->done || max == 0)
        return 0;
    memset(&b, 0, sizeof(b));
    b.next_out = out;
    b.avail_out = max;
    for (;;) {
        size_t before_out = b.avail_out, consumed;
        rs_result res;

        err = rsx_reader_fill(r);
        if (err < 0)
            return err;
        b.next_in = r->in + r->in_off;
        b.avail_in = r->in_len;
        b.eof_in = r->eof;
        res = rs_job_iter(r->job, &b);
        consumed = r->in_len - b.avail_in;
        r->in_off += consumed;
        r->in_len = b.avail_in;
        if (res == RS_DONE) {
            r->done = true;
            break;
        }
        if (res != RS_BLOCKED) {
            log_debug("event=rsx_read_failed op=%s error=\"%s\"", r->sig ? "delta" : "sig",
                      rs_strerror(res));
            return -EPROTO;
        }
        if (b.avail_out == 0)
            break;
        /* Neither input taken nor output made although both were possible: a stuck job. */
        if (consumed == 0 && b.avail_out == before_out && (r->in_len > 0 || r->eof))
            return -EPROTO;
    }
    return (ssize_t) (max - b.avail_out);
}

uint64_t rsx_reader_in_bytes(const struct rsx_reader *r)
{
    return r->in_bytes;
}

void rsx_reader_free(struct rsx_reader *r)
{
    if (!r)
        return;
    if (r->job)
        rs_job_free(r->job); /* before the signature it points into */
    rsx_sig_free(r->sig);
    free(r);
}

/* --- push: signature loader ------------------------------------------------------------ */

int rsx_loader_new(size_t max_bytes, struct rsx_loader **ret)
{
    struct rsx_loader *l;

    rsx_init();
    l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->max = max_bytes > RSX_SIG_MAX ? RSX_SIG_MAX : max_bytes;
    l->job = rs_loadsig_begin(&l->sums);
    if (!l->job) {
        free(l);
        return -ENOMEM;
    }
    *ret = l;
    return 0;
}

static int rsx_loader_run(struct rsx_loader *l, const void *data, size_t len, bool eof)
{
    char dummy[1];
    rs_buffers_t b;

    if (l->failed)
        return -EPROTO;
    memset(&b, 0, sizeof(b));
    b.next_in = (char *) data;
    b.avail_in = len;
    b.eof_in = eof;
    b.next_out = dummy;
    b.avail_out = 0;
    for (int rounds = 0;; rounds++) {
        size_t before = b.avail_in;
        rs_result res = rs_job_iter(l->job, &b);

        if (res == RS_DONE)
            return b.avail_in == 0 ? 1 : -EPROTO;
        if (res != RS_BLOCKED) {
            l->failed = true;
            return -EPROTO;
        }
        if (b.avail_in == 0 && !eof)
            return 0;
        if (b.avail_in == before && rounds > 0) {
            l->failed = true; /* at EOF without a complete signature, or stuck */
            return -EPROTO;
        }
    }
}

int rsx_loader_feed(struct rsx_loader *l, const void *data, size_t len)
{
    int r;

    if (len > l->max - l->fed)
        return -E2BIG;
    l->fed += len;
    if (len == 0)
        return 0;
    r = rsx_loader_run(l, data, len, false);
    return r < 0 ? r : 0;
}

int rsx_loader_finish(struct rsx_loader *l, struct rsx_sig **ret)
{
    struct rsx_sig *sig;
    int r;

    if (l->fed == 0) {
        *ret = NULL;
        return 0;
    }
    r = rsx_loader_run(l, NULL, 0, true);
    if (r < 0)
        return r;
    if (r == 0 || !l->sums)
        return -EPROTO;
    rs_job_free(l->job);
    l->job = NULL;
    sig = malloc(sizeof(*sig));
    if (!sig)
        return -ENOMEM;
    if (rs_build_hash_table(l->sums) != RS_DONE) {
        free(sig);
        return -ENOMEM;
    }
    sig->sums = l->sums;
    l->sums = NULL;
    *ret = sig;
    return 0;
}

void rsx_loader_free(struct rsx_loader *l)
{
    if (!l)
        return;
    if (l->job)
        rs_job_free(l->job);
    if (l->sums)
        rs_free_sumset(l->sums);
    free(l);
}

void rsx_sig_free(struct rsx_sig *sig)
{
    if (!sig)
        return;
    rs_free_sumset(sig->sums);
    free(sig);
}

/* --- push: patcher --------------------------------------------------------------------- */

/* librsync asks for basis bytes [pos, pos + *len); it may get fewer (then asks again). */
static rs_result rsx_copy_cb(void *arg, rs_long_t pos, size_t *len, void **buf)
{
    struct rsx_patcher *p = arg;
    ssize_t n;

    if (p->basis_fd < 0 || pos < 0)
        return RS_CORRUPT;
    do {
        n = pread(p->basis_fd, *buf, *len, (off_t) pos);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return RS_IO_ERROR;
    if (n == 0)
        return RS_CORRUPT; /* the delta copies from beyond the end of the basis */
    *len = (size_t) n;
    return RS_DONE;
}

int rsx_patcher_new(int basis_fd, int out_fd, uint64_t max_out, struct rsx_patcher **ret)
{
    struct rsx_patcher *p;

    rsx_init();
    p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    memset(p, 0, offsetof(struct rsx_patcher, out));
    p->basis_fd = basis_fd;
    p->out_fd = out_fd;
    p->max_out = max_out;
    p->md5 = md5_new();
    p->job = rs_patch_begin(rsx_copy_cb, p);
    if (!p->md5 || !p->job) {
        rsx_patcher_free(p);
        return -ENOMEM;
    }
    *ret = p;
    return 0;
}

static int rsx_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        data += n;
        len -= (size_t) n;
    }
    return 0;
}

static int rsx_patcher_run(struct rsx_patcher *p, const void *data, size_t len, bool eof)
{
    rs_buffers_t b;
    int err;

    if (p->done)
        return len > 0 ? -EPROTO : 0; /* bytes after the end of the delta */
    memset(&b, 0, sizeof(b));
    b.next_in = (char *) data;
    b.avail_in = len;
    b.eof_in = eof;
    for (;;) {
        size_t before_in = b.avail_in, produced;
        rs_result res;

        b.next_out = p->out;
        b.avail_out = sizeof(p->out);
        res = rs_job_iter(p->job, &b);
        produced = sizeof(p->out) - b.avail_out;
        if (produced > 0) {
            if (produced > p->max_out - p->out_bytes)
                return -EFBIG;
            err = rsx_write_all(p->out_fd, p->out, produced);
            if (err < 0)
                return err;
            md5_update(p->md5, p->out, produced);
            p->out_bytes += produced;
        }
        if (res == RS_DONE) {
            p->done = true;
            return b.avail_in == 0 ? 0 : -EPROTO;
        }
        if (res == RS_IO_ERROR)
            return -EIO;
        if (res != RS_BLOCKED)
            return -EPROTO;
        if (produced == sizeof(p->out))
            continue; /* maybe more output pending */
        if (b.avail_in == 0 && !eof)
            return 0; /* wants more input */
        if (b.avail_in == before_in && produced == 0)
            return -EPROTO; /* truncated at EOF, or stuck */
    }
}

int rsx_patcher_feed(struct rsx_patcher *p, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    return rsx_patcher_run(p, data, len, false);
}

int rsx_patcher_finish(struct rsx_patcher *p, uint8_t ret_md5[16], uint64_t *ret_size)
{
    int r = rsx_patcher_run(p, NULL, 0, true);

    if (r < 0)
        return r;
    if (!p->done)
        return -EPROTO;
    md5_final(p->md5, ret_md5);
    *ret_size = p->out_bytes;
    return 0;
}

void rsx_patcher_stats(const struct rsx_patcher *p, uint64_t *ret_literal, uint64_t *ret_copied)
{
    const rs_stats_t *st = rs_job_statistics(p->job);

    *ret_literal = st->lit_bytes > 0 ? (uint64_t) st->lit_bytes : 0;
    *ret_copied = st->copy_bytes > 0 ? (uint64_t) st->copy_bytes : 0;
}

void rsx_patcher_free(struct rsx_patcher *p)
{
    if (!p)
        return;
    if (p->job)
        rs_job_free(p->job);
    md5_free(p->md5);
    free(p);
}
