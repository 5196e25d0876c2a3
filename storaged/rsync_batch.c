/* storaged/rsync_batch.c — POST /_rsync/pack (the peer streams many whole blobs) and
 * POST /_rsync/pull (the target fetches them from the peer, verifies and commits each); see
 * rsync_batch.h. */
#include "rsync_batch.h"

#include "blob_store.h"
#include "buf.h"
#include "digest.h"
#include "http_client.h"
#include "log.h"
#include "offload.h"
#include "response.h"
#include "rsync_endpoints.h"
#include "rsync_pack.h"
#include "server.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH_LIST_MAX (256u << 10) /* request body of a pack or pull */
#define PACK_BLOCK (256 * 1024)     /* MHD's buffer for the pack stream */
#define PULL_WBUF (512u << 10)      /* a blob's bytes gathered before one write(2) */
#define PULL_CURL_BUF (256L * 1024) /* curl's receive buffer */
#define PULL_SOURCE_MAX 200         /* "http://HOST:PORT" */
#define PULL_CONNECT_TIMEOUT_MS 5000L
#define PULL_STALL_S 60L /* a peer that sends nothing for this long fails */

struct pull;

struct batch_list {
    struct buf body;
    struct pull *pull;  /* POST /_rsync/pull */
    bool pull_running; /* handed to an offload thread (then answered when it is done) */
};

static void pull_free(struct pull *p);

static const char *header(struct sd_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* Request bodies of both endpoints: collected (bounded), parsed in end. */
static void list_free(struct sd_request *rq, bool ok)
{
    struct batch_list *l = rq->state;

    (void) ok;
    pull_free(l->pull);
    buf_release(&l->body);
    free(l);
    rq->state = NULL;
}

static enum MHD_Result list_begin(struct sd_request *rq)
{
    struct batch_list *l = calloc(1, sizeof(*l));

    if (!l)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    buf_init(&l->body, BATCH_LIST_MAX);
    rq->state = l;
    rq->state_free = list_free;
    return MHD_YES;
}

static int list_body(struct sd_request *rq, const char *data, size_t len)
{
    struct batch_list *l = rq->state;

    return buf_append(&l->body, data, len) < 0 ? -E2BIG : 0;
}

/* The next line of the list (NUL-terminated in place); NULL at the end. */
static char *list_next(char **pos)
{
    char *line = *pos, *nl;

    if (!line || !*line)
        return NULL;
    nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *pos = nl + 1;
    } else {
        *pos = NULL;
    }
    return line;
}

/* --- POST /_rsync/pack (the peer) -------------------------------------------------------- */

struct pack_item {
    char name[BLOB_NAME_MAX + 1];
    bool hash;
};

struct pack_out {
    struct blob_store *store;
    struct pack_item *items;
    size_t n, next;
    int fd;              /* the blob being sent, -1 between blobs */
    uint64_t left;       /* its bytes still to send */
    struct md5_ctx *md5; /* hashing it (items[next - 1].hash) */
    bool hashing, ended, failed;
    uint64_t files;
    char line[PACK_LINE_MAX];
    size_t line_len, line_off;
};

static void pack_out_free(void *cls)
{
    struct pack_out *p = cls;

    if (p->fd >= 0)
        close(p->fd);
    md5_free(p->md5);
    free(p->items);
    free(p);
}

/* Opens the next blob and formats its header (or "- NAME"), or the end line. Returns 0, or
 * -errno when a blob cannot be read (the stream is then cut short). */
static int pack_next(struct pack_out *p)
{
    struct pack_item *it;
    char mtime[40];
    struct stat st;
    int r;

    p->line_off = 0;
    if (p->next == p->n) {
        p->line_len =
            (size_t) snprintf(p->line, sizeof(p->line), "# end files=%" PRIu64 "\n", p->files);
        p->ended = true;
        return 0;
    }
    it = &p->items[p->next++];
    r = blob_store_open_read(p->store, it->name, strlen(it->name), &p->fd, &st);
    if (r == -ENOENT) {
        p->fd = -1;
        p->line_len = (size_t) snprintf(p->line, sizeof(p->line), "- %s\n", it->name);
        return 0;
    }
    if (r < 0)
        return r;
    rsync_format_mtime(&st, mtime);
    p->left = (uint64_t) st.st_size;
    p->hashing = it->hash;
    if (p->hashing)
        md5_reset(p->md5);
    p->files++;
    p->line_len = (size_t) snprintf(p->line, sizeof(p->line), "+ %s %" PRIu64 " %s\n", it->name,
                                    p->left, mtime);
    return 0;
}

