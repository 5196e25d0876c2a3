/* storaged/server.c — libmicrohttpd setup (poll thread pool, limits), the request lifecycle
 * (raw-target check, routing, body streaming, completion, per-request log) and quiescing. */
#include "server.h"

#include "addr.h"
#include "blob_store.h"
#include "log.h"
#include "offload.h"
#include "response.h"
#include "router.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A body sent with a request that takes none (GET with a body...) is read and dropped up to
 * this many bytes; beyond, the connection is closed. */
#define SD_DISCARD_MAX (1024 * 1024)
#define SD_OFFLOAD_MAX 32 /* offload threads (pulls running at once) */

struct sd_server {
    struct MHD_Daemon *mhd;
    struct blob_store *store;
    struct sd_offload *offload;
    atomic_uint in_flight;
    atomic_bool stopping;
    char addr[80];
};

/* While the daemon starts, MHD's messages (bind errors) are what the operator needs. */
static atomic_bool sd_starting;

static const char *const sd_method_names[SD_METHOD_COUNT] = {
    [SD_GET] = "GET",       [SD_HEAD] = "HEAD", [SD_PUT] = "PUT",
    [SD_DELETE] = "DELETE", [SD_POST] = "POST",
};

static int sd_method_parse(const char *m)
{
    for (int i = 0; i < SD_METHOD_COUNT; i++) {
        if (strcmp(m, sd_method_names[i]) == 0)
            return i;
    }
    return -1;
}

__attribute__((format(printf, 2, 0)))
static void sd_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void) cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (msg[i] == '"' || (unsigned char) msg[i] < 0x20)
            msg[i] = '\'';
    }
    if (atomic_load(&sd_starting))
        log_error("event=mhd msg=\"%s\"", msg);
    else if (strstr(msg, "limit"))
        log_warn("event=mhd msg=\"%s\"", msg);
    else
        log_debug("event=mhd msg=\"%s\"", msg);
}

/* Called by MHD with the request target as received, before it decodes %xx. */
static void *sd_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct sd_server *srv = cls;
    struct sd_request *rq = calloc(1, sizeof(*rq));

    if (!rq)
        return NULL;
    rq->srv = srv;
    rq->store = srv->store;
    rq->conn = conn;
    clock_gettime(CLOCK_MONOTONIC, &rq->started);
    rq->raw_len = strlen(uri);
    rq->raw_refusal = router_check_target(uri, rq->raw_len);
    atomic_fetch_add(&srv->in_flight, 1);
    return rq;
}

static const char *sd_toe_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        return "ok";
    case MHD_REQUEST_TERMINATED_WITH_ERROR:
        return "error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        return "read_error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        return "client_abort";
    }
    return "unknown";
}

/* X-Request-Id from the dispatcher, when it is short and printable, for the log line. */
static const char *sd_request_id(struct sd_request *rq)
{
    const char *id = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = 0;

    if (!id)
        return "-";
    for (; id[n]; n++) {
        if (n >= 64 || id[n] <= 0x20 || id[n] >= 0x7f || id[n] == '"')
            return "-";
    }
    return n ? id : "-";
}

static void sd_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct sd_server *srv = cls;
    struct sd_request *rq = *con_cls;
    struct timespec now;
    bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;

    (void) conn;
    if (!rq)
        return;
    if (rq->state_free)
        rq->state_free(rq, ok);
    if (log_get_level() <= LOG_DEBUG) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        log_debug("event=request method=%s url=%s status=%u body=%" PRIu64 " ms=%.3f end=%s "
                  "req=%s",
                  rq->method_name ? rq->method_name : "-",
                  rq->url && !rq->raw_refusal ? rq->url : "-", rq->status, rq->body_bytes,
                  (double) (now.tv_sec - rq->started.tv_sec) * 1e3 +
                      (double) (now.tv_nsec - rq->started.tv_nsec) / 1e6,
                  sd_toe_name(toe), rq->url ? sd_request_id(rq) : "-");
    }
    free(rq);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

/* The first call: headers are complete, no body yet. Early refusals are answered now (the
 * connection then closes, which is right for a request whose body we will not read); a
 * request that passes is answered on a later call, so the connection stays alive. */
