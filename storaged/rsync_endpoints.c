/* storaged/rsync_endpoints.c — the /_rsync/ endpoints of the whole-disk copy: a streamed, sorted
 * manifest of the blobs, the librsync signature, delta and verified patch of one blob, syncfs. */
#include "rsync_endpoints.h"

#include "blob_path.h"
#include "blob_store.h"
#include "digest.h"
#include "log.h"
#include "response.h"
#include "rsync_stream.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define RSYNC_BLOCK (128 * 1024)     /* MHD's buffer for a streamed response */
#define MANIFEST_LEAF_MAX (4u << 20) /* entries of one aa/bb directory listed at most */
#define MANIFEST_LINE_MAX (BLOB_REL_MAX + 64)
#define PATCH_BODY_SLACK (1u << 20) /* delta framing allowed beyond twice the file size */
#define PATCH_SIZE_MAX (1ull << 44) /* 16 TiB: larger X-STF-Expect-Size is refused */

static const char *header(struct sd_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* The blob name after the route prefix; NULL with a reason when it is not a valid name. */
static const char *rsync_name(struct sd_request *rq, const char *prefix, const char **reason)
{
    const char *name = rq->url + strlen(prefix);

    *reason = blob_name_invalid(name, strlen(name));
    if (*reason)
        return NULL;
    rq->name = name;
    rq->name_len = strlen(name);
    return name;
}

int rsync_parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
    uint64_t v = 0;
    int n = 0;

    for (; *s >= '0' && *s <= '9'; s++) {
        if (++n > 19)
            return -ERANGE;
        v = v * 10 + (uint64_t) (*s - '0');
    }
    if (n == 0 || *s != '\0' || v > max)
        return -EINVAL;
    *ret = v;
    return 0;
}

/* "SEC" or "SEC.NNNNNNNNN" (1..9 fraction digits). */
int rsync_parse_mtime(const char *s, struct timespec *ret)
{
    uint64_t sec = 0, frac = 0;
    const char *dot = strchr(s, '.');
    char whole[24];
    size_t n = dot ? (size_t) (dot - s) : strlen(s), fl;

    if (n == 0 || n >= sizeof(whole))
        return -EINVAL;
    memcpy(whole, s, n);
    whole[n] = '\0';
    if (rsync_parse_u64(whole, INT64_MAX, &sec) < 0)
        return -EINVAL;
    if (dot) {
        fl = strlen(dot + 1);
        if (fl == 0 || fl > 9 || rsync_parse_u64(dot + 1, 999999999, &frac) < 0)
            return -EINVAL;
        for (; fl < 9; fl++)
            frac *= 10;
    }
    ret->tv_sec = (time_t) sec;
    ret->tv_nsec = (long) frac;
    return 0;
}

int rsync_parse_md5_hex(const char *s, uint8_t out[16])
{
    if (strlen(s) != 32)
        return -EINVAL;
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;

        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];

            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned) (c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned) (c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                v |= (unsigned) (c - 'A' + 10);
            else
                return -EINVAL;
        }
        out[i] = (uint8_t) v;
    }
    return 0;
}

void rsync_format_mtime(const struct stat *st, char out[40])
{
    snprintf(out, 40, "%lld.%09ld", (long long) st->st_mtim.tv_sec, (long) st->st_mtim.tv_nsec);
}

/* --- GET /_rsync/manifest ---------------------------------------------------------------- */

struct name_list {
    char **v;
    size_t n, cap;
};

struct manifest {
    int root_fd;              /* borrowed from the store */
    char after[BLOB_REL_MAX]; /* "" = from the start */
    char aa[256][3], bb[256][3];
    unsigned naa, iaa, nbb, ibb;
    int aa_fd, leaf_fd;
    struct name_list leaf;
    size_t ileaf;
    char line[MANIFEST_LINE_MAX];
    size_t line_len, line_off;
    uint64_t files, bytes;
    bool ended, failed;
};