/* The blob is sent: its trailer. */
static void pack_trailer(struct pack_out *p)
{
    uint8_t digest[16];
    char hex[33];

    close(p->fd);
    p->fd = -1;
    p->line_off = 0;
    if (!p->hashing) {
        p->line_len = (size_t) snprintf(p->line, sizeof(p->line), ". -\n");
        return;
    }
    md5_final(p->md5, digest);
    hex_encode(digest, sizeof(digest), hex);
    p->line_len = (size_t) snprintf(p->line, sizeof(p->line), ". %s\n", hex);
}

/* Reads blob bytes straight into MHD's buffer. Returns the count or -errno. */
static ssize_t pack_data(struct pack_out *p, char *buf, size_t max)
{
    size_t want = p->left < max ? (size_t) p->left : max;
    ssize_t n;

    do {
        n = read(p->fd, buf, want);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EIO; /* shorter than its size: blobs never shrink in place */
    if (p->hashing)
        md5_update(p->md5, buf, (size_t) n);
    p->left -= (uint64_t) n;
    if (p->left == 0)
        pack_trailer(p);
    return n;
}

static ssize_t pack_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct pack_out *p = cls;
    size_t out = 0;
    ssize_t n;
    int r;

    (void) pos;
    while (out < max && !p->failed) {
        if (p->line_off < p->line_len) {
            size_t k =
                p->line_len - p->line_off < max - out ? p->line_len - p->line_off : max - out;

            memcpy(buf + out, p->line + p->line_off, k);
            p->line_off += k;
            out += k;
            continue;
        }
        if (p->fd >= 0 && p->left > 0) {
            n = pack_data(p, buf + out, max - out);
            if (n < 0) {
                log_error("event=pack_failed name=%s error=\"%s\"", p->items[p->next - 1].name,
                          strerror((int) -n));
                p->failed = true;
                break;
            }
            out += (size_t) n;
            continue;
        }
        if (p->fd >= 0) { /* an empty blob */
            pack_trailer(p);
            continue;
        }
        if (p->ended)
            break;
        r = pack_next(p);
        if (r < 0) {
            log_error("event=pack_failed name=%s error=\"%s\"", p->items[p->next - 1].name,
                      strerror(-r));
            p->failed = true;
        }
    }
    if (out > 0)
        return (ssize_t) out;
    return p->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

/* "NAME 0|1" lines into p->items. Returns NULL or the reason of a 400. */
static const char *pack_parse(struct pack_out *p, char *body)
{
    char *pos = body, *line;

    p->items = calloc(RSYNC_BATCH_FILES_MAX, sizeof(*p->items));
    if (!p->items)
        return "out of memory";
    while ((line = list_next(&pos))) {
        char *flag = strchr(line, ' ');
        struct pack_item *it;

        if (p->n == RSYNC_BATCH_FILES_MAX)
            return "too many blobs in one request";
        if (!flag || (strcmp(flag + 1, "0") != 0 && strcmp(flag + 1, "1") != 0))
            return "bad line: NAME 0|1 expected";
        *flag = '\0';
        if (blob_name_invalid(line, strlen(line)))
            return "bad blob name in the list";
        it = &p->items[p->n++];
        memcpy(it->name, line, strlen(line) + 1);
        it->hash = flag[1] == '1';
    }
    return NULL;
}

static enum MHD_Result pack_end(struct sd_request *rq)
{
    struct batch_list *l = rq->state;
    struct MHD_Response *resp;
    struct pack_out *p;
    const char *reason;

    if (l->body.len == 0 || buf_append(&l->body, "", 1) < 0)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, "an empty or too long list");
    p = calloc(1, sizeof(*p));
    if (!p || !(p->md5 = md5_new())) {
        free(p);
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    }
    p->store = rq->store;
    p->fd = -1;
    reason = pack_parse(p, l->body.ptr);
    if (reason) {
        pack_out_free(p);
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, reason);
    }
    resp = sd_stream_response(PACK_BLOCK, pack_read, p, pack_out_free, "application/octet-stream");
    if (!resp)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    return sd_reply(rq, MHD_HTTP_OK, resp);
}

