/* repaird/rsync_copy.c — lanes of signature/delta/patch transfers on one curl multi handle; each
 * lane pipes the peer's delta response into the target's chunked patch request through a ring
 * buffer, pausing whichever side is ahead. Files the target lacks entirely go in batches to
 * the target, which pulls them from the peer itself (rsync_pull.c). */
#include "rsync_copy.h"

#include "buf.h"
#include "http_client.h"
#include "log.h"
#include "rsync_pull.h"
#include "stopflag.h"
#include "throttle.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RCOPY_RING (1u << 20)          /* pipe between a delta and its patch */
#define RCOPY_RESUME_FREE (256u << 10) /* resume a paused delta once this much is free */
#define RCOPY_CURL_BUF (128L * 1024)
#define RCOPY_URL_MAX (256 + 32 + BLOB_NAME_MAX)
#define RCOPY_TICK_MS 200
#define RCOPY_CONNECT_TIMEOUT_MS 5000L
#define RCOPY_STALL_S 120L /* a transfer that moves nothing for this long fails */
#define RCOPY_SYNC_TIMEOUT_MS (30u * 60 * 1000)
#define RCOPY_PULL_BYTES (16ull << 20)    /* bytes of one batch (one file may be larger) */
#define RCOPY_PULL_FILE_MAX (64ull << 20) /* larger files stream through a lane instead */
#define RCOPY_PULL_MIN_BYTES (64u << 10)  /* smallest batch limit under a throttle */

enum lane_stage { LANE_IDLE = 0, LANE_SIG, LANE_DELTA, LANE_DELETE };

struct lane {
    struct rcopy *c;
    enum lane_stage stage;
    struct rcopy_item it;
    struct rcopy_result res;
    bool finished; /* res is final; reported by the main loop */
    CURL *src, *dst;
    bool src_active, dst_active;
    struct curl_slist *src_hdrs, *dst_hdrs;
    char src_url[RCOPY_URL_MAX], dst_url[RCOPY_URL_MAX];
    char src_err[CURL_ERROR_SIZE], dst_err[CURL_ERROR_SIZE];
    int cb_err; /* an error a callback decided (throttle cancelled, signature too large) */
    struct buf sig;
    /* the delta response */
    long delta_status;
    bool delta_done, delta_ok, want_patch;
    char hdr_size[24], hdr_md5[40], hdr_mtime[40];
    /* the patch (or signature / delete) response */
    bool patch_started;
    char hdr_literal[24];
    char errbody[160];
    size_t errbody_len;
    /* the pipe */
    char *ring;
    size_t r_head, r_len;
    bool src_paused, dst_paused;
};

enum sync_state { SYNC_IDLE = 0, SYNC_RUNNING, SYNC_DONE };

struct rcopy {
    struct rcopy_opts o;
    CURLM *multi;
    CURL *sync;
    enum sync_state sync_state;
    int sync_err;
    char sync_url[RCOPY_URL_MAX], sync_errbuf[CURL_ERROR_SIZE], sync_msg[RCOPY_URL_MAX + 320];
    struct lane lanes[RCOPY_LANES_MAX];
    struct rpull pulls[RCOPY_PULLS_MAX];
    int filling;                 /* the batch being filled, -1 none */
    uint64_t pull_not_before_ms; /* the throttle's debt: no batch starts before */
    uint64_t pull_bytes_max;
    unsigned finished_now; /* items reported during the current rcopy_run */
    uint64_t last_tick_ms;
};

static uint64_t rcopy_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* --- callbacks --------------------------------------------------------------------------- */

/* Copies the value of "Name: value\r\n" into out when line is that header. */
static void header_value(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name), k;

    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    line += nl + 1;
    n -= nl + 1;
    while (n > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        n--;
    }
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' '))
        n--;
    k = n < outlen - 1 ? n : outlen - 1;
    memcpy(out, line, k);
    out[k] = '\0';
}

static size_t src_header(char *line, size_t size, size_t nmemb, void *arg)
{
    struct lane *l = arg;
    size_t n = size * nmemb;

    header_value(line, n, "X-STF-Size", l->hdr_size, sizeof(l->hdr_size));
    header_value(line, n, "X-STF-MD5", l->hdr_md5, sizeof(l->hdr_md5));
    header_value(line, n, "X-STF-Mtime", l->hdr_mtime, sizeof(l->hdr_mtime));
    return n;
}