static void name_list_release(struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static int hex2_cmp(const void *a, const void *b)
{
    return strcmp((const char *) a, (const char *) b);
}

static bool is_hex2(const char *s)
{
    for (int i = 0; i < 2; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return s[2] == '\0';
}

/* Lists the two-hex-digit entries of dir_fd that are not before the first two characters of
 * `from` (NULL: all), sorted.
 * Consumes dir_fd. Returns the count or -errno. */
static int list_hex2(int dir_fd, const char *from, char out[256][3])
{
    DIR *d = fdopendir(dir_fd);
    struct dirent *de;
    int n = 0;

    if (!d) {
        close(dir_fd);
        return -errno;
    }
    while ((errno = 0, de = readdir(d))) {
        if (!is_hex2(de->d_name) || (from && strncmp(de->d_name, from, 2) < 0) || n >= 256)
            continue;
        memcpy(out[n++], de->d_name, 3);
    }
    if (errno) {
        int r = -errno;

        closedir(d);
        return r;
    }
    closedir(d);
    qsort(out, (size_t) n, sizeof(out[0]), hex2_cmp);
    return n;
}

/* Lists the blob names of the leaf aa/bb (dir_fd, not consumed) after `after_name` (NULL: all),
 * sorted. Returns 0 or -errno. */
static int list_leaf(int dir_fd, const char *aa, const char *bb, const char *after_name,
                     struct name_list *out)
{
    char rel[BLOB_REL_MAX + 8];
    struct dirent *de;
    DIR *d;
    int fd, r = 0;

    fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    while ((errno = 0, de = readdir(d))) {
        size_t len = strlen(de->d_name);

        if (de->d_name[0] == '.' || len > BLOB_NAME_MAX)
            continue;
        if (after_name && strcmp(de->d_name, after_name) <= 0)
            continue;
        snprintf(rel, sizeof(rel), "%s/%s/%.*s", aa, bb, (int) len, de->d_name);
        if (!blob_rel_path_valid(rel, strlen(rel)))
            continue;
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 256;
            char **v;

            if (cap > MANIFEST_LEAF_MAX) {
                r = -E2BIG;
                goto out;
            }
            v = realloc(out->v, cap * sizeof(*v));
            if (!v) {
                r = -ENOMEM;
                goto out;
            }
            out->v = v;
            out->cap = cap;
        }
        out->v[out->n] = strdup(de->d_name);
        if (!out->v[out->n]) {
            r = -ENOMEM;
            goto out;
        }
        out->n++;
    }
    if (errno)
        r = -errno;
out:
    closedir(d);
    if (r == 0 && out->n > 1) /* qsort(NULL, 0, ...) is undefined behaviour */
        qsort(out->v, out->n, sizeof(*out->v), name_cmp);
    return r;
}

/* Where `after` stands relative to a directory at this level: <0 the whole directory is before
 * it (skip), 0 it is inside (filter), >0 the directory is entirely after it. */
static int after_cmp(const struct manifest *m, const char *aa, const char *bb)
{
    int c;

    if (!m->after[0])
        return 1;
    c = strncmp(aa, m->after, 2);
    if (c != 0 || !bb)
        return c;
    return strncmp(bb, m->after + 3, 2);
}

/* Opens the next leaf directory. Returns 1 when one is open, 0 when none is left, -errno. */
static int manifest_next_leaf(struct manifest *m)
{
    int fd, r;

    for (;;) {
        if (m->aa_fd >= 0 && m->ibb < m->nbb) {
            const char *aa = m->aa[m->iaa - 1], *bb = m->bb[m->ibb++];
            int pos = after_cmp(m, aa, bb);

            fd = openat(m->aa_fd, bb, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
                    continue; /* removed meanwhile, or not a directory */
                return -errno;
            }
            r = list_leaf(fd, aa, bb, pos == 0 ? m->after + BLOB_FANOUT_LEN : NULL, &m->leaf);
            if (r < 0) {
                close(fd);
                return r;
            }
            m->leaf_fd = fd;
            m->ileaf = 0;
            return 1;
        }
        if (m->aa_fd >= 0) {
            close(m->aa_fd);
            m->aa_fd = -1;
        }
        if (m->iaa >= m->naa)
            return 0;
        {
            const char *aa = m->aa[m->iaa++];
            int pos = after_cmp(m, aa, NULL);

            fd = openat(m->root_fd, aa, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
                    continue;
                return -errno;
            }
            m->aa_fd = dup(fd);
            if (m->aa_fd < 0) {
                close(fd);
                return -errno;
            }
            r = list_hex2(fd, pos == 0 ? m->after + 3 : NULL, m->bb);
            if (r < 0)
                return r;
            m->nbb = (unsigned) r;
            m->ibb = 0;
        }
    }
}

/* Formats the next line into m->line. Returns 1, 0 at the very end, or -errno. */
static int manifest_next_line(struct manifest *m)
{
    struct stat st;
    int r, n;

    for (;;) {
        if (m->leaf_fd >= 0 && m->ileaf < m->leaf.n) {
            const char *name = m->leaf.v[m->ileaf++];
            char mtime[40];

            if (fstatat(m->leaf_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                    continue; /* deleted since the listing */
                return -errno;
            }
            if (!S_ISREG(st.st_mode))
                continue;
            rsync_format_mtime(&st, mtime);
            n = snprintf(m->line, sizeof(m->line), "%s/%s/%s %" PRIu64 " %s\n", m->aa[m->iaa - 1],
                         m->bb[m->ibb - 1], name, (uint64_t) st.st_size, mtime);
            m->line_len = (size_t) n;
            m->line_off = 0;
            m->files++;
            m->bytes += (uint64_t) st.st_size;
            return 1;
        }
        if (m->leaf_fd >= 0) {
            close(m->leaf_fd);
            m->leaf_fd = -1;
            name_list_release(&m->leaf);
        }
        r = manifest_next_leaf(m);
        if (r < 0)
            return r;
        if (r > 0)
            continue;
        if (m->ended)
            return 0;
        m->ended = true;
        n = snprintf(m->line, sizeof(m->line), "# end files=%" PRIu64 " bytes=%" PRIu64 "\n",
                     m->files, m->bytes);
        m->line_len = (size_t) n;
        m->line_off = 0;
        return 1;
    }
}

static ssize_t manifest_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct manifest *m = cls;
    size_t out = 0;
    int r;

    (void) pos;
    if (m->failed)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    while (out < max) {
        if (m->line_off < m->line_len) {
            size_t k = m->line_len - m->line_off;

            if (k > max - out)
                k = max - out;
            memcpy(buf + out, m->line + m->line_off, k);
            m->line_off += k;
            out += k;
            continue;
        }
        r = manifest_next_line(m);
        if (r < 0) {
            log_error("event=manifest_failed files=%" PRIu64 " error=\"%s\"", m->files,
                      strerror(-r));
            m->failed = true; /* the stream ends without its end line */
            break;
        }
        if (r == 0)
            break;
    }
    if (out > 0)
        return (ssize_t) out;
    return m->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

static void manifest_free(void *cls)
{
    struct manifest *m = cls;

    if (m->leaf_fd >= 0)
        close(m->leaf_fd);
    if (m->aa_fd >= 0)
        close(m->aa_fd);
    name_list_release(&m->leaf);
    free(m);
}

static enum MHD_Result manifest_get(struct sd_request *rq)
{
    const char *after = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "after");
    struct MHD_Response *resp;
    struct manifest *m;
    int fd, r;

    if (after && *after && !blob_rel_path_valid(after, strlen(after)))
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST,
                             "bad 'after': a blob path aa/bb/NAME expected");
    m = calloc(1, sizeof(*m));
    if (!m)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    m->root_fd = blob_store_root_fd(rq->store);
    m->aa_fd = -1;
    m->leaf_fd = -1;
    if (after)
        snprintf(m->after, sizeof(m->after), "%s", after);
    fd = openat(m->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    r = fd < 0 ? -errno : list_hex2(fd, m->after[0] ? m->after : NULL, m->aa);
    if (r < 0) {
        free(m);
        return sd_reply_errno(rq, r, "cannot list the root");
    }
    m->naa = (unsigned) r;
    resp = sd_stream_response(RSYNC_BLOCK, manifest_read, m, manifest_free,
                              "text/plain; charset=utf-8");
    if (!resp)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    return sd_reply(rq, MHD_HTTP_OK, resp);
}

const struct sd_endpoint sd_rsync_manifest_endpoint = {
    .name = "rsync_manifest",
    .ops = {[SD_GET] = {.end = manifest_get}},
};

/* --- streamed librsync output (signature, delta) ------------------------------------------ */

struct rsync_out {
    int fd;
    struct rsx_reader *rd;
    char name[BLOB_NAME_MAX + 1];
};

static ssize_t rsync_out_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct rsync_out *o = cls;
    ssize_t n;

    (void) pos;
    n = rsx_read(o->rd, buf, max);
    if (n > 0)
        return n;
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    log_error("event=rsync_stream_failed name=%s error=\"%s\"", o->name, strerror((int) -n));
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void rsync_out_free(void *cls)
{
    struct rsync_out *o = cls;

    rsx_reader_free(o->rd);
    if (o->fd >= 0)
        close(o->fd);
    free(o);
}

/* Queues a 200 streaming the reader (which, with fd, the response then owns). */
static enum MHD_Result rsync_out_reply(struct sd_request *rq, int fd, struct rsx_reader *rd,
                                       const struct stat *st, const char *md5hex)
{
    struct MHD_Response *resp;
    struct rsync_out *o = calloc(1, sizeof(*o));
    char num[24], mtime[40];

    if (!o) {
        rsx_reader_free(rd);
        close(fd);
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    }
    o->fd = fd;
    o->rd = rd;
    snprintf(o->name, sizeof(o->name), "%.*s", (int) rq->name_len, rq->name);
    resp = sd_stream_response(RSYNC_BLOCK, rsync_out_read, o, rsync_out_free,
                              "application/octet-stream");
    if (!resp)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    snprintf(num, sizeof(num), "%" PRIu64, (uint64_t) st->st_size);
    rsync_format_mtime(st, mtime);
    MHD_add_response_header(resp, "X-STF-Size", num);
    MHD_add_response_header(resp, "X-STF-Mtime", mtime);
    if (md5hex)
        MHD_add_response_header(resp, "X-STF-MD5", md5hex);
    return sd_reply(rq, MHD_HTTP_OK, resp);
}

static enum MHD_Result open_blob(struct sd_request *rq, int *ret_fd, struct stat *ret_st)
{
    int r = blob_store_open_read(rq->store, rq->name, rq->name_len, ret_fd, ret_st);

    if (r == -ENOENT)
        return sd_reply_text(rq, MHD_HTTP_NOT_FOUND, "no such blob");
    if (r < 0)
        return sd_reply_errno(rq, r, "open");
    return MHD_YES;
}

/* --- POST /_rsync/signature/NAME ---------------------------------------------------------- */

static enum MHD_Result signature_end(struct sd_request *rq)
{
    struct rsx_reader *rd = NULL;
    const char *reason;
    enum MHD_Result mr;
    struct stat st;
    int fd = -1, r;

    if (!rsync_name(rq, RSYNC_PATH_SIGNATURE, &reason))
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, reason);
    mr = open_blob(rq, &fd, &st);
    if (fd < 0)
        return mr;
    r = rsx_sig_reader_new(fd, (uint64_t) st.st_size, &rd);
    if (r < 0) {
        close(fd);
        return sd_reply_errno(rq, r, "cannot start the signature");
    }
    return rsync_out_reply(rq, fd, rd, &st, NULL);
}

