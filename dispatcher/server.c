/* dispatcher/server.c — libmicrohttpd set-up (thread pool + poll, suspend/resume), the shared
 * SO_REUSEPORT listening socket, per-request life cycle (creation, routing, completion with
 * metrics and handler cleanup) and the graceful stop. */
#include "server.h"

#include "addr.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "router.h"
#include "upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SERVER_IDLE_GRACE_MS 1000 /* after the last in-flight request, for idle keep-alives */

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool server_draining(struct server *s)
{
    return atomic_load_explicit(&s->draining, memory_order_relaxed);
}

/* The client's X-Request-Id when it is short and printable (a front proxy's $request_id),
 * else a fresh one: a per-process random prefix and a counter. */
static void request_id(struct request *req)
{
    static _Atomic uint64_t seq;
    static uint32_t prefix;
    const char *id = req_header(req, "X-Request-Id");
    size_t n = 0;

    for (; id && id[n]; n++) {
        if (n >= 64 || id[n] <= 0x20 || id[n] >= 0x7f || id[n] == '"')
            break;
    }
    if (id && n > 0 && !id[n]) {
        memcpy(req->rid, id, n + 1);
        return;
    }
    if (!prefix)
        prefix = (uint32_t) getpid() * 2654435761u ^ (uint32_t) now_us();
    snprintf(req->rid, sizeof(req->rid), "%08x%08llx", prefix,
             (unsigned long long) atomic_fetch_add(&seq, 1));
}

static enum req_method method_of(const char *m)
{
    static const char *const names[] = {"GET", "HEAD", "PUT", "DELETE", "MOVE", "POST"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(m, names[i]) == 0)
            return (enum req_method) i;
    }
    return RM_OTHER;
}

/* Allocates the request as soon as its target is read, to record the target's raw length:
 * MHD cuts the target at a raw NUL byte, which on_access() detects by that length. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct request *req = calloc(1, sizeof(*req));

    if (!req)
        return NULL;
    req->srv = cls;
    req->conn = conn;
    req->raw_len = strlen(uri);
    return req;
}

/* The first access-handler call: the request is counted and routed. */
static void on_first_access(struct server *s, struct request *req, const char *url,
                            const char *method, const char *version)
{
    req->method = method;
    req->m = method_of(method);
    req->start_us = now_us();
    request_id(req);
    atomic_fetch_add(&s->inflight, 1);
    metrics_gauge_add(MG_INFLIGHT, 1);
    /* the version string follows the whole target as received */
    if (version > url && (size_t) (version - url) - 1 != req->raw_len) {
        router_refuse(req, 400, "NUL byte in request target");
        return;
    }
    if (strcmp(version, MHD_HTTP_VERSION_1_1) == 0 && !req_header(req, MHD_HTTP_HEADER_HOST)) {
        router_refuse(req, 400, "missing Host header (HTTP/1.1)");
        return;
    }
    router_route(req, url);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct server *s = cls;
    struct request *req = *con_cls;

    if (!req)
        return MHD_NO; /* out of memory in on_uri() */
    (void) conn;
    if (req->calls == 0)
        on_first_access(s, req, url, method, version);
    req->calls++;
    if (*upload_data_size > 0) {
        req->bytes_in += *upload_data_size;
        metrics_inc(MC_BYTES_IN, *upload_data_size);
    }
    return req->handler(req, upload_data, upload_data_size);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;
    struct request *req = *con_cls;
    int64_t usec;

    (void) conn;
    if (!req)
        return;
    *con_cls = NULL;
    if (req->calls == 0) { /* the target was read, the rest of the head was not */
        free(req);
        return;
    }
    usec = now_us() - req->start_us;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_info("event=request_aborted rid=%s method=%s bucket=%s status=%u reason=%d", req->rid,
                 req->method, req->bucket, req->status, (int) toe);
    metrics_request(req->method, req->status ? req->status : 499, (uint64_t) usec);
    log_debug("event=request rid=%s method=%s bucket=%s status=%u usec=%lld in=%llu", req->rid,
              req->method, req->bucket, req->status, (long long) usec,
              (unsigned long long) req->bytes_in);
    if (req->release)
        req->release(req, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    free(req->object);
    free(req);
    atomic_fetch_sub(&s->inflight, 1);
    metrics_gauge_add(MG_INFLIGHT, -1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void) cls;
    (void) conn;
    (void) socket_context;
    metrics_gauge_add(MG_CONNECTIONS, toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX in paths and query values. A decoded NUL would silently cut a C string short, so
 * it (like the other C0 controls) becomes 0x01, which the name checks refuse. */
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *w = s;

    (void) cls;
    (void) conn;
    for (const char *r = s; *r; r++) {
        int hi, lo;

        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
            unsigned char c = (unsigned char) (hi * 16 + lo);

            *w++ = (char) (c == 0 ? 1 : c);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t) (w - s);
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    (void) cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    for (char *p = line; *p; p++) {
        if (*p == '"')
            *p = '\'';
    }
    log_debug("event=mhd message=\"%s\"", line);
}

/* A listening socket that other dispatchers may share (SO_REUSEPORT). */
static int open_listener(const char *listen_addr, unsigned backlog, char *ret_addr, size_t ret_len)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, one = 1, r;

    r = addr_parse(listen_addr, &ss, &sl);
    if (r < 0) {
        log_error("event=bad_listen_address addr=%s", listen_addr);
        return r;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *) &ss, sl) < 0 || listen(fd, (int) backlog) < 0) {
        r = -errno;
        log_error("event=listen_failed addr=%s error=\"%s\"", listen_addr, strerror(errno));
        close(fd);
        return r;
    }
    sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *) &ss, &sl) < 0 ||
        addr_format((struct sockaddr *) &ss, ret_addr, ret_len) < 0) {
        r = -errno;
        close(fd);
        return r ? r : -EINVAL;
    }
    return fd;
}

