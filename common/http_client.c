/* common/http_client.c — libcurl behind http_client.h: per-thread easy/multi handles, request
 * setup, body sources and sinks, header capture, and curl errors mapped to -errno. */
#include "http_client.h"

#include "buf.h"
#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#ifndef STF_VERSION
#define STF_VERSION "dev"
#endif

/* The calling thread's handles. */
struct http_tls {
    CURL *easy;
    CURLM *multi;
};

/* Per-request state the callbacks need; lives for one perform. */
struct http_ctx {
    struct http_req *req;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    int cb_err;   /* error raised by a sink or source, 0 if none */
    int64_t sent; /* request body bytes supplied so far */
    size_t err_body_len;
    bool done;
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static pthread_key_t http_key;
static int http_init_result;
static __thread struct http_tls *http_tls;

static void http_tls_free(void *p)
{
    struct http_tls *t = p;

    if (!t)
        return;
    if (t->multi)
        curl_multi_cleanup(t->multi);
    if (t->easy)
        curl_easy_cleanup(t->easy);
    free(t);
}

static void http_init_once(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        http_init_result = -EIO;
        return;
    }
    if (pthread_key_create(&http_key, http_tls_free) != 0)
        http_init_result = -EAGAIN;
}

int http_global_init(void)
{
    pthread_once(&http_once, http_init_once);
    return http_init_result;
}

void http_thread_cleanup(void)
{
    if (!http_tls)
        return;
    pthread_setspecific(http_key, NULL);
    http_tls_free(http_tls);
    http_tls = NULL;
}

void http_global_cleanup(void)
{
    http_thread_cleanup();
    curl_global_cleanup();
}

static struct http_tls *http_tls_get(void)
{
    if (http_tls)
        return http_tls;
    if (http_global_init() < 0)
        return NULL;
    http_tls = calloc(1, sizeof(*http_tls));
    if (!http_tls)
        return NULL;
    if (pthread_setspecific(http_key, http_tls) != 0) {
        free(http_tls);
        http_tls = NULL;
    }
    return http_tls;
}

/* ---- callbacks --------------------------------------------------------------------------- */

static void http_trim_copy(char *out, size_t outlen, const char *v, size_t n)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

static bool http_header_is(const char *line, size_t n, const char *name, size_t *ret_vpos)
{
    size_t nl = strlen(name);

    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return false;
    *ret_vpos = nl + 1;
    return true;
}

static size_t http_on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    struct http_ctx *ctx = arg;
    struct http_info *info = &ctx->req->info;
    size_t n = size * nmemb, v;
    long code;

    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (e.g. after "100 Continue"): forget the previous headers. */
        const char *sp = memchr(line, ' ', n);

        memset(info, 0, sizeof(*info));
        info->content_length = -1;
        if (sp && sscanf(sp + 1, "%3ld", &code) == 1)
            info->status = code;
    } else if (http_header_is(line, n, "etag", &v)) {
        http_trim_copy(info->etag, sizeof(info->etag), line + v, n - v);
    } else if (http_header_is(line, n, "last-modified", &v)) {
        http_trim_copy(info->last_modified, sizeof(info->last_modified), line + v, n - v);
    } else if (http_header_is(line, n, "content-type", &v)) {
        http_trim_copy(info->content_type, sizeof(info->content_type), line + v, n - v);
    }
    return n;
}

static int http_write_fd(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        data += w;
        len -= (size_t) w;
    }
    return 0;
}

static size_t http_on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_ctx *ctx = arg;
    struct http_req *req = ctx->req;
    size_t n = size * nmemb;
    int r = 0;

    req->body_bytes += n;
    if (req->resp.kind == HTTP_SINK_DISCARD)
        return n;
    if (req->resp.kind == HTTP_SINK_BUF) {
        r = buf_append(req->resp.buf, data, n);
    } else if (!http_status_ok(req->info.status)) {
        size_t room = sizeof(req->err_body) - 1 - ctx->err_body_len;
        size_t k = n < room ? n : room;

        memcpy(req->err_body + ctx->err_body_len, data, k);
        ctx->err_body_len += k;
        req->err_body[ctx->err_body_len] = '\0';
    } else if (req->resp.kind == HTTP_SINK_FD) {
        r = http_write_fd(req->resp.fd, data, n);
    } else if (req->resp.kind == HTTP_SINK_CB) {
        r = req->resp.fn(req->resp.arg, data, n);
    }
    if (r < 0) {
        ctx->cb_err = r;
        return 0; /* anything short of n aborts with CURLE_WRITE_ERROR */
    }
    return n;
}