const struct sd_endpoint sd_rsync_signature_endpoint = {
    .name = "rsync_signature",
    .ops = {[SD_POST] = {.end = signature_end}, [SD_GET] = {.end = signature_end}},
};

/* --- POST /_rsync/delta/NAME (body: signature) -------------------------------------------- */

struct delta_state {
    struct rsx_loader *ld;
    int err;
};

static void delta_state_free(struct sd_request *rq, bool ok)
{
    struct delta_state *st = rq->state;

    (void) ok;
    rsx_loader_free(st->ld);
    free(st);
    rq->state = NULL;
}

static enum MHD_Result delta_begin(struct sd_request *rq)
{
    const char *cl = header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH), *reason;
    struct delta_state *st;
    uint64_t len;
    int r;

    if (!rsync_name(rq, RSYNC_PATH_DELTA, &reason))
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, reason);
    if (cl && (rsync_parse_u64(cl, UINT64_MAX, &len) < 0 || len > RSX_SIG_MAX))
        return sd_reply_textf(rq, MHD_HTTP_CONTENT_TOO_LARGE, "a signature is at most %u bytes",
                              RSX_SIG_MAX);
    st = calloc(1, sizeof(*st));
    if (!st)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    rq->state = st;
    rq->state_free = delta_state_free;
    r = rsx_loader_new(RSX_SIG_MAX, &st->ld);
    if (r < 0)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    return MHD_YES;
}