/* Zero-loss rolling restarts need the kernel to hand the connections queued on a closing
 * SO_REUSEPORT socket to the other sockets of the group (Linux >= 5.14). */
static void check_migrate_req(void)
{
    char v[8] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r");

    if (!f)
        return;
    if (fgets(v, sizeof(v), f) && v[0] == '0')
        log_info("event=reuseport_note tcp_migrate_req=0 hint=\"set net.ipv4.tcp_migrate_req=1 "
                 "so that a rolling restart resets no queued connection\"");
    fclose(f);
}

/* MHD splits max_connections among its threads: at most one thread per connection. */
static unsigned pool_size(const struct cfg *cfg)
{
    unsigned threads = cfg->dispatcher.threads ? cfg->dispatcher.threads : 1;
    unsigned max = cfg->dispatcher.limits.max_connections;

    if (threads <= max)
        return threads;
    log_warn("event=threads_clamped threads=%u max_connections=%u", threads, max);
    return max;
}

/* Warns when the open-file limit cannot hold max_connections client sockets. */
static void check_nofile(unsigned max_connections)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t) max_connections)
        log_warn("event=nofile_below_max_connections nofile=%llu max_connections=%u "
                 "hint=\"raise the open-file limit (ulimit -n, LimitNOFILE=)\"",
                 (unsigned long long) rl.rlim_cur, max_connections);
}

int server_start(struct server *s)
{
    /* poll, not epoll: with MHD 0.9.75's edge-triggered epoll, a client that closes while
     * body bytes are still unread leaves its connection (and request) behind until the idle
     * timeout, which stalls a graceful stop; level-triggered poll sees the close. */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    const struct cfg_limits *lim = &s->cfg->dispatcher.limits;
    unsigned threads = pool_size(s->cfg);
    char limits[160];

    check_nofile(lim->max_connections);
    s->listen_fd =
        open_listener(s->cfg->dispatcher.listen, lim->listen_backlog, s->addr, sizeof(s->addr));
    if (s->listen_fd < 0)
        return s->listen_fd;
    /* clang-format off */
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s,
                              MHD_OPTION_LISTEN_SOCKET, (MHD_socket) s->listen_fd,
                              MHD_OPTION_THREAD_POOL_SIZE, threads,
                              MHD_OPTION_CONNECTION_LIMIT, lim->max_connections,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, lim->max_connections_per_ip,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) lim->connection_memory,
                              MHD_OPTION_CONNECTION_TIMEOUT, lim->idle_timeout_s,
                              MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                              MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, s,
                              MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                              MHD_OPTION_END);
    /* clang-format on */
    if (!s->mhd) {
        log_error("event=http_start_failed addr=%s", s->addr);
        close(s->listen_fd);
        s->listen_fd = -1;
        return -EIO;
    }
    log_info("event=listening addr=%s threads=%u %s", s->addr, threads,
             cfg_limits_format(lim, limits, sizeof(limits)));
    check_migrate_req();
    return 0;
}

/* Takes the connections already waiting in the socket's queue, so that none is reset when the
 * socket leaves the SO_REUSEPORT group. */
static void adopt_backlog(struct server *s, int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int c = accept4(fd, (struct sockaddr *) &ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (c < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        MHD_add_connection(s->mhd, c, (struct sockaddr *) &ss, sl);
    }
}

void server_stop(struct server *s, unsigned drain_ms)
{
    int64_t deadline, idle_deadline;
    int fd;

    if (!s->mhd)
        return;
    atomic_store(&s->draining, true);
    fd = MHD_quiesce_daemon(s->mhd);
    if (fd >= 0) {
        adopt_backlog(s, fd);
        /* leaves the SO_REUSEPORT group at once; the fd stays open until MHD stops */
        shutdown(fd, SHUT_RDWR);
    }
    log_info("event=draining inflight=%lld", (long long) atomic_load(&s->inflight));
    deadline = now_us() + (int64_t) drain_ms * 1000;
    while (atomic_load(&s->inflight) > 0 && now_us() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
    /* idle keep-alive connections: a request that arrives on one now is still served (with
     * Connection: close); wait briefly for the clients to close them */
    idle_deadline = now_us() + SERVER_IDLE_GRACE_MS * 1000;
    for (;;) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        struct timespec ts = {0, 5 * 1000 * 1000};

        if ((!info || info->num_connections == 0) && atomic_load(&s->inflight) == 0)
            break;
        if (now_us() >= (atomic_load(&s->inflight) > 0 ? deadline : idle_deadline))
            break;
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&s->inflight) > 0) {
        /* requests still waiting for storages: end their transfers so that MHD can stop
         * (a suspended connection would keep MHD_stop_daemon from returning) */
        log_warn("event=drain_timeout inflight=%lld", (long long) atomic_load(&s->inflight));
        upstream_abort_all(s->up);
        deadline = now_us() + 2000000;
        while (atomic_load(&s->inflight) > 0 && now_us() < deadline) {
            struct timespec ts = {0, 5 * 1000 * 1000};

            nanosleep(&ts, NULL);
        }
    }
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
    log_info("event=stopped");
}