const struct sd_endpoint sd_rsync_pack_endpoint = {
    .name = "rsync_pack",
    .ops = {[SD_POST] = {.begin = list_begin, .body = list_body, .end = pack_end}},
};

/* --- POST /_rsync/pull (the target) ------------------------------------------------------ */

struct pull_item {
    char name[BLOB_NAME_MAX + 1];
    uint64_t size;
    uint8_t md5[16];
    bool has_md5;
    unsigned status; /* 0 = not reached */
    uint64_t bytes;
    char reason[160];
};

struct pull {
    struct blob_store *store;
    struct sd_offload *offload;
    struct sd_offload_job job;
    const char *source; /* X-STF-Source, valid while the request lives */
    uint64_t rate;
    struct pull_item *items;
    size_t n, next;
    /* the blob being received */
    struct pull_item *cur;
    struct blob_tmp tmp;
    struct md5_ctx *md5;
    struct timespec mtime;
    uint64_t got;
    int werr;
    char *wbuf;
    size_t wlen;
    struct pack_decoder dec;
};

static void pull_fail_item(struct pull_item *it, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pull_fail_item(struct pull_item *it, unsigned status, const char *fmt, ...)
{
    va_list ap;

    it->status = status;
    va_start(ap, fmt);
    vsnprintf(it->reason, sizeof(it->reason), fmt, ap);
    va_end(ap);
}

/* The next item the stream must name. Returns it, or NULL (then -EPROTO) when it names
 * another one. */
static struct pull_item *pull_expect(struct pull *p, const char *name)
{
    if (p->next >= p->n || strcmp(p->items[p->next].name, name) != 0)
        return NULL;
    return &p->items[p->next++];
}

static int pull_begin(void *arg, const char *name, uint64_t size, const struct timespec *mtime)
{
    struct pull *p = arg;
    int r;

    p->cur = pull_expect(p, name);
    if (!p->cur)
        return -EPROTO;
    p->mtime = *mtime;
    p->got = 0;
    p->wlen = 0;
    p->werr = 0;
    md5_reset(p->md5);
    r = blob_tmp_create_near(p->store, name, strlen(name), BLOB_COMMIT_NOSYNC, &p->tmp);
    if (r < 0) {
        p->werr = r;
        p->tmp.fd = -1;
    }
    (void) size;
    return 0;
}

static void pull_flush(struct pull *p)
{
    int r;

    if (p->wlen == 0 || p->werr)
        return;
    r = blob_tmp_write(&p->tmp, p->wbuf, p->wlen);
    if (r < 0)
        p->werr = r;
    p->wlen = 0;
}

static int pull_data(void *arg, const void *data, size_t len)
{
    struct pull *p = arg;

    md5_update(p->md5, data, len);
    p->got += len;
    if (p->werr)
        return 0;
    if (p->wlen + len > PULL_WBUF)
        pull_flush(p);
    if (len >= PULL_WBUF) { /* a big piece: straight to the file */
        int r = blob_tmp_write(&p->tmp, data, len);

        if (r < 0)
            p->werr = r;
        return 0;
    }
    memcpy(p->wbuf + p->wlen, data, len);
    p->wlen += len;
    return 0;
}

static void pull_commit(struct pull *p, struct pull_item *it)
{
    struct timespec ts[2] = {p->mtime, p->mtime};
    int r;

    /* Start writing it back now, without waiting: the copy's sync then finds little left to
     * write, instead of the whole disk's worth of dirty pages at the end. */
    if (sync_file_range(p->tmp.fd, 0, 0, SYNC_FILE_RANGE_WRITE) < 0)
        log_debug("event=pull_writeback_failed name=%s error=\"%s\"", it->name, strerror(errno));

    if (futimens(p->tmp.fd, ts) < 0)
        log_warn("event=pull_mtime_failed name=%s error=\"%s\"", it->name, strerror(errno));
    r = blob_tmp_commit_flags(p->store, &p->tmp, it->name, strlen(it->name), BLOB_COMMIT_NOSYNC);
    if (r < 0) {
        pull_fail_item(it, 500, "cannot store the blob: %s", strerror(-r));
        return;
    }
    it->status = 201;
    it->bytes = p->got;
}

static int pull_end(void *arg, const char *md5hex)
{
    struct pull *p = arg;
    struct pull_item *it = p->cur;
    uint8_t digest[16], sent[16];
    char hex[33], want[33];

    p->cur = NULL;
    pull_flush(p);
    md5_final(p->md5, digest);
    hex_encode(digest, sizeof(digest), hex);
    if (!it->has_md5 && (!md5hex[0] || rsync_parse_md5_hex(md5hex, sent) < 0)) {
        pull_fail_item(it, 422, "the peer sent no MD5 to verify against");
    } else if (memcmp(digest, it->has_md5 ? it->md5 : sent, 16) != 0) {
        hex_encode(it->has_md5 ? it->md5 : sent, 16, want);
        log_warn("event=pull_mismatch name=%s size=%" PRIu64 " md5=%s expect_md5=%s", it->name,
                 p->got, hex, want);
        pull_fail_item(it, 422, "verification failed: %" PRIu64 " bytes with MD5 %s, not %s",
                       p->got, hex, want);
    } else if (p->werr) {
        pull_fail_item(it, p->werr == -ENOSPC ? 507 : 500, "cannot write: %s", strerror(-p->werr));
    } else {
        pull_commit(p, it);
    }
    if (p->tmp.fd >= 0)
        blob_tmp_discard(p->store, &p->tmp);
    return 0;
}

static int pull_missing(void *arg, const char *name)
{
    struct pull *p = arg;
    struct pull_item *it = pull_expect(p, name);

    if (!it)
        return -EPROTO;
    pull_fail_item(it, 404, "the peer has no such blob");
    return 0;
}

static const struct pack_cbs pull_cbs = {
    .begin = pull_begin, .data = pull_data, .end = pull_end, .missing = pull_missing};

static size_t pull_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct pull *p = arg;
    size_t n = size * nmemb;

    return pack_decoder_feed(&p->dec, data, n) < 0 ? 0 : n;
}