static int delta_body(struct sd_request *rq, const char *data, size_t len)
{
    struct delta_state *st = rq->state;

    if (rq->body_bytes > RSX_SIG_MAX)
        return -E2BIG; /* drop the connection rather than read an unbounded body */
    if (!st->err)
        st->err = rsx_loader_feed(st->ld, data, len);
    return 0;
}

/* MD5 of the whole file (the copy is verified against it after the patch). */
static int file_md5(int fd, uint64_t size, char hex[33])
{
    struct md5_ctx *md5 = md5_new();
    char *buf = malloc(RSYNC_BLOCK);
    uint64_t off = 0;
    uint8_t digest[16];
    int r = 0;

    if (!md5 || !buf) {
        r = -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = pread(fd, buf, RSYNC_BLOCK, (off_t) off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            goto out;
        }
        if (n == 0)
            break;
        md5_update(md5, buf, (size_t) n);
        off += (uint64_t) n;
    }
    if (off != size) {
        r = -EIO; /* blobs never change in place: a different length is a disk problem */
        goto out;
    }
    md5_final(md5, digest);
    hex_encode(digest, sizeof(digest), hex);
out:
    md5_free(md5);
    free(buf);
    return r;
}

static enum MHD_Result delta_end(struct sd_request *rq)
{
    struct delta_state *st = rq->state;
    struct rsx_reader *rd = NULL;
    struct rsx_sig *sig = NULL;
    enum MHD_Result mr;
    struct stat sb;
    char md5hex[33];
    bool known;
    int fd = -1, r;