static size_t http_on_read(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_ctx *ctx = arg;
    struct http_req *req = ctx->req;
    size_t n = size * nmemb;
    ssize_t got;

    if (req->body.kind != HTTP_BODY_CB) {
        int64_t left = req->body.len - ctx->sent;

        if (left <= 0)
            return 0;
        if ((uint64_t) left < n)
            n = (size_t) left;
    }
    switch (req->body.kind) {
    case HTTP_BODY_MEM:
        memcpy(data, (const char *) req->body.mem + ctx->sent, n);
        got = (ssize_t) n;
        break;
    case HTTP_BODY_FD:
        do {
            got = pread(req->body.fd, data, n, req->body.off + ctx->sent);
        } while (got < 0 && errno == EINTR);
        if (got < 0) {
            ctx->cb_err = -errno;
            return CURL_READFUNC_ABORT;
        }
        if (got == 0) { /* the file is shorter than announced */
            ctx->cb_err = -EIO;
            return CURL_READFUNC_ABORT;
        }
        break;
    case HTTP_BODY_CB:
        got = req->body.fn(req->body.arg, data, n);
        if (got < 0) {
            ctx->cb_err = (int) got;
            return CURL_READFUNC_ABORT;
        }
        if ((size_t) got > n) {
            ctx->cb_err = -EINVAL;
            return CURL_READFUNC_ABORT;
        }
        break;
    default:
        return 0;
    }
    ctx->sent += got;
    return (size_t) got;
}

/* curl rewinds when it must resend a body (e.g. a reused connection the server had closed). */
static int http_on_seek(void *arg, curl_off_t offset, int origin)
{
    struct http_ctx *ctx = arg;

    if (origin != SEEK_SET || offset < 0 || ctx->req->body.kind == HTTP_BODY_CB ||
        offset > ctx->req->body.len)
        return CURL_SEEKFUNC_CANTSEEK;
    ctx->sent = offset;
    return CURL_SEEKFUNC_OK;
}

/* ---- setup and results ------------------------------------------------------------------- */

static int http_add_header(struct http_ctx *ctx, const char *line)
{
    struct curl_slist *l = curl_slist_append(ctx->headers, line);

    if (!l)
        return -ENOMEM;
    ctx->headers = l;
    return 0;
}

static int http_set_headers(struct http_ctx *ctx)
{
    struct http_req *req = ctx->req;
    char line[200];

    for (const char *const *h = req->headers; h && *h; h++) {
        if (http_add_header(ctx, *h) < 0)
            return -ENOMEM;
    }
    if (req->content_md5) {
        if (strlen(req->content_md5) > 64)
            return -EINVAL;
        snprintf(line, sizeof(line), "Content-MD5: %s", req->content_md5);
        if (http_add_header(ctx, line) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int http_set_body(CURL *h, struct http_ctx *ctx)
{
    struct http_req *req = ctx->req;
    curl_off_t len = req->body.kind == HTTP_BODY_NONE ? 0 : (curl_off_t) req->body.len;

    if (req->body.kind != HTTP_BODY_CB && len < 0)
        return -EINVAL;
    if ((req->body.kind == HTTP_BODY_MEM && !req->body.mem && len > 0) ||
        (req->body.kind == HTTP_BODY_CB && !req->body.fn))
        return -EINVAL;
    curl_easy_setopt(h, CURLOPT_READFUNCTION, http_on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, ctx);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, http_on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, ctx);
    if (req->method == HTTP_PUT) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, len); /* -1: chunked */
    } else {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, len);
        if (len < 0 && http_add_header(ctx, "Transfer-Encoding: chunked") < 0)
            return -ENOMEM;
    }
    return 0;
}

static int http_setup(CURL *h, struct http_req *req, struct http_ctx *ctx)
{
    unsigned timeout = req->timeout_ms ? req->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    unsigned ctimeout = req->connect_timeout_ms;
    int r;

    memset(ctx, 0, sizeof(*ctx));
    ctx->req = req;
    req->err = 0;
    req->body_bytes = 0;
    req->errmsg[0] = '\0';
    req->err_body[0] = '\0';
    memset(&req->info, 0, sizeof(req->info));
    req->info.content_length = -1;
    if (!req->url ||
        (strncmp(req->url, "http://", 7) != 0 && strncmp(req->url, "https://", 8) != 0))
        return -EINVAL;
    if ((req->resp.kind == HTTP_SINK_BUF && !req->resp.buf) ||
        (req->resp.kind == HTTP_SINK_CB && !req->resp.fn))
        return -EINVAL;
    if (!ctimeout)
        ctimeout =
            timeout < HTTP_DEFAULT_CONNECT_TIMEOUT_MS ? timeout : HTTP_DEFAULT_CONNECT_TIMEOUT_MS;

    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long) timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long) ctimeout);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "stf/" STF_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ctx->errbuf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, ctx);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, ctx);
    curl_easy_setopt(h, CURLOPT_PRIVATE, ctx);

    switch (req->method) {
    case HTTP_GET:
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        break;
    case HTTP_HEAD:
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        break;
    case HTTP_DELETE:
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    case HTTP_PUT:
    case HTTP_POST:
        r = http_set_body(h, ctx);
        if (r < 0)
            return r;
        break;
    default:
        return -EINVAL;
    }
    r = http_set_headers(ctx);
    if (r < 0)
        return r;
    if (ctx->headers)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, ctx->headers);
    return 0;
}

