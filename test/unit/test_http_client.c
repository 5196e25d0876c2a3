/* test/unit/test_http_client.c — common/http_client.c against a real HTTP/1.1 server
 * (http_test_server.py): every call, keep-alive reuse, bounds, timeouts, parallel requests. */
#include "buf.h"
#include "check.h"
#include "digest.h"
#include "http_client.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char base[64];
static pid_t server_pid = -1;
static int server_stdin = -1;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Starts the Python server and reads "port N" from it (bounded wait). */
static int server_start(void)
{
    const char *src = getenv("STF_SRC");
    char script[1024], line[64] = "";
    int in[2], out[2], port = 0;
    size_t n = 0;

    snprintf(script, sizeof(script), "%s/test/unit/http_test_server.py", src ? src : ".");
    if (pipe(in) < 0 || pipe(out) < 0)
        return -1;
    server_pid = fork();
    if (server_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("python3", "python3", script, (char *) NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    server_stdin = in[1];
    while (n < sizeof(line) - 1 && !strchr(line, '\n')) {
        struct pollfd p = {out[0], POLLIN, 0};
        ssize_t r;

        if (poll(&p, 1, 15000) <= 0)
            break;
        r = read(out[0], line + n, sizeof(line) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t) r;
        line[n] = '\0';
    }
    close(out[0]);
    if (sscanf(line, "port %d", &port) != 1)
        return -1;
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    return 0;
}

static void server_stop(void)
{
    int status;

    if (server_pid <= 0)
        return;
    close(server_stdin);
    kill(server_pid, SIGTERM);
    for (int i = 0; i < 250; i++) {
        if (waitpid(server_pid, &status, WNOHANG) == server_pid)
            return;
        usleep(20000);
    }
    kill(server_pid, SIGKILL);
    waitpid(server_pid, &status, 0);
}

static const char *url(const char *path)
{
    static __thread char u[256];

    snprintf(u, sizeof(u), "%s%s", base, path);
    return u;
}

static bool is_pattern(const char *p, size_t n, size_t start)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) p[i] != (unsigned char) ((start + i) % 251))
            return false;
    return true;
}

static long conns(void)
{
    struct buf b;
    long n = -1;

    buf_init(&b, 64);
    if (http_get_buf(url("/conns"), 2000, &b, NULL) == 200)
        n = strtol(b.ptr, NULL, 10);
    buf_release(&b);
    return n;
}

static void md5_b64(const void *data, size_t len, char out[32])
{
    struct md5_ctx *c = md5_new();
    uint8_t d[16];

    md5_update(c, data, len);
    md5_final(c, d);
    md5_free(c);
    EVP_EncodeBlock((unsigned char *) out, d, 16);
}

static void test_get(void)
{
    struct http_info info;
    struct buf b;
    long c0;
    int r;

    buf_init(&b, 1 << 20);
    r = http_get_buf(url("/bytes/100000"), 5000, &b, &info);
    CHECK(r == 200 && b.len == 100000 && is_pattern(b.ptr, b.len, 0), "GET into a buf");
    CHECK_STR(info.etag, "\"bytes-100000\"", "ETag");
    CHECK_STR(info.last_modified, "Wed, 21 Oct 2015 07:28:00 GMT", "Last-Modified");
    CHECK_STR(info.content_type, "application/x-test", "Content-Type");
    CHECK(info.content_length == 100000, "Content-Length");
    buf_release(&b);

    buf_init(&b, 1000);
    r = http_get_buf(url("/bytes/2000"), 5000, &b, &info);
    CHECK(r == -E2BIG && info.status == 0, "body over the buf's max: -E2BIG");
    buf_release(&b);

    buf_init(&b, 1000);
    r = http_get_buf(url("/status/503"), 5000, &b, &info);
    CHECK(r == 503 && b.ptr && strcmp(b.ptr, "error body 503") == 0,
          "a buf receives error bodies too");
    buf_release(&b);

    c0 = conns();
    for (int i = 0; i < 20; i++)
        http_head(url("/bytes/10"), 2000, NULL);
    CHECK(c0 > 0 && conns() == c0, "21 requests on one kept-alive connection (%ld)", c0);
}

static int count_cb(void *arg, const void *data, size_t len)
{
    size_t *n = arg;

    (void) data;
    *n += len;
    return *n > 50000 ? -ECANCELED : 0;
}