    if (st->err == -E2BIG)
        return sd_reply_textf(rq, MHD_HTTP_CONTENT_TOO_LARGE, "a signature is at most %u bytes",
                              RSX_SIG_MAX);
    if (st->err)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, "malformed librsync signature");
    r = rsx_loader_finish(st->ld, &sig);
    if (r == -ENOMEM)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    if (r < 0)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, "truncated or malformed signature");
    mr = open_blob(rq, &fd, &sb);
    if (fd < 0) {
        rsx_sig_free(sig);
        return mr;
    }
    /* The caller may know the MD5 the result must have (objects.etag): then the patch is
     * verified against that, and reading the whole file once more here is not needed. */
    known = header(rq, "X-STF-MD5-Known") != NULL;
    r = known ? 0 : file_md5(fd, (uint64_t) sb.st_size, md5hex);
    if (r == 0)
        r = rsx_delta_reader_new(fd, sig, &rd); /* takes sig in every case */
    else
        rsx_sig_free(sig);
    if (r < 0) {
        close(fd);
        return sd_reply_errno(rq, r, "cannot start the delta");
    }
    return rsync_out_reply(rq, fd, rd, &sb, known ? NULL : md5hex);
}

const struct sd_endpoint sd_rsync_delta_endpoint = {
    .name = "rsync_delta",
    .ops = {[SD_POST] = {.begin = delta_begin, .body = delta_body, .end = delta_end}},
};