static size_t dst_header(char *line, size_t size, size_t nmemb, void *arg)
{
    struct lane *l = arg;
    size_t n = size * nmemb;

    header_value(line, n, "X-STF-Literal-Bytes", l->hdr_literal, sizeof(l->hdr_literal));
    return n;
}

static void keep_errbody(struct lane *l, const char *data, size_t n)
{
    size_t room = sizeof(l->errbody) - 1 - l->errbody_len;

    if (n > room)
        n = room;
    memcpy(l->errbody + l->errbody_len, data, n);
    l->errbody_len += n;
    l->errbody[l->errbody_len] = '\0';
    for (size_t i = 0; i < l->errbody_len; i++) {
        if ((unsigned char) l->errbody[i] < 0x20)
            l->errbody[i] = ' ';
    }
}

/* The delta's body: into the ring, or pause while the ring is full. */
static size_t src_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct lane *l = arg;
    size_t n = size * nmemb, tail, first;
    int r;

    if (l->delta_status == 0)
        curl_easy_getinfo(l->src, CURLINFO_RESPONSE_CODE, &l->delta_status);
    if (l->delta_status != 200) {
        keep_errbody(l, data, n);
        return n;
    }
    if (n > RCOPY_RING - l->r_len) {
        l->src_paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    r = throttle_take(l->c->o.throttle, n);
    if (r < 0) {
        l->cb_err = r;
        return 0; /* aborts the transfer */
    }
    tail = (l->r_head + l->r_len) % RCOPY_RING;
    first = RCOPY_RING - tail < n ? RCOPY_RING - tail : n;
    memcpy(l->ring + tail, data, first);
    memcpy(l->ring, data + first, n - first);
    l->r_len += n;
    l->res.wire_bytes += n;
    if (!l->patch_started)
        l->want_patch = true;
    return n;
}

/* The patch's body: out of the ring; pause while it is empty and the delta goes on. */
static size_t dst_read(char *out, size_t size, size_t nmemb, void *arg)
{
    struct lane *l = arg;
    size_t max = size * nmemb, n = l->r_len < max ? l->r_len : max, first;

    if (n > 0) {
        first = RCOPY_RING - l->r_head < n ? RCOPY_RING - l->r_head : n;
        memcpy(out, l->ring + l->r_head, first);
        memcpy(out + first, l->ring, n - first);
        l->r_head = (l->r_head + n) % RCOPY_RING;
        l->r_len -= n;
        return n;
    }
    if (l->delta_done)
        return l->delta_ok ? 0 : CURL_READFUNC_ABORT;
    l->dst_paused = true;
    return CURL_READFUNC_PAUSE;
}

/* Bodies of signature, patch and delete responses. */
static size_t dst_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct lane *l = arg;
    size_t n = size * nmemb;
    long status = 0;
    int r;

    curl_easy_getinfo(l->dst, CURLINFO_RESPONSE_CODE, &status);
    if (l->stage == LANE_SIG && status == 200) {
        r = throttle_take(l->c->o.throttle, n);
        if (r == 0)
            r = buf_append(&l->sig, data, n);
        if (r < 0) {
            l->cb_err = r;
            return 0;
        }
        l->res.wire_bytes += n;
        return n;
    }
    keep_errbody(l, data, n);
    return n;
}

/* --- lane mechanics ---------------------------------------------------------------------- */

static void lane_detach(struct lane *l)
{
    if (l->src_active) {
        curl_multi_remove_handle(l->c->multi, l->src);
        l->src_active = false;
    }
    if (l->dst_active) {
        curl_multi_remove_handle(l->c->multi, l->dst);
        l->dst_active = false;
    }
    curl_slist_free_all(l->src_hdrs);
    curl_slist_free_all(l->dst_hdrs);
    l->src_hdrs = l->dst_hdrs = NULL;
}

