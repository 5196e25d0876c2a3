/* common/http_client.h — the HTTP client every program shares (libcurl): synchronous calls on a
 * per-thread keep-alive handle, and parallel requests on a per-thread curl multi handle. */
#ifndef STF_HTTP_CLIENT_H
#define STF_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct buf;

#define HTTP_DEFAULT_TIMEOUT_MS 30000u
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 3000u

/* Ownership and threads:
 * - Call http_global_init() once in main() before starting threads (the first request calls
 *   it too, but curl_global_init is not safe to race with other threads' start-up).
 * - Each thread lazily gets its own CURL easy handle (for the synchronous calls) and CURLM
 *   multi handle (for http_multi_run); each keeps its own connection cache, so successive
 *   requests from one thread to the same storage reuse the TCP connection (keep-alive).
 *   They are freed when the thread exits, or explicitly by http_thread_cleanup().
 * - Every pointer inside a struct http_req (url, headers, body, sinks) is borrowed: it must
 *   stay valid for the duration of the call; nothing is kept afterwards.
 * - No signals are used (CURLOPT_NOSIGNAL), proxies from the environment are ignored, redirects
 *   are not followed, only http:// and https:// urls are accepted. */
int http_global_init(void);
void http_global_cleanup(void); /* after every other thread stopped using HTTP */
void http_thread_cleanup(void); /* frees the calling thread's handles (closes its connections) */

enum http_method { HTTP_GET = 0, HTTP_HEAD, HTTP_PUT, HTTP_POST, HTTP_DELETE };

/* Receives response body bytes; returns 0 to continue or -errno to abort the transfer (the
 * request then fails with that error). */
typedef int (*http_sink_fn)(void *arg, const void *data, size_t len);
/* Supplies request body bytes: fills up to len bytes of data and returns how many (0 = end),
 * or -errno to abort the transfer. */
typedef ssize_t (*http_source_fn)(void *arg, void *data, size_t len);

/* Where a request body comes from (PUT, POST). */
enum http_body_kind {
    HTTP_BODY_NONE = 0, /* no body (a PUT/POST then sends Content-Length: 0) */
    HTTP_BODY_MEM,      /* body.mem, body.len bytes */
    HTTP_BODY_FD,       /* body.len bytes of body.fd read with pread from body.off */
    HTTP_BODY_CB,       /* body.fn; body.len bytes, or chunked when body.len < 0 */
};

/* Where a response body goes. A struct buf receives the body whatever the status (so error
 * texts can be read); an fd or a callback receives only 2xx bodies, and the start of any
 * other body is kept in http_req.err_body. */
enum http_sink_kind {
    HTTP_SINK_DISCARD = 0,
    HTTP_SINK_BUF, /* resp.buf (bounded by its max: a longer body fails with -E2BIG) */
    HTTP_SINK_FD,  /* resp.fd, written fully at its current offset */
    HTTP_SINK_CB,  /* resp.fn(resp.arg, ...) */
};

/* The selected response headers. */
struct http_info {
    long status;            /* HTTP status, 0 when no response arrived */
    int64_t content_length; /* Content-Length, -1 when absent */
    char etag[130];         /* ETag as sent (quotes included), "" when absent */
    char last_modified[64]; /* Last-Modified as sent, "" when absent */
    char content_type[128]; /* Content-Type as sent, "" when absent */
};

/* One request. Zero-initialise, set the inputs, run it with http_perform() or
 * http_multi_run(), then read the results. */
struct http_req {
    /* inputs */
    enum http_method method;
    const char *url;
    unsigned timeout_ms;         /* whole request; 0 = HTTP_DEFAULT_TIMEOUT_MS */
    unsigned connect_timeout_ms; /* 0 = the smaller of timeout and the default */
    const char *const *headers;  /* extra "Name: value" lines, NULL-terminated, or NULL */
    const char *content_md5;     /* Content-MD5 header value (base64 of the digest), or NULL */
    struct {
        enum http_body_kind kind;
        const void *mem;
        int fd;
        off_t off;
        int64_t len;
        http_source_fn fn;
        void *arg;
    } body;
    struct {
        enum http_sink_kind kind;
        struct buf *buf;
        int fd;
        http_sink_fn fn;
        void *arg;
    } resp;
    /* results */
    int err; /* 0 when a response arrived (any status), else -errno:
              * -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH, -EINVAL (bad url),
              * -E2BIG (body over the buf's max), -ENOMEM, -EIO, or the error a
              * sink/source callback returned */
    struct http_info info;
    uint64_t body_bytes; /* response body bytes received */
    char errmsg[160];    /* one line when err != 0 */
    char err_body[256];  /* start of a non-2xx body for FD/CB sinks, NUL-terminated */
};

/* Runs req on the calling thread's handle. Returns the HTTP status (> 0) or req->err (< 0). */
int http_perform(struct http_req *req);

/* Runs n requests at once on the calling thread's multi handle, each with its own timeout,
 * and returns when all have finished or timeout_ms (0 = no overall limit) has passed; the
 * ones still running then fail with -ETIMEDOUT. Returns the number of requests that got a
 * response, or -ENOMEM/-EIO when they could not be started (then every req->err is set). */
int http_multi_run(struct http_req *reqs, size_t n, unsigned timeout_ms);

/* Synchronous conveniences. Each returns the HTTP status (> 0) or -errno as req->err above,
 * and fills *ret_info when it is non-NULL (status 0 on failure). */
int http_get_buf(const char *url, unsigned timeout_ms, struct buf *body,
                 struct http_info *ret_info);
int http_get_fd(const char *url, unsigned timeout_ms, int fd, struct http_info *ret_info);
int http_get_cb(const char *url, unsigned timeout_ms, http_sink_fn fn, void *arg,
                struct http_info *ret_info);
int http_put_mem(const char *url, unsigned timeout_ms, const void *data, size_t len,
                 const char *content_md5, struct http_info *ret_info);
int http_put_fd(const char *url, unsigned timeout_ms, int fd, off_t off, uint64_t len,
                const char *content_md5, struct http_info *ret_info);
int http_delete(const char *url, unsigned timeout_ms, struct http_info *ret_info);
int http_head(const char *url, unsigned timeout_ms, struct http_info *ret_info);

/* True for 200..299. */
static inline bool http_status_ok(long status)
{
    return status >= 200 && status <= 299;
}

#endif