static void test_get_fd_cb(void)
{
    char path[] = "/tmp/stf-http-XXXXXX";
    int fd = mkstemp(path);
    struct http_req req = {.method = HTTP_GET, .timeout_ms = 5000};
    struct stat st;
    char *data;
    size_t n = 0;
    int r;

    unlink(path);
    r = http_get_fd(url("/bytes/300000"), 5000, fd, NULL);
    fstat(fd, &st);
    data = malloc(300000);
    CHECK(r == 200 && st.st_size == 300000 && pread(fd, data, 300000, 0) == 300000 &&
              is_pattern(data, 300000, 0),
          "GET streamed into an fd");
    free(data);

    CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0, "truncate");
    req.url = url("/status/500");
    req.resp.kind = HTTP_SINK_FD;
    req.resp.fd = fd;
    r = http_perform(&req);
    fstat(fd, &st);
    CHECK(r == 500 && st.st_size == 0, "an error body is not written into the fd");
    CHECK_STR(req.err_body, "error body 500", "error body kept");
    close(fd);

    r = http_get_cb(url("/bytes/200000"), 5000, count_cb, &n, NULL);
    CHECK(r == -ECANCELED && n > 50000 && n < 200000, "callback abort returns its error");
}

static void test_put_delete(void)
{
    char path[] = "/tmp/stf-http-XXXXXX";
    int fd = mkstemp(path);
    char *data = malloc(1 << 20), md5[32];
    struct http_info info;
    struct buf b;
    int r;

    unlink(path);
    for (size_t i = 0; i < (1 << 20); i++)
        data[i] = (char) (i % 251);
    CHECK(fd >= 0 && write(fd, data, 1 << 20) == 1 << 20, "test file");

    md5_b64("hello", 5, md5);
    r = http_put_mem(url("/store/m"), 5000, "hello", 5, md5, &info);
    CHECK(r == 201, "PUT from memory with Content-MD5");
    CHECK_STR(info.etag, "\"5d41402abc4b2a76b9719d911017c592\"", "ETag of the stored body");
    r = http_put_mem(url("/store/m2"), 5000, "hellO", 5, md5, NULL);
    CHECK(r == 400, "wrong Content-MD5 rejected by the server");
    r = http_put_mem(url("/store/empty"), 5000, "", 0, NULL, &info);
    CHECK(r == 201 && strcmp(info.etag, "\"d41d8cd98f00b204e9800998ecf8427e\"") == 0,
          "zero-length PUT");

    md5_b64(data + 1000, 500000, md5);
    r = http_put_fd(url("/store/f"), 5000, fd, 1000, 500000, md5, NULL);
    CHECK(r == 201, "PUT from an fd range with Content-MD5");
    buf_init(&b, 1 << 20);
    r = http_get_buf(url("/store/f"), 5000, &b, NULL);
    CHECK(r == 200 && b.len == 500000 && is_pattern(b.ptr, b.len, 1000), "range stored exactly");
    buf_release(&b);
    r = http_put_fd(url("/store/short"), 5000, fd, (1 << 20) - 10, 100, NULL, NULL);
    CHECK(r == -EIO, "fd shorter than announced: -EIO");

    r = http_head(url("/store/f"), 5000, &info);
    CHECK(r == 200 && info.content_length == 500000, "HEAD gives Content-Length");
    CHECK(http_delete(url("/store/f"), 5000, NULL) == 204, "DELETE");
    CHECK(http_delete(url("/store/f"), 5000, NULL) == 404, "DELETE again: 404");
    CHECK(http_head(url("/store/f"), 5000, NULL) == 404, "HEAD after delete: 404");
    close(fd);
    free(data);
}

struct chunks {
    int left;
};

static ssize_t chunk_src(void *arg, void *data, size_t len)
{
    struct chunks *c = arg;

    if (c->left == 0)
        return 0;
    c->left--;
    if (len > 1000)
        len = 1000;
    memset(data, 'z', len);
    return (ssize_t) len;
}

static void test_chunked(void)
{
    struct chunks c = {5};
    struct http_req req = {.method = HTTP_PUT, .timeout_ms = 5000};
    struct http_info info;

    req.url = url("/store/chunked");
    req.body.kind = HTTP_BODY_CB;
    req.body.fn = chunk_src;
    req.body.arg = &c;
    req.body.len = -1;
    CHECK(http_perform(&req) == 201, "chunked PUT from a callback");
    CHECK(http_head(url("/store/chunked"), 5000, &info) == 200 && info.content_length == 5000,
          "chunked body stored whole");
}