static void lane_finish(struct lane *l, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void lane_finish(struct lane *l, int err, const char *fmt, ...)
{
    va_list ap;

    lane_detach(l);
    l->res.err = l->cb_err ? l->cb_err : err;
    if (fmt && l->res.err) {
        va_start(ap, fmt);
        vsnprintf(l->res.errmsg, sizeof(l->res.errmsg), fmt, ap);
        va_end(ap);
    }
    l->finished = true;
}

static void lane_reset_io(struct lane *l)
{
    l->delta_status = 0;
    l->delta_done = l->delta_ok = l->want_patch = l->patch_started = false;
    l->hdr_size[0] = l->hdr_md5[0] = l->hdr_mtime[0] = l->hdr_literal[0] = '\0';
    l->errbody[0] = '\0';
    l->errbody_len = 0;
    l->r_head = l->r_len = 0;
    l->src_paused = l->dst_paused = false;
    l->cb_err = 0;
    buf_reset(&l->sig);
}

void rcopy_easy_base(void *easy, const char *url, char *errbuf)
{
    CURL *h = easy;

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, RCOPY_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "stf-repaird/" STF_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    errbuf[0] = '\0';
}

static void easy_common(CURL *h, struct lane *l, const char *url, char *errbuf)
{
    rcopy_easy_base(h, url, errbuf);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, RCOPY_STALL_S);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, RCOPY_CURL_BUF);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, RCOPY_CURL_BUF);
    curl_easy_setopt(h, CURLOPT_PRIVATE, l);
}

static int lane_add(struct lane *l, CURL *h, bool *active)
{
    if (curl_multi_add_handle(l->c->multi, h) != CURLM_OK)
        return -ENOMEM;
    *active = true;
    return 0;
}

static int url_for(const char *uri, const char *path, const char *name, char *out)
{
    char url[RCOPY_URL_MAX]; /* name may live next to out: format apart, then copy */
    int n = snprintf(url, sizeof(url), "%s%s%s", uri, path, name);

    if (n <= 0 || n >= RCOPY_URL_MAX)
        return -ENAMETOOLONG;
    memcpy(out, url, (size_t) n + 1);
    return 0;
}

static int start_sig(struct lane *l)
{
    if (url_for(l->c->o.dst_uri, "/_rsync/signature/", l->it.name, l->dst_url) < 0)
        return -ENAMETOOLONG;
    l->stage = LANE_SIG;
    easy_common(l->dst, l, l->dst_url, l->dst_err);
    l->dst_hdrs = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(l->dst, CURLOPT_HTTPHEADER, l->dst_hdrs);
    curl_easy_setopt(l->dst, CURLOPT_POST, 1L);
    curl_easy_setopt(l->dst, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(l->dst, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) 0);
    curl_easy_setopt(l->dst, CURLOPT_HEADERFUNCTION, dst_header);
    curl_easy_setopt(l->dst, CURLOPT_HEADERDATA, l);
    curl_easy_setopt(l->dst, CURLOPT_WRITEFUNCTION, dst_write);
    curl_easy_setopt(l->dst, CURLOPT_WRITEDATA, l);
    return lane_add(l, l->dst, &l->dst_active);
}

/* The delta request, with the signature collected in l->sig (empty: no basis). */
static int start_delta(struct lane *l)
{
    const char *src = l->it.src_uri ? l->it.src_uri : l->c->o.src_uri;

    if (url_for(src, "/_rsync/delta/", l->it.name, l->src_url) < 0)
        return -ENAMETOOLONG;
    l->stage = LANE_DELTA;
    easy_common(l->src, l, l->src_url, l->src_err);
    l->src_hdrs = curl_slist_append(NULL, "Expect:");
    if (l->src_hdrs)
        curl_slist_append(l->src_hdrs, "Content-Type: application/octet-stream");
    if (l->src_hdrs && l->it.expect_md5[0])
        curl_slist_append(l->src_hdrs, "X-STF-MD5-Known: 1");
    curl_easy_setopt(l->src, CURLOPT_HTTPHEADER, l->src_hdrs);
    curl_easy_setopt(l->src, CURLOPT_POST, 1L);
    curl_easy_setopt(l->src, CURLOPT_POSTFIELDS, l->sig.ptr ? l->sig.ptr : "");
    curl_easy_setopt(l->src, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) l->sig.len);
    curl_easy_setopt(l->src, CURLOPT_HEADERFUNCTION, src_header);
    curl_easy_setopt(l->src, CURLOPT_HEADERDATA, l);
    curl_easy_setopt(l->src, CURLOPT_WRITEFUNCTION, src_write);
    curl_easy_setopt(l->src, CURLOPT_WRITEDATA, l);
    return lane_add(l, l->src, &l->src_active);
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[128];
    struct curl_slist *n;

    snprintf(line, sizeof(line), "%s: %s", name, value);
    n = curl_slist_append(*list, line);
    if (!n)
        return -ENOMEM;
    *list = n;
    return 0;
}