static int http_map_error(CURLcode c)
{
    switch (c) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return -EINVAL;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

/* Fills the results of a finished transfer and releases ctx's resources. */
static void http_finish(CURL *h, struct http_ctx *ctx, CURLcode code)
{
    struct http_req *req = ctx->req;
    curl_off_t cl = -1;
    long status = 0;

    ctx->done = true;
    if (code == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        req->info.status = status;
        req->info.content_length = cl;
        req->err = 0;
    } else {
        req->info.status = 0;
        req->err = ctx->cb_err ? ctx->cb_err : http_map_error(code);
        snprintf(req->errmsg, sizeof(req->errmsg), "%.*s", (int) sizeof(req->errmsg) - 1,
                 ctx->cb_err == -E2BIG ? "response body too large"
                 : ctx->errbuf[0]      ? ctx->errbuf
                                       : curl_easy_strerror(code));
        log_debug("event=http_error url=%s err=\"%s\"", req->url, req->errmsg);
    }
    curl_slist_free_all(ctx->headers);
    ctx->headers = NULL;
}

static void http_fail_setup(struct http_ctx *ctx, int r)
{
    struct http_req *req = ctx->req;

    req->err = r;
    req->info.status = 0;
    snprintf(req->errmsg, sizeof(req->errmsg), "%s",
             r == -ENOMEM ? "out of memory"
             : r == -EIO  ? "cannot initialise libcurl"
                          : "bad request (url must be http:// or https://)");
    curl_slist_free_all(ctx->headers);
    ctx->headers = NULL;
    ctx->done = true;
}

int http_perform(struct http_req *req)
{
    struct http_tls *t = http_tls_get();
    struct http_ctx ctx;
    CURLcode code;
    int r;

    memset(&ctx, 0, sizeof(ctx));
    ctx.req = req;
    if (!t) {
        http_fail_setup(&ctx, -ENOMEM);
        return req->err;
    }
    if (!t->easy) {
        t->easy = curl_easy_init();
        if (!t->easy) {
            http_fail_setup(&ctx, -ENOMEM);
            return req->err;
        }
    } else {
        curl_easy_reset(t->easy); /* keeps the connection cache */
    }
    r = http_setup(t->easy, req, &ctx);
    if (r < 0) {
        http_fail_setup(&ctx, r);
        return req->err;
    }
    code = curl_easy_perform(t->easy);
    http_finish(t->easy, &ctx, code);
    return req->err < 0 ? req->err : (int) req->info.status;
}

/* ---- parallel requests ------------------------------------------------------------------- */

static uint64_t http_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void http_multi_drain(CURLM *m)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(m, &left))) {
        struct http_ctx *ctx = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &ctx);
        if (ctx && !ctx->done)
            http_finish(msg->easy_handle, ctx, msg->data.result);
    }
}

/* Sets up and adds every request; one that cannot start is failed at once (easies[i] NULL). */
static void http_multi_add(CURLM *m, struct http_req *reqs, struct http_ctx *ctxs, CURL **easies,
                           size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int r = -ENOMEM;

        ctxs[i].req = &reqs[i];
        easies[i] = curl_easy_init();
        if (easies[i]) {
            r = http_setup(easies[i], &reqs[i], &ctxs[i]);
            if (r == 0 && curl_multi_add_handle(m, easies[i]) != CURLM_OK)
                r = -ENOMEM;
        }
        if (r < 0) {
            http_fail_setup(&ctxs[i], r);
            curl_easy_cleanup(easies[i]);
            easies[i] = NULL;
        }
    }
}

/* Drives the transfers until none runs or the deadline (0 = none) passes.
 * Returns 0, -ETIMEDOUT (deadline) or -EIO (curl multi failure). */
static int http_multi_loop(CURLM *m, uint64_t deadline)
{
    int running = 0;

    for (;;) {
        int wait_ms = 1000;
        uint64_t now;

        if (curl_multi_perform(m, &running) != CURLM_OK)
            return -EIO;
        http_multi_drain(m);
        if (running == 0)
            return 0;
        now = http_now_ms();
        if (deadline) {
            if (now >= deadline)
                return -ETIMEDOUT;
            if (deadline - now < (uint64_t) wait_ms)
                wait_ms = (int) (deadline - now);
        }
        if (curl_multi_poll(m, NULL, 0, wait_ms, NULL) != CURLM_OK)
            return -EIO;
    }
}