/* "NAME SIZE MD5|-" lines into p->items. Returns NULL or the reason of a 400. */
static const char *pull_parse(struct pull *p, char *body, uint64_t *ret_bytes)
{
    char *pos = body, *line;

    *ret_bytes = 0;
    while ((line = list_next(&pos))) {
        char *size = strchr(line, ' '), *md5;
        struct pull_item *it;

        if (p->n == RSYNC_BATCH_FILES_MAX)
            return "too many blobs in one request";
        if (!size || !(md5 = strchr(size + 1, ' ')))
            return "bad line: NAME SIZE MD5|- expected";
        *size++ = '\0';
        *md5++ = '\0';
        if (blob_name_invalid(line, strlen(line)))
            return "bad blob name in the list";
        it = &p->items[p->n++];
        memcpy(it->name, line, strlen(line) + 1);
        if (rsync_parse_u64(size, UINT64_MAX / 2, &it->size) < 0)
            return "bad size in the list";
        it->has_md5 = strcmp(md5, "-") != 0;
        if (it->has_md5 && rsync_parse_md5_hex(md5, it->md5) < 0)
            return "bad MD5 in the list (32 hex digits or '-')";
        *ret_bytes += it->size;
    }
    return p->n == 0 ? "an empty list" : NULL;
}