/* The patch request, fed from the ring; called once the delta answered 200. */
static int start_patch(struct lane *l)
{
    const char *md5 = l->it.expect_md5[0] ? l->it.expect_md5 : l->hdr_md5;
    int r = 0;

    l->want_patch = false;
    l->patch_started = true;
    if (!l->hdr_size[0] || (strlen(l->hdr_md5) != 32 && !l->it.expect_md5[0])) {
        lane_finish(l, -EIO, "the peer's delta has no X-STF-Size/X-STF-MD5");
        return 0;
    }
    if (l->it.expect_md5[0] && l->hdr_md5[0] && strcasecmp(l->it.expect_md5, l->hdr_md5) != 0) {
        lane_finish(l, -EBADMSG, "the peer's copy has MD5 %s, not %s", l->hdr_md5,
                    l->it.expect_md5);
        return 0;
    }
    if (url_for(l->c->o.dst_uri, "/_rsync/patch/", l->it.name, l->dst_url) < 0)
        return -ENAMETOOLONG;
    easy_common(l->dst, l, l->dst_url, l->dst_err);
    r |= add_header(&l->dst_hdrs, "Expect", "");
    r |= add_header(&l->dst_hdrs, "Transfer-Encoding", "chunked");
    r |= add_header(&l->dst_hdrs, "Content-Type", "application/octet-stream");
    r |= add_header(&l->dst_hdrs, "X-STF-Expect-Size", l->hdr_size);
    r |= add_header(&l->dst_hdrs, "X-STF-Expect-MD5", md5);
    if (l->hdr_mtime[0])
        r |= add_header(&l->dst_hdrs, "X-STF-Mtime", l->hdr_mtime);
    if (l->c->o.defer_sync)
        r |= add_header(&l->dst_hdrs, "X-STF-Sync", "defer");
    if (r)
        return -ENOMEM;
    curl_easy_setopt(l->dst, CURLOPT_HTTPHEADER, l->dst_hdrs);
    curl_easy_setopt(l->dst, CURLOPT_POST, 1L);
    curl_easy_setopt(l->dst, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) -1);
    curl_easy_setopt(l->dst, CURLOPT_READFUNCTION, dst_read);
    curl_easy_setopt(l->dst, CURLOPT_READDATA, l);
    curl_easy_setopt(l->dst, CURLOPT_HEADERFUNCTION, dst_header);
    curl_easy_setopt(l->dst, CURLOPT_HEADERDATA, l);
    curl_easy_setopt(l->dst, CURLOPT_WRITEFUNCTION, dst_write);
    curl_easy_setopt(l->dst, CURLOPT_WRITEDATA, l);
    return lane_add(l, l->dst, &l->dst_active);
}

