/* repaird/transfer.c — throttled, hashed object transfers on top of common/http_client: sinks
 * and sources that charge the token bucket per chunk and tick the job's lease. */
#include "transfer.h"

#include "digest.h"
#include "http_client.h"
#include "throttle.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XFER_BASE_TIMEOUT_MS 60000ull
#define XFER_UNTHROTTLED_RATE (8ull << 20) /* bytes/s assumed for timeouts without a limit */
#define XFER_MIN_RATE 4096ull
#define XFER_HEAD_TIMEOUT_MS 10000u
#define XFER_CHUNK_MAX (256u << 10)

struct xfer_io {
    const struct xfer_opts *o;
    struct md5_ctx *md5;
    int fd;
    uint64_t bytes, max;
};

/* Generous whole-request timeout: what the throttle's share allows, twice, plus a minute. */
static unsigned xfer_timeout_ms(const struct xfer_opts *o, uint64_t size)
{
    uint64_t rate = throttle_rate(o->throttle), ms;

    if (rate == 0)
        rate = XFER_UNTHROTTLED_RATE;
    else
        rate /= o->sharers ? o->sharers : 1;
    if (rate < XFER_MIN_RATE)
        rate = XFER_MIN_RATE;
    ms = size / rate * 2000 + XFER_BASE_TIMEOUT_MS;
    return ms > UINT_MAX ? UINT_MAX : (unsigned) ms;
}

static int xfer_charge(struct xfer_io *io, size_t n)
{
    int r = throttle_take(io->o->throttle, n);

    if (r == 0 && io->o->tick)
        r = io->o->tick(io->o->tick_arg);
    return r;
}

static void xfer_result_from(struct xfer_result *res, const struct http_req *req)
{
    const char *e = req->info.etag;
    size_t n = strlen(e);

    res->status = req->info.status;
    res->err = req->err;
    res->content_length = req->info.content_length;
    if (n >= 2 && e[0] == '"' && e[n - 1] == '"') {
        e++;
        n -= 2;
    }
    if (n >= sizeof(res->etag))
        n = sizeof(res->etag) - 1;
    memcpy(res->etag, e, n);
    res->etag[n] = '\0';
    if (req->err)
        snprintf(res->errmsg, sizeof(res->errmsg), "%s", req->errmsg);
    else if (!http_status_ok(req->info.status))
        snprintf(res->errmsg, sizeof(res->errmsg), "HTTP %ld %.120s", req->info.status,
                 req->err_body);
}

int xfer_head(const struct xfer_opts *o, const char *url, struct xfer_result *res)
{
    struct http_req req = {.method = HTTP_HEAD, .url = url, .timeout_ms = XFER_HEAD_TIMEOUT_MS};
    int r;

    (void) o;
    memset(res, 0, sizeof(*res));
    r = http_perform(&req);
    xfer_result_from(res, &req);
    return r;
}

static int xfer_sink(void *arg, const void *data, size_t len)
{
    struct xfer_io *io = arg;
    const char *p = data;
    size_t left = len;
    int r;

    if (len > io->max - io->bytes)
        return -EFBIG;
    r = xfer_charge(io, len);
    if (r < 0)
        return r;
    md5_update(io->md5, data, len);
    while (io->fd >= 0 && left > 0) {
        ssize_t w = write(io->fd, p, left);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        left -= (size_t) w;
    }
    io->bytes += len;
    return 0;
}

int xfer_fetch(const struct xfer_opts *o, const char *url, uint64_t max_bytes, int fd,
               struct xfer_result *res)
{
    struct xfer_io io = {.o = o, .fd = fd, .max = max_bytes};
    struct http_req req = {.method = HTTP_GET, .url = url};
    uint8_t digest[16];
    int r;

    memset(res, 0, sizeof(*res));
    io.md5 = md5_new();
    if (!io.md5) {
        res->err = -ENOMEM;
        return -ENOMEM;
    }
    if (fd >= 0 && (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)) {
        r = -errno;
        res->err = r;
        snprintf(res->errmsg, sizeof(res->errmsg), "spool file: %s", strerror(-r));
        goto out;
    }
    req.timeout_ms = xfer_timeout_ms(o, max_bytes);
    req.resp.kind = HTTP_SINK_CB;
    req.resp.fn = xfer_sink;
    req.resp.arg = &io;
    r = http_perform(&req);
    xfer_result_from(res, &req);
    res->bytes = io.bytes;
    md5_final(io.md5, digest);
    hex_encode(digest, sizeof(digest), res->md5);
out:
    md5_free(io.md5);
    return r;
}

static ssize_t xfer_source(void *arg, void *data, size_t len)
{
    struct xfer_io *io = arg;
    ssize_t n;
    int r;

    if (io->bytes >= io->max)
        return 0;
    if (len > XFER_CHUNK_MAX)
        len = XFER_CHUNK_MAX;
    if (len > io->max - io->bytes)
        len = (size_t) (io->max - io->bytes);
    r = xfer_charge(io, len);
    if (r < 0)
        return r;
    do {
        n = pread(io->fd, data, len, (off_t) io->bytes);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EIO; /* the spool file is shorter than it was */
    io->bytes += (uint64_t) n;
    return n;
}

int xfer_store(const struct xfer_opts *o, const char *url, int fd, uint64_t size,
               const char *md5hex, struct xfer_result *res)
{
    struct xfer_io io = {.o = o, .fd = fd, .max = size};
    struct http_req req = {.method = HTTP_PUT, .url = url};
    unsigned char digest[16], b64[32];
    int r;

    memset(res, 0, sizeof(*res));
    for (int i = 0; i < 16; i++) {
        unsigned v;

        if (sscanf(md5hex + 2 * i, "%2x", &v) != 1) {
            res->err = -EINVAL;
            return -EINVAL;
        }
        digest[i] = (unsigned char) v;
    }
    EVP_EncodeBlock(b64, digest, 16);
    req.timeout_ms = xfer_timeout_ms(o, size);
    req.content_md5 = (const char *) b64;
    req.body.kind = HTTP_BODY_CB;
    req.body.len = (int64_t) size;
    req.body.fn = xfer_source;
    req.body.arg = &io;
    r = http_perform(&req);
    xfer_result_from(res, &req);
    res->bytes = io.bytes;
    return r;
}

int xfer_spool_open(void)
{
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX];
    int fd;

    if (!dir || !*dir)
        dir = "/var/tmp";
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return -errno;
    /* a file system without O_TMPFILE: a named file, unlinked at once */
    if (snprintf(path, sizeof(path), "%s/repaird.XXXXXX", dir) >= (int) sizeof(path))
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}