static bool source_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n <= 7 || n > PULL_SOURCE_MAX || strncmp(s, "http://", 7) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f || s[i] == '?' ||
            s[i] == '#')
            return false;
    }
    return true;
}

/* --- the calling thread's curl handle (keep-alive to the peer) --- */

static pthread_key_t pull_key;
static pthread_once_t pull_once = PTHREAD_ONCE_INIT;

static void pull_handle_free(void *h)
{
    curl_easy_cleanup(h);
}

static void pull_key_make(void)
{
    http_global_init();
    pthread_key_create(&pull_key, pull_handle_free);
}

static CURL *pull_handle(void)
{
    CURL *h;

    pthread_once(&pull_once, pull_key_make);
    h = pthread_getspecific(pull_key);
    if (!h) {
        h = curl_easy_init();
        if (h && pthread_setspecific(pull_key, h) != 0) {
            curl_easy_cleanup(h);
            h = NULL;
        }
    }
    return h;
}

/* Gives up a transfer once storaged is stopping. */
static int pull_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    struct pull *p = arg;

    (void) dltotal, (void) dlnow, (void) ultotal, (void) ulnow;
    return sd_offload_cancelled(p->offload) ? 1 : 0;
}

/* The request body for the peer. */
static int pull_pack_list(const struct pull *p, struct buf *out)
{
    int r = 0;

    for (size_t i = 0; i < p->n && r == 0; i++)
        r = buf_printf(out, "%s %d\n", p->items[i].name, p->items[i].has_md5 ? 0 : 1);
    return r;
}

/* POST SOURCE/_rsync/pack, decoding the answer into the blobs. Returns 0, or -errno with a
 * reason for the items not reached. */
static int pull_fetch(struct pull *p, char *err, size_t errlen)
{
    char url[PULL_SOURCE_MAX + 32], errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    struct buf list;
    CURL *h = pull_handle();
    CURLcode code;
    long status = 0;
    int r;

    buf_init(&list, BATCH_LIST_MAX);
    if (!h || pull_pack_list(p, &list) < 0) {
        snprintf(err, errlen, "out of memory");
        r = -ENOMEM;
        goto out;
    }
    snprintf(url, sizeof(url), "%s%s", p->source, RSYNC_PATH_PACK);
    hdrs = curl_slist_append(NULL, "Expect:");
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, PULL_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, PULL_STALL_S);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, PULL_CURL_BUF);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, list.ptr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) list.len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, pull_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, pull_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, p);
    if (p->rate > 0)
        curl_easy_setopt(h, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t) p->rate);
    pack_decoder_init(&p->dec, &pull_cbs, p);
    code = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    r = 0;
    if (status != 200 && status != 0) {
        snprintf(err, errlen, "the peer answered HTTP %ld to %s", status, RSYNC_PATH_PACK);
        r = -EIO;
    } else if (sd_offload_cancelled(p->offload)) {
        snprintf(err, errlen, "storaged is stopping");
        r = -ECANCELED;
    } else if (code != CURLE_OK || !pack_decoder_ended(&p->dec)) {
        snprintf(err, errlen, "the peer's stream failed: %s",
                 errbuf[0]          ? errbuf
                 : code != CURLE_OK ? curl_easy_strerror(code)
                                    : "malformed or cut short");
        r = -EIO;
    }
out:
    curl_slist_free_all(hdrs);
    buf_release(&list);
    return r;
}

static void pull_free(struct pull *p)
{
    if (!p)
        return;
    if (p->tmp.fd >= 0)
        blob_tmp_discard(p->store, &p->tmp);
    md5_free(p->md5);
    free(p->wbuf);
    free(p->items);
    free(p);
}

static struct pull *pull_new(struct sd_request *rq)
{
    struct pull *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->store = rq->store;
    p->offload = sd_server_offload(rq->srv);
    p->tmp.fd = -1;
    p->items = calloc(RSYNC_BATCH_FILES_MAX, sizeof(*p->items));
    p->md5 = md5_new();
    p->wbuf = malloc(PULL_WBUF);
    if (!p->items || !p->md5 || !p->wbuf) {
        pull_free(p);
        return NULL;
    }
    return p;
}