static void test_errors(void)
{
    uint64_t t0 = now_ms();
    struct http_req req = {.method = HTTP_GET, .url = url("/slow/3000"), .timeout_ms = 300};
    int r;

    r = http_perform(&req);
    CHECK(r == -ETIMEDOUT && now_ms() - t0 < 2000, "timeout honoured (%d)", r);
    CHECK(req.errmsg[0] && !strchr(req.errmsg, '\n'), "one-line error: %s", req.errmsg);
    CHECK(http_get_buf("http://127.0.0.1:1/", 2000, NULL, NULL) == -EINVAL,
          "buf sink without a buf: -EINVAL");
    CHECK(http_head("http://127.0.0.1:1/", 2000, NULL) == -ECONNREFUSED, "refused");
    CHECK(http_head("ftp://127.0.0.1/", 2000, NULL) == -EINVAL, "non-http url refused");
    CHECK(http_head(url("/bytes/1"), 2000, NULL) == 200, "handle still good after errors");
}

static void test_multi(void)
{
    struct http_req reqs[10];
    struct buf bodies[10];
    uint64_t t0;
    long c0;
    int r;

    memset(reqs, 0, sizeof(reqs));
    for (int i = 0; i < 10; i++) {
        buf_init(&bodies[i], 1000);
        reqs[i].method = HTTP_GET;
        reqs[i].url = strdup(url("/slow/1000"));
        reqs[i].timeout_ms = 15000;
        reqs[i].resp.kind = HTTP_SINK_BUF;
        reqs[i].resp.buf = &bodies[i];
    }
    free((char *) reqs[8].url);
    reqs[8].url = strdup("http://127.0.0.1:1/");
    free((char *) reqs[9].url);
    reqs[9].url = strdup(url("/slow/5000"));
    reqs[9].timeout_ms = 600;
    t0 = now_ms();
    r = http_multi_run(reqs, 10, 20000);
    for (int i = 0; r != 8 && i < 10; i++)
        printf("# request %d: err %d status %ld %s\n", i, reqs[i].err, reqs[i].info.status,
               reqs[i].errmsg);
    CHECK(r == 8, "8 of 10 answered (%d)", r);
    CHECK(now_ms() - t0 < 4000, "ran in parallel (%llu ms for 8 x 1000 ms)",
          (unsigned long long) (now_ms() - t0));
    bool all = true;
    for (int i = 0; i < 8; i++)
        all = all && reqs[i].err == 0 && reqs[i].info.status == 200 &&
              strcmp(bodies[i].ptr, "slow") == 0;
    CHECK(all, "every answer complete");
    CHECK(reqs[8].err == -ECONNREFUSED, "refused one reported");
    CHECK(reqs[9].err == -ETIMEDOUT, "its own timeout reported");

    for (int i = 0; i < 10; i++) {
        free((char *) reqs[i].url);
        reqs[i].url = strdup(url("/slow/3000"));
        reqs[i].timeout_ms = 10000;
        buf_reset(&bodies[i]);
    }
    t0 = now_ms();
    r = http_multi_run(reqs, 2, 300);
    CHECK(r == 0 && reqs[0].err == -ETIMEDOUT && reqs[1].err == -ETIMEDOUT && now_ms() - t0 < 1500,
          "overall timeout stops every request");

    for (int i = 0; i < 4; i++) {
        free((char *) reqs[i].url);
        reqs[i].url = strdup(url("/bytes/10"));
    }
    r = http_multi_run(reqs, 4, 5000);
    c0 = conns();
    r += http_multi_run(reqs, 4, 5000);
    CHECK(r == 8 && conns() == c0, "second parallel run reuses the connections");
    CHECK(http_multi_run(reqs, 0, 100) == 0, "zero requests");
    for (int i = 0; i < 10; i++) {
        free((char *) reqs[i].url);
        buf_release(&bodies[i]);
    }
}

static void *thread_main(void *arg)
{
    int *ok = arg;
    struct buf b;

    buf_init(&b, 10000);
    for (int i = 0; i < 20; i++) {
        buf_reset(&b);
        if (http_get_buf(url("/bytes/5000"), 5000, &b, NULL) != 200 || b.len != 5000 ||
            !is_pattern(b.ptr, b.len, 0))
            *ok = 0;
    }
    buf_release(&b);
    http_thread_cleanup();
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[4];
    int ok[4] = {1, 1, 1, 1};

    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, thread_main, &ok[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(ok[0] && ok[1] && ok[2] && ok[3], "4 threads x 20 GETs, each on its own handle");
}

int main(void)
{
    CHECK(http_global_init() == 0, "global init");
    CHECK(http_global_init() == 0, "global init is idempotent");
    if (server_start() < 0) {
        printf("Bail out! test server did not start\n");
        server_stop();
        return 1;
    }
    test_get();
    test_get_fd_cb();
    test_put_delete();
    test_chunked();
    test_errors();
    test_multi();
    test_threads();
    server_stop();
    http_global_cleanup();
    return check_done();
}