static int start_delete(struct lane *l)
{
    if (url_for(l->c->o.dst_uri, "/", l->it.name, l->dst_url) < 0)
        return -ENAMETOOLONG;
    l->stage = LANE_DELETE;
    easy_common(l->dst, l, l->dst_url, l->dst_err);
    curl_easy_setopt(l->dst, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(l->dst, CURLOPT_HEADERFUNCTION, dst_header);
    curl_easy_setopt(l->dst, CURLOPT_HEADERDATA, l);
    curl_easy_setopt(l->dst, CURLOPT_WRITEFUNCTION, dst_write);
    curl_easy_setopt(l->dst, CURLOPT_WRITEDATA, l);
    return lane_add(l, l->dst, &l->dst_active);
}

int rcopy_curl_errno(int code)
{
    switch ((CURLcode) code) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

static const char *curl_msg(CURLcode code, const char *errbuf)
{
    return errbuf[0] ? errbuf : curl_easy_strerror(code);
}

static void src_done(struct lane *l, CURLcode code)
{
    curl_multi_remove_handle(l->c->multi, l->src);
    l->src_active = false;
    if (l->delta_status == 0)
        curl_easy_getinfo(l->src, CURLINFO_RESPONSE_CODE, &l->delta_status);
    l->delta_done = true;
    l->delta_ok = code == CURLE_OK && l->delta_status == 200 && !l->cb_err;
    if (l->patch_started || l->want_patch || l->finished)
        return; /* the patch reads the end (or the abort) from the ring */
    if (l->cb_err)
        lane_finish(l, l->cb_err, "stopped");
    else if (code != CURLE_OK)
        lane_finish(l, rcopy_curl_errno((int) code), "POST %s: %s", l->src_url,
                    curl_msg(code, l->src_err));
    else if (l->delta_status == 404)
        lane_finish(l, -ENOENT, "the peer has no %s", l->it.name);
    else if (l->delta_status == 200)
        lane_finish(l, -EIO, "POST %s: an empty delta", l->src_url);
    else
        lane_finish(l, -EIO, "POST %s: HTTP %ld %s", l->src_url, l->delta_status, l->errbody);
}

/* The target's answer to a patch. Returns 0 or -errno (engine failure). */
static int patch_done(struct lane *l, CURLcode code, long status)
{
    if (l->src_active) { /* answered before the delta ended: stop reading the delta */
        curl_multi_remove_handle(l->c->multi, l->src);
        l->src_active = false;
    }
    if (l->delta_done && !l->delta_ok) {
        if (l->cb_err)
            lane_finish(l, l->cb_err, "stopped");
        else if (l->delta_status != 200)
            lane_finish(l, -EIO, "POST %s: HTTP %ld", l->src_url, l->delta_status);
        else
            lane_finish(l, -EIO, "POST %s: the delta was cut short: %s", l->src_url,
                        l->src_err[0] ? l->src_err : "transfer failed");
        return 0;
    }
    if (code != CURLE_OK) {
        lane_finish(l, rcopy_curl_errno((int) code), "POST %s: %s", l->dst_url,
                    curl_msg(code, l->dst_err));
        return 0;
    }
    if (status == 201) {
        l->res.literal = strtoull(l->hdr_literal, NULL, 10);
        lane_finish(l, 0, NULL);
        return 0;
    }
    if (status == 422 && l->it.op == RCOPY_UPDATE && !l->res.fell_back) {
        /* the basis may have misled the delta (a false block match): the whole file instead */
        log_warn("event=recover_patch_fallback name=%s reason=\"%s\"", l->it.name, l->errbody);
        l->res.fell_back = true;
        lane_detach(l);
        lane_reset_io(l);
        return start_delta(l);
    }
    lane_finish(l, status == 422 ? -EBADMSG : -EIO, "POST %s: HTTP %ld %s", l->dst_url, status,
                l->errbody);
    return 0;
}

static int dst_done(struct lane *l, CURLcode code)
{
    long status = 0;

    curl_multi_remove_handle(l->c->multi, l->dst);
    l->dst_active = false;
    curl_easy_getinfo(l->dst, CURLINFO_RESPONSE_CODE, &status);
    if (l->cb_err && l->stage != LANE_DELTA) {
        if (l->cb_err == -E2BIG)
            lane_finish(l, -E2BIG, "the signature is larger than %u bytes", RCOPY_SIG_MAX);
        else
            lane_finish(l, l->cb_err, "stopped");
        return 0;
    }
    switch (l->stage) {
    case LANE_SIG:
        if (code != CURLE_OK) {
            lane_finish(l, rcopy_curl_errno((int) code), "POST %s: %s", l->dst_url,
                        curl_msg(code, l->dst_err));
            return 0;
        }
        if (status == 404)
            buf_reset(&l->sig); /* gone meanwhile: no basis */
        else if (status != 200) {
            lane_finish(l, -EIO, "POST %s: HTTP %ld %s", l->dst_url, status, l->errbody);
            return 0;
        }
        curl_slist_free_all(l->dst_hdrs);
        l->dst_hdrs = NULL;
        return start_delta(l);
    case LANE_DELTA:
        return patch_done(l, code, status);
    case LANE_DELETE:
        if (code != CURLE_OK)
            lane_finish(l, rcopy_curl_errno((int) code), "DELETE %s: %s", l->dst_url,
                        curl_msg(code, l->dst_err));
        else if (http_status_ok(status) || status == 404)
            lane_finish(l, 0, NULL);
        else
            lane_finish(l, -EIO, "DELETE %s: HTTP %ld %s", l->dst_url, status, l->errbody);
        return 0;
    case LANE_IDLE:
        break;
    }
    return 0;
}

/* Unpauses what can go on, starts patches whose delta answered. Returns 0 or -errno. */
static int lane_service(struct lane *l)
{
    int r;

    if (l->stage == LANE_IDLE || l->finished)
        return 0;
    if (l->want_patch && !l->patch_started) {
        r = start_patch(l);
        if (r < 0)
            return r;
        if (l->finished)
            return 0;
    }
    if (l->dst_paused && l->dst_active && (l->r_len > 0 || l->delta_done)) {
        l->dst_paused = false;
        curl_easy_pause(l->dst, CURLPAUSE_CONT);
    }
    if (l->src_paused && l->src_active && RCOPY_RING - l->r_len >= RCOPY_RESUME_FREE) {
        l->src_paused = false;
        curl_easy_pause(l->src, CURLPAUSE_CONT);
    }
    return 0;
}

static void lane_report(struct rcopy *c, struct lane *l)
{
    struct rcopy_item it = l->it;
    struct rcopy_result res = l->res;

    l->stage = LANE_IDLE;
    l->finished = false;
    lane_reset_io(l);
    c->finished_now++;
    if (c->o.done)
        c->o.done(c->o.done_arg, &it, &res);
}

/* --- the engine -------------------------------------------------------------------------- */

int rcopy_new(const struct rcopy_opts *o, struct rcopy **ret)
{
    struct rcopy *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    c->o = *o;
    if (c->o.lanes < 1)
        c->o.lanes = 1;
    if (c->o.lanes > RCOPY_LANES_MAX)
        c->o.lanes = RCOPY_LANES_MAX;
    if (c->o.pulls > RCOPY_PULLS_MAX)
        c->o.pulls = RCOPY_PULLS_MAX;
    if (c->o.pull_files < 1 || c->o.pull_files > RPULL_FILES_MAX)
        c->o.pull_files = RPULL_FILES_MAX;
    c->filling = -1;
    c->pull_bytes_max = RCOPY_PULL_BYTES;
    if (throttle_rate(c->o.throttle) > 0) { /* small batches keep the rate smooth */
        c->pull_bytes_max = throttle_rate(c->o.throttle) / 4;
        if (c->pull_bytes_max < RCOPY_PULL_MIN_BYTES)
            c->pull_bytes_max = RCOPY_PULL_MIN_BYTES;
    }
    c->multi = curl_multi_init();
    c->sync = curl_easy_init();
    if (!c->multi || !c->sync)
        goto fail;
    for (unsigned i = 0; i < c->o.lanes; i++) {
        struct lane *l = &c->lanes[i];

        l->c = c;
        buf_init(&l->sig, RCOPY_SIG_MAX);
        l->ring = malloc(RCOPY_RING);
        l->src = curl_easy_init();
        l->dst = curl_easy_init();
        if (!l->ring || !l->src || !l->dst)
            goto fail;
    }
    for (unsigned i = 0; i < c->o.pulls; i++) {
        if (rpull_init(&c->pulls[i]) < 0)
            goto fail;
    }
    *ret = c;
    return 0;
fail:
    rcopy_free(c);
    return -ENOMEM;
}

void rcopy_free(struct rcopy *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->o.lanes; i++) {
        struct lane *l = &c->lanes[i];

        if (c->multi)
            lane_detach(l);
        if (l->src)
            curl_easy_cleanup(l->src);
        if (l->dst)
            curl_easy_cleanup(l->dst);
        free(l->ring);
        buf_release(&l->sig);
    }
    for (unsigned i = 0; i < c->o.pulls; i++) {
        if (c->pulls[i].running && c->multi)
            curl_multi_remove_handle(c->multi, c->pulls[i].h);
        rpull_release(&c->pulls[i]);
    }
    if (c->sync) {
        if (c->sync_state == SYNC_RUNNING)
            curl_multi_remove_handle(c->multi, c->sync);
        curl_easy_cleanup(c->sync);
    }
    if (c->multi)
        curl_multi_cleanup(c->multi);
    free(c);
}

bool rcopy_has_free_lane(const struct rcopy *c)
{
    for (unsigned i = 0; i < c->o.lanes; i++) {
        if (c->lanes[i].stage == LANE_IDLE)
            return true;
    }
    return false;
}

unsigned rcopy_in_flight(const struct rcopy *c)
{
    unsigned n = 0;

    for (unsigned i = 0; i < c->o.lanes; i++)
        n += c->lanes[i].stage != LANE_IDLE;
    for (unsigned i = 0; i < c->o.pulls; i++)
        n += c->pulls[i].n;
    return n;
}

/* --- batches pulled by the target ---------------------------------------------------------- */

static bool pull_fits(const struct rcopy *c, const struct rcopy_item *it)
{
    return c->o.pulls > 0 && it->op == RCOPY_FETCH && !it->src_uri &&
           it->size <= RCOPY_PULL_FILE_MAX;
}

static bool pull_full(const struct rcopy *c, const struct rpull *p)
{
    return p->n >= c->o.pull_files || p->bytes >= c->pull_bytes_max;
}

static int pull_idle(const struct rcopy *c)
{
    for (unsigned i = 0; i < c->o.pulls; i++) {
        if (!c->pulls[i].running && c->pulls[i].n == 0)
            return (int) i;
    }
    return -1;
}

static void pull_report(void *arg, const struct rcopy_item *it, const struct rcopy_result *res)
{
    struct rcopy *c = arg;

    c->finished_now++;
    if (c->o.done)
        c->o.done(c->o.done_arg, it, res);
}

/* Starts the batch being filled once the throttle allows. */
static void pull_launch(struct rcopy *c)
{
    struct rpull *p;
    uint64_t now = rcopy_now_ms(), wait_ms;
    int r;

    if (c->filling < 0 || now < c->pull_not_before_ms)
        return;
    p = &c->pulls[c->filling];
    if (p->n == 0)
        return;
    c->filling = -1;
    if (stopflag_raised()) {
        rpull_finish(p, CURLE_OK, -ECANCELED, pull_report, c);
        return;
    }
    wait_ms = throttle_charge(c->o.throttle, p->bytes);
    c->pull_not_before_ms = now + wait_ms;
    r = rpull_start(p, c->multi, c->o.dst_uri, c->o.src_uri, throttle_rate(c->o.throttle));
    if (r < 0)
        rpull_finish(p, CURLE_OK, r, pull_report, c);
}

static int pull_add(struct rcopy *c, const struct rcopy_item *it)
{
    struct rpull *p;
    int r;

    if (c->filling < 0)
        c->filling = pull_idle(c);
    if (c->filling < 0)
        return -EBUSY;
    p = &c->pulls[c->filling];
    r = rpull_add(p, it);
    if (r < 0) {
        struct rcopy_result res = {.err = r};

        snprintf(res.errmsg, sizeof(res.errmsg), "cannot queue the transfer: %s", strerror(-r));
        pull_report(c, it, &res);
        return 0;
    }
    if (pull_full(c, p))
        pull_launch(c);
    return 0;
}

/* A batch's request ended. Returns true when h was one. */
static bool pull_done(struct rcopy *c, CURL *h, CURLcode code)
{
    for (unsigned i = 0; i < c->o.pulls; i++) {
        struct rpull *p = &c->pulls[i];

        if (p->running && p->h == h) {
            curl_multi_remove_handle(c->multi, h);
            rpull_finish(p, code, 0, pull_report, c);
            return true;
        }
    }
    return false;
}

bool rcopy_can_submit(const struct rcopy *c, const struct rcopy_item *it)
{
    if (!pull_fits(c, it))
        return rcopy_has_free_lane(c);
    if (c->filling >= 0)
        return !pull_full(c, &c->pulls[c->filling]);
    return pull_idle(c) >= 0;
}

int rcopy_submit(struct rcopy *c, const struct rcopy_item *it)
{
    struct lane *l = NULL;
    int r;

    if (pull_fits(c, it))
        return pull_add(c, it);

    for (unsigned i = 0; i < c->o.lanes && !l; i++) {
        if (c->lanes[i].stage == LANE_IDLE)
            l = &c->lanes[i];
    }
    if (!l)
        return -EBUSY;
    l->it = *it;
    memset(&l->res, 0, sizeof(l->res));
    l->finished = false;
    lane_reset_io(l);
    switch (it->op) {
    case RCOPY_UPDATE:
        r = start_sig(l);
        break;
    case RCOPY_FETCH:
        l->stage = LANE_DELTA;
        r = start_delta(l);
        break;
    case RCOPY_DELETE:
        r = start_delete(l);
        break;
    default:
        r = -EINVAL;
    }
    if (r < 0) {
        lane_finish(l, r, "cannot start the transfer: %s", strerror(-r));
        lane_report(c, l);
    }
    return 0;
}

static size_t sync_write(char *data, size_t size, size_t nmemb, void *arg)
{
    (void) data;
    (void) arg;
    return size * nmemb;
}

static void sync_done(struct rcopy *c, CURLcode code)
{
    long status = 0;

    curl_multi_remove_handle(c->multi, c->sync);
    curl_easy_getinfo(c->sync, CURLINFO_RESPONSE_CODE, &status);
    c->sync_state = SYNC_DONE;
    c->sync_err = 0;
    if (code != CURLE_OK) {
        c->sync_err = rcopy_curl_errno((int) code);
        snprintf(c->sync_msg, sizeof(c->sync_msg), "POST %s: %s", c->sync_url,
                 curl_msg(code, c->sync_errbuf));
    } else if (status != 204 && status != 200) {
        c->sync_err = -EIO;
        snprintf(c->sync_msg, sizeof(c->sync_msg), "POST %s: HTTP %ld", c->sync_url, status);
    }
}

int rcopy_sync_start(struct rcopy *c)
{
    if (c->sync_state == SYNC_RUNNING)
        return -EBUSY;
    if (url_for(c->o.dst_uri, "/_rsync/sync", "", c->sync_url) < 0)
        return -ENAMETOOLONG;
    rcopy_easy_base(c->sync, c->sync_url, c->sync_errbuf);
    curl_easy_setopt(c->sync, CURLOPT_TIMEOUT_MS, (long) RCOPY_SYNC_TIMEOUT_MS);
    curl_easy_setopt(c->sync, CURLOPT_POST, 1L);
    curl_easy_setopt(c->sync, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c->sync, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) 0);
    curl_easy_setopt(c->sync, CURLOPT_WRITEFUNCTION, sync_write);
    if (curl_multi_add_handle(c->multi, c->sync) != CURLM_OK)
        return -ENOMEM;
    c->sync_state = SYNC_RUNNING;
    return 0;
}