/* The answer: one line per item. */
static enum MHD_Result pull_reply(struct sd_request *rq, struct pull *p)
{
    struct MHD_Response *resp;
    struct buf out;
    int r = 0;

    buf_init(&out, (size_t) RSYNC_BATCH_FILES_MAX * (BLOB_NAME_MAX + 200) + 16);
    for (size_t i = 0; i < p->n && r == 0; i++) {
        const struct pull_item *it = &p->items[i];

        r = buf_printf(&out, "%s %u %" PRIu64 " %s\n", it->name, it->status, it->bytes,
                       it->status == 201 ? "stored" : it->reason);
    }
    if (r == 0)
        r = buf_puts(&out, "# end\n");
    resp = r == 0 ? MHD_create_response_from_buffer(out.len, out.ptr, MHD_RESPMEM_MUST_COPY) : NULL;
    buf_release(&out);
    if (!resp)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    return sd_reply(rq, MHD_HTTP_OK, resp);
}

static void pull_log(const struct pull *p)
{
    uint64_t bytes = 0;
    size_t stored = 0;

    for (size_t i = 0; i < p->n; i++) {
        stored += p->items[i].status == 201;
        bytes += p->items[i].bytes;
    }
    log_info("event=pull_done source=%s files=%zu stored=%zu bytes=%" PRIu64, p->source, p->n,
             stored, bytes);
}

/* On an offload thread, the connection suspended: the fetch, then the answer is sent by
 * pull_end_handler's second call. */
static void pull_work(void *arg)
{
    struct pull *p = arg;
    char err[200] = "storaged is stopping";

    if (sd_offload_cancelled(p->offload) || pull_fetch(p, err, sizeof(err)) < 0) {
        log_warn("event=pull_failed source=%s files=%zu reached=%zu error=\"%s\"", p->source,
                 p->n, p->next, err);
        for (size_t i = 0; i < p->n; i++) {
            if (p->items[i].status == 0)
                pull_fail_item(&p->items[i], 502, "%s", err);
        }
    }
    pull_log(p);
}

/* Checks the request and hands the pull to an offload thread. */
static enum MHD_Result pull_start(struct sd_request *rq, struct batch_list *l)
{
    const char *rate_s = header(rq, "X-STF-Max-Bytes-Per-Sec");
    const char *reason;
    struct statvfs vfs;
    struct pull *p = l->pull;
    uint64_t bytes;

    p->source = header(rq, "X-STF-Source");
    if (!source_ok(p->source))
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST,
                             "X-STF-Source (http://HOST:PORT of the peer) required");
    if (rate_s && rsync_parse_u64(rate_s, UINT64_MAX, &p->rate) < 0)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, "bad X-STF-Max-Bytes-Per-Sec");
    reason = pull_parse(p, l->body.ptr, &bytes);
    if (reason)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, reason);
    if (blob_store_statvfs(rq->store, &vfs) == 0 && bytes > (uint64_t) vfs.f_bavail * vfs.f_frsize)
        return sd_reply_textf(rq, MHD_HTTP_INSUFFICIENT_STORAGE,
                              "not enough space for %" PRIu64 " bytes", bytes);
    if (sd_offload_submit(p->offload, &p->job, rq->conn, pull_work, p) < 0)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "storaged is stopping");
    l->pull_running = true;
    return MHD_YES;
}

static enum MHD_Result pull_end_handler(struct sd_request *rq)
{
    struct batch_list *l = rq->state;

    if (l->pull_running) /* the second call: the offload thread is done */
        return pull_reply(rq, l->pull);
    if (l->body.len == 0 || buf_append(&l->body, "", 1) < 0)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, "an empty or too long list");
    l->pull = pull_new(rq);
    if (!l->pull)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    return pull_start(rq, l);
}

const struct sd_endpoint sd_rsync_pull_endpoint = {
    .name = "rsync_pull",
    .ops = {[SD_POST] = {.begin = list_begin, .body = list_body, .end = pull_end_handler}},
};