static enum MHD_Result sd_first_call(struct sd_request *rq, const char *url, const char *method,
                                     const char *version)
{
    const struct sd_method_ops *ops;
    const char *reason = NULL;
    unsigned status;
    int m;

    rq->url = url;
    m = sd_method_parse(method);
    if (m < 0)
        return sd_reply_text(rq, MHD_HTTP_NOT_IMPLEMENTED, "method not implemented");
    rq->method = (enum sd_method) m;
    rq->method_name = sd_method_names[m];
    /* MHD cuts the target at a raw NUL byte: the version string follows the whole target. */
    if (!rq->raw_refusal && version > url && (size_t) (version - url) - 1 != rq->raw_len &&
        (size_t) (version - url) < 2 * ROUTER_TARGET_MAX)
        rq->raw_refusal = "NUL byte in request target";
    if (rq->raw_refusal) {
        log_warn("event=bad_target method=%s reason=\"%s\"", rq->method_name, rq->raw_refusal);
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, rq->raw_refusal);
    }
    status = router_route(rq, &reason);
    if (status)
        return sd_reply_text(rq, status, reason);
    ops = &rq->ep->ops[rq->method];
    if (!ops->end) {
        struct MHD_Response *resp;
        char allow[64] = "";

        for (int i = 0; i < SD_METHOD_COUNT; i++) {
            if (rq->ep->ops[i].end) {
                strcat(allow, allow[0] ? ", " : "");
                strcat(allow, sd_method_names[i]);
            }
        }
        resp = MHD_create_response_from_buffer(19, "method not allowed\n", MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        return sd_reply(rq, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
    }
    if (ops->begin)
        return ops->begin(rq);
    return MHD_YES;
}

static enum MHD_Result sd_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct sd_request *rq = *con_cls, oom;
    const struct sd_method_ops *ops;

    if (!rq) { /* the request could not be allocated */
        memset(&oom, 0, sizeof(oom));
        oom.srv = cls;
        oom.conn = conn;
        oom.url = url;
        return sd_reply_text(&oom, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    }
    if (rq->calls++ == 0)
        return sd_first_call(rq, url, method, version);
    if (rq->responded) { /* answered early: drop whatever body still arrives */
        *upload_data_size = 0;
        return MHD_YES;
    }
    ops = &rq->ep->ops[rq->method];
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;

        rq->body_bytes += n;
        *upload_data_size = 0;
        if (ops->body)
            return ops->body(rq, upload_data, n) < 0 ? MHD_NO : MHD_YES;
        return rq->body_bytes > SD_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    return ops->end(rq);
}

static int sd_format_addr(struct MHD_Daemon *mhd, struct sockaddr_storage *ss, char *out,
                          size_t outlen)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT);
    uint16_t port = info ? info->port : 0;

    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *) ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *) ss)->sin_port = htons(port);
    return addr_format((struct sockaddr *) ss, out, outlen);
}

int sd_server_start(struct blob_store *store, const struct sd_server_opts *o,
                    struct sd_server **ret, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct sd_server *s;
    /* poll, not epoll: with MHD 0.9.75's edge-triggered epoll, a client that closes while body
     * bytes are unread (an aborted upload) leaves its request in flight forever (no timeout),
     * so SIGTERM never drains. Found by the dispatcher's tests; level-triggered poll sees it. */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    int r;

    r = addr_parse(o->listen, &ss, &sslen);
    if (r < 0) {
        snprintf(err, errlen, "bad listen address '%s' (HOST:PORT with a numeric host)", o->listen);
        return r;
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->store = store;
    /* A pull waits on the peer and the disk much of the time: twice the CPUs keeps every
     * pull repaird sends (4 by default, at most 16) running at once on a 2-CPU machine; more
     * than SD_OFFLOAD_MAX would only be idle threads. */
    r = sd_offload_new(o->threads < SD_OFFLOAD_MAX / 2 ? 2 * o->threads : SD_OFFLOAD_MAX,
                       &s->offload);
    if (r < 0) {
        snprintf(err, errlen, "cannot start the offload threads: %s", strerror(-r));
        free(s);
        return r;
    }
    atomic_store(&sd_starting, true);
    errno = 0;
    /* The logger goes first, so that MHD reports problems with the other options through it. */
    /* One option and its value per line. */
    /* clang-format off */
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, sd_access, s,
                              MHD_OPTION_EXTERNAL_LOGGER, sd_mhd_log, NULL,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
                              MHD_OPTION_THREAD_POOL_SIZE, (unsigned) o->threads,
                              MHD_OPTION_CONNECTION_LIMIT, o->limits.max_connections,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                              o->limits.max_connections_per_ip,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                              (size_t) o->limits.connection_memory,
                              MHD_OPTION_CONNECTION_TIMEOUT, o->limits.idle_timeout_s,
                              MHD_OPTION_LISTEN_BACKLOG_SIZE, o->limits.listen_backlog,
                              MHD_OPTION_URI_LOG_CALLBACK, sd_uri_log, s,
                              MHD_OPTION_NOTIFY_COMPLETED, sd_completed, s,
                              MHD_OPTION_END);
    /* clang-format on */
    atomic_store(&sd_starting, false);
    if (!s->mhd) {
        r = errno ? -errno : -EADDRNOTAVAIL;
        snprintf(err, errlen, "cannot listen on %s: %s", o->listen, strerror(-r));
        sd_offload_stop(s->offload);
        free(s);
        return r;
    }
    if (sd_format_addr(s->mhd, &ss, s->addr, sizeof(s->addr)) < 0)
        snprintf(s->addr, sizeof(s->addr), "%s", o->listen);
    *ret = s;
    return 0;
}

struct sd_offload *sd_server_offload(struct sd_server *s)
{
    return s->offload;
}

const char *sd_server_address(const struct sd_server *s)
{
    return s->addr;
}

void sd_server_quiesce(struct sd_server *s)
{
    MHD_socket fd;

    atomic_store(&s->stopping, true);
    fd = MHD_quiesce_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

bool sd_server_stopping(const struct sd_server *s)
{
    return s && atomic_load(&((struct sd_server *) s)->stopping);
}

unsigned sd_server_in_flight(const struct sd_server *s)
{
    return atomic_load(&((struct sd_server *) s)->in_flight);
}

void sd_server_free(struct sd_server *s)
{
    if (!s)
        return;
    /* First: MHD 0.9.75 aborts when stopped with a connection still suspended. */
    sd_offload_stop(s->offload);
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    free(s);
}