int rcopy_sync_poll(struct rcopy *c, char *err, size_t errlen)
{
    if (c->sync_state == SYNC_IDLE)
        return -EINVAL;
    if (c->sync_state == SYNC_RUNNING)
        return 1;
    c->sync_state = SYNC_IDLE;
    if (c->sync_err)
        snprintf(err, errlen, "%s", c->sync_msg);
    return c->sync_err;
}

static int rcopy_tick(struct rcopy *c)
{
    uint64_t now = rcopy_now_ms();

    if (!c->o.tick || now - c->last_tick_ms < RCOPY_TICK_MS)
        return 0;
    c->last_tick_ms = now;
    return c->o.tick(c->o.tick_arg);
}

int rcopy_run(struct rcopy *c, int timeout_ms)
{
    uint64_t deadline = rcopy_now_ms() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0);
    int running = 0, left, r;
    CURLMsg *msg;

    c->finished_now = 0;
    for (;;) {
        if (curl_multi_perform(c->multi, &running) != CURLM_OK)
            return -ENOMEM;
        while ((msg = curl_multi_info_read(c->multi, &left))) {
            struct lane *l = NULL;
            CURL *h = msg->easy_handle;
            CURLcode code = msg->data.result;

            if (msg->msg != CURLMSG_DONE)
                continue;
            if (h == c->sync) {
                sync_done(c, code);
                continue;
            }
            if (pull_done(c, h, code))
                continue;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **) &l);
            if (!l)
                continue;
            if (h == l->src)
                src_done(l, code);
            else if ((r = dst_done(l, code)) < 0)
                lane_finish(l, r, "cannot go on: %s", strerror(-r));
        }
        for (unsigned i = 0; i < c->o.lanes; i++) {
            struct lane *l = &c->lanes[i];

            r = lane_service(l);
            if (r < 0)
                lane_finish(l, r, "cannot start the patch: %s", strerror(-r));
            if (l->finished)
                lane_report(c, l);
        }
        pull_launch(c); /* a batch not full: nothing else comes to fill it now */
        r = rcopy_tick(c);
        if (r < 0)
            return r;
        if (c->finished_now > 0 || rcopy_in_flight(c) == 0 || rcopy_now_ms() >= deadline)
            return 0;
        if (curl_multi_poll(c->multi, NULL, 0, RCOPY_TICK_MS / 4, NULL) != CURLM_OK)
            return -ENOMEM;
    }
}

int rcopy_drain(struct rcopy *c)
{
    int r;

    while (rcopy_in_flight(c) > 0) {
        r = rcopy_run(c, 1000);
        if (r < 0)
            return r;
    }
    return 0;
}

int rcopy_sync(const char *dst_uri, char *err, size_t errlen)
{
    struct http_req req = {.method = HTTP_POST, .timeout_ms = RCOPY_SYNC_TIMEOUT_MS};
    char url[RCOPY_URL_MAX];
    int r;

    if (url_for(dst_uri, "/_rsync/sync", "", url) < 0)
        return -ENAMETOOLONG;
    req.url = url;
    r = http_perform(&req);
    if (r < 0) {
        snprintf(err, errlen, "POST %s: %s", url, req.errmsg);
        return r;
    }
    if (r != 204 && r != 200) {
        snprintf(err, errlen, "POST %s: HTTP %d %.120s", url, r, req.err_body);
        return -EIO;
    }
    return 0;
}