/* --- POST /_rsync/patch/NAME (body: delta) ------------------------------------------------ */

struct patch_state {
    struct blob_tmp tmp;
    struct rsx_patcher *p;
    int basis_fd;
    uint64_t expect_size, body_max;
    uint8_t expect_md5[16];
    struct timespec mtime;
    bool has_mtime, defer_sync;
    int err; /* first failure; the rest of the body is read and dropped */
};

static void patch_state_free(struct sd_request *rq, bool ok)
{
    struct patch_state *st = rq->state;

    if (st->tmp.fd >= 0) {
        if (!ok)
            log_warn("event=patch_aborted name=%.*s received=%" PRIu64, (int) rq->name_len,
                     rq->name, rq->body_bytes);
        blob_tmp_discard(rq->store, &st->tmp);
    }
    rsx_patcher_free(st->p);
    if (st->basis_fd >= 0)
        close(st->basis_fd);
    free(st);
    rq->state = NULL;
}

static enum MHD_Result patch_begin(struct sd_request *rq)
{
    const char *size = header(rq, "X-STF-Expect-Size"), *md5 = header(rq, "X-STF-Expect-MD5");
    const char *mtime = header(rq, "X-STF-Mtime"), *sync = header(rq, "X-STF-Sync"), *reason;
    struct patch_state *st;
    struct statvfs vfs;
    struct stat sb;
    int r;

    if (!rsync_name(rq, RSYNC_PATH_PATCH, &reason))
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, reason);
    st = calloc(1, sizeof(*st));
    if (!st)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    st->tmp.fd = -1;
    st->basis_fd = -1;
    rq->state = st;
    rq->state_free = patch_state_free;
    if (!size || rsync_parse_u64(size, PATCH_SIZE_MAX, &st->expect_size) < 0)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST,
                             "X-STF-Expect-Size (the size of the result in bytes) required");
    if (!md5 || rsync_parse_md5_hex(md5, st->expect_md5) < 0)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST,
                             "X-STF-Expect-MD5 (32 hex digits: the MD5 of the result) required");
    if (mtime && rsync_parse_mtime(mtime, &st->mtime) < 0)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, "bad X-STF-Mtime (SEC[.NSEC] expected)");
    if (sync && strcasecmp(sync, "defer") != 0)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, "bad X-STF-Sync (only 'defer')");
    st->has_mtime = mtime != NULL;
    st->defer_sync = sync != NULL;
    st->body_max = 2 * st->expect_size + PATCH_BODY_SLACK;
    if (blob_store_statvfs(rq->store, &vfs) == 0 &&
        st->expect_size > (uint64_t) vfs.f_bavail * vfs.f_frsize)
        return sd_reply_textf(rq, MHD_HTTP_INSUFFICIENT_STORAGE,
                              "not enough space for %" PRIu64 " bytes", st->expect_size);
    r = blob_store_open_read(rq->store, rq->name, rq->name_len, &st->basis_fd, &sb);
    if (r < 0 && r != -ENOENT)
        return sd_reply_errno(rq, r, "cannot open the basis");
    /* next to where the blob will live: cheap inode allocation for a stream of new files */
    r = blob_tmp_create_near(rq->store, rq->name, rq->name_len,
                             st->defer_sync ? BLOB_COMMIT_NOSYNC : 0, &st->tmp);
    if (r < 0)
        return sd_reply_errno(rq, r, "cannot create a temp file");
    r = rsx_patcher_new(st->basis_fd, st->tmp.fd, st->expect_size, &st->p);
    if (r < 0)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    return MHD_YES;
}

static int patch_body(struct sd_request *rq, const char *data, size_t len)
{
    struct patch_state *st = rq->state;

    if (rq->body_bytes > st->body_max)
        return -E2BIG; /* far more delta than the result could need: drop the connection */
    if (st->err)
        return 0;
    st->err = rsx_patcher_feed(st->p, data, len);
    if (st->err)
        blob_tmp_discard(rq->store, &st->tmp); /* free the space at once */
    return 0;
}