int http_multi_run(struct http_req *reqs, size_t n, unsigned timeout_ms)
{
    struct http_tls *t = http_tls_get();
    struct http_ctx *ctxs = NULL;
    CURL **easies = NULL;
    uint64_t deadline = timeout_ms ? http_now_ms() + timeout_ms : 0;
    int r = -ENOMEM, answered = 0;

    if (n == 0)
        return 0;
    ctxs = calloc(n, sizeof(*ctxs));
    easies = calloc(n, sizeof(*easies));
    if (t && !t->multi)
        t->multi = curl_multi_init();
    if (!t || !t->multi || !ctxs || !easies) {
        for (size_t i = 0; i < n; i++) {
            struct http_ctx c = {.req = &reqs[i]};

            http_fail_setup(&c, r);
        }
        goto out;
    }
    http_multi_add(t->multi, reqs, ctxs, easies, n);
    r = http_multi_loop(t->multi, deadline);
    http_multi_drain(t->multi);
    for (size_t i = 0; i < n; i++) {
        if (easies[i]) {
            if (!ctxs[i].done) { /* stopped by the overall deadline or a multi failure */
                http_finish(easies[i], &ctxs[i],
                            r == -EIO ? CURLE_RECV_ERROR : CURLE_OPERATION_TIMEDOUT);
                snprintf(reqs[i].errmsg, sizeof(reqs[i].errmsg), "%s",
                         r == -EIO ? "curl multi failure" : "overall time limit reached");
            }
            curl_multi_remove_handle(t->multi, easies[i]);
            curl_easy_cleanup(easies[i]);
        }
        if (reqs[i].err == 0)
            answered++;
    }
    r = answered;
out:
    free(ctxs);
    free(easies);
    return r;
}

/* ---- conveniences ------------------------------------------------------------------------ */

static int http_simple(struct http_req *req, struct http_info *ret_info)
{
    int r = http_perform(req);

    if (ret_info)
        *ret_info = req->info;
    return r;
}

int http_get_buf(const char *url, unsigned timeout_ms, struct buf *body, struct http_info *ret_info)
{
    struct http_req req = {.method = HTTP_GET, .url = url, .timeout_ms = timeout_ms};

    req.resp.kind = HTTP_SINK_BUF;
    req.resp.buf = body;
    return http_simple(&req, ret_info);
}

int http_get_fd(const char *url, unsigned timeout_ms, int fd, struct http_info *ret_info)
{
    struct http_req req = {.method = HTTP_GET, .url = url, .timeout_ms = timeout_ms};

    req.resp.kind = HTTP_SINK_FD;
    req.resp.fd = fd;
    return http_simple(&req, ret_info);
}

int http_get_cb(const char *url, unsigned timeout_ms, http_sink_fn fn, void *arg,
                struct http_info *ret_info)
{
    struct http_req req = {.method = HTTP_GET, .url = url, .timeout_ms = timeout_ms};

    req.resp.kind = HTTP_SINK_CB;
    req.resp.fn = fn;
    req.resp.arg = arg;
    return http_simple(&req, ret_info);
}

int http_put_mem(const char *url, unsigned timeout_ms, const void *data, size_t len,
                 const char *content_md5, struct http_info *ret_info)
{
    struct http_req req = {
        .method = HTTP_PUT, .url = url, .timeout_ms = timeout_ms, .content_md5 = content_md5};

    req.body.kind = HTTP_BODY_MEM;
    req.body.mem = data;
    req.body.len = (int64_t) len;
    return http_simple(&req, ret_info);
}

int http_put_fd(const char *url, unsigned timeout_ms, int fd, off_t off, uint64_t len,
                const char *content_md5, struct http_info *ret_info)
{
    struct http_req req = {
        .method = HTTP_PUT, .url = url, .timeout_ms = timeout_ms, .content_md5 = content_md5};

    if (len > INT64_MAX)
        return -EINVAL;
    req.body.kind = HTTP_BODY_FD;
    req.body.fd = fd;
    req.body.off = off;
    req.body.len = (int64_t) len;
    return http_simple(&req, ret_info);
}

int http_delete(const char *url, unsigned timeout_ms, struct http_info *ret_info)
{
    struct http_req req = {.method = HTTP_DELETE, .url = url, .timeout_ms = timeout_ms};

    return http_simple(&req, ret_info);
}

int http_head(const char *url, unsigned timeout_ms, struct http_info *ret_info)
{
    struct http_req req = {.method = HTTP_HEAD, .url = url, .timeout_ms = timeout_ms};

    return http_simple(&req, ret_info);
}