static enum MHD_Result patch_fail(struct sd_request *rq, int err)
{
    struct patch_state *st = rq->state;

    switch (err) {
    case -EPROTO:
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, "truncated or malformed librsync delta");
    case -EFBIG:
        return sd_reply_textf(rq, MHD_HTTP_UNPROCESSABLE_CONTENT,
                              "the patched blob grows beyond X-STF-Expect-Size %" PRIu64,
                              st->expect_size);
    default:
        return sd_reply_errno(rq, err, "patch failed");
    }
}

static enum MHD_Result patch_end(struct sd_request *rq)
{
    struct patch_state *st = rq->state;
    struct MHD_Response *resp;
    uint64_t size = 0, lit = 0, copied = 0;
    uint8_t md5[16];
    char hex[33], want[33], etag[36], num[2][24];
    int r;

    if (st->err)
        return patch_fail(rq, st->err);
    r = rsx_patcher_finish(st->p, md5, &size);
    if (r < 0) {
        blob_tmp_discard(rq->store, &st->tmp);
        return patch_fail(rq, r);
    }
    rsx_patcher_stats(st->p, &lit, &copied);
    hex_encode(md5, sizeof(md5), hex);
    if (size != st->expect_size || memcmp(md5, st->expect_md5, sizeof(md5)) != 0) {
        blob_tmp_discard(rq->store, &st->tmp);
        hex_encode(st->expect_md5, sizeof(st->expect_md5), want);
        log_warn("event=patch_mismatch name=%.*s size=%" PRIu64 " md5=%s expect_size=%" PRIu64
                 " expect_md5=%s",
                 (int) rq->name_len, rq->name, size, hex, st->expect_size, want);
        return sd_reply_textf(rq, MHD_HTTP_UNPROCESSABLE_CONTENT,
                              "verification failed: the result has %" PRIu64 " bytes, MD5 %s; "
                              "expected %" PRIu64 " bytes, MD5 %s",
                              size, hex, st->expect_size, want);
    }
    if (st->has_mtime) {
        struct timespec ts[2] = {st->mtime, st->mtime};

        if (futimens(st->tmp.fd, ts) < 0)
            log_warn("event=patch_mtime_failed name=%.*s error=\"%s\"", (int) rq->name_len,
                     rq->name, strerror(errno));
    }
    r = blob_tmp_commit_flags(rq->store, &st->tmp, rq->name, rq->name_len,
                              st->defer_sync ? BLOB_COMMIT_NOSYNC : 0);
    if (r < 0)
        return sd_reply_errno(rq, r, "cannot store the blob");
    snprintf(etag, sizeof(etag), "\"%s\"", hex);
    snprintf(num[0], sizeof(num[0]), "%" PRIu64, lit);
    snprintf(num[1], sizeof(num[1]), "%" PRIu64, copied);
    resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
        MHD_add_response_header(resp, "X-STF-Literal-Bytes", num[0]);
        MHD_add_response_header(resp, "X-STF-Copied-Bytes", num[1]);
    }
    return sd_reply(rq, MHD_HTTP_CREATED, resp);
}

const struct sd_endpoint sd_rsync_patch_endpoint = {
    .name = "rsync_patch",
    .ops = {[SD_POST] = {.begin = patch_begin, .body = patch_body, .end = patch_end}},
};

/* --- POST /_rsync/sync ------------------------------------------------------------------- */

static enum MHD_Result sync_end(struct sd_request *rq)
{
    int r = blob_store_sync(rq->store);

    if (r < 0)
        return sd_reply_errno(rq, r, "syncfs");
    return sd_reply_empty(rq, MHD_HTTP_NO_CONTENT);
}

const struct sd_endpoint sd_rsync_sync_endpoint = {
    .name = "rsync_sync",
    .ops = {[SD_POST] = {.end = sync_end}},
};
