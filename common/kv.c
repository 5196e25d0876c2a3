/* common/kv.c — Redis access through hiredis 0.14: url parsing, lazy connect with timeouts,
 * AUTH/SELECT on connect, a reconnect (with one retry on a stale connection) after failures,
 * deferred commands (reply read before the next command), and the subscriber side of pub/sub
 * (poll(2) for messages, so an idle connection is never cut). */
#include "kv.h"

#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define KV_HOST_MAX 255
#define KV_PATH_MAX 107 /* sun_path */

struct kv {
    redisContext *ctx; /* NULL while disconnected */
    char host[KV_HOST_MAX + 1];
    int port;
    char path[KV_PATH_MAX + 1]; /* unix socket, or "" for TCP */
    char *user;                 /* AUTH user (Redis 6 ACL), or NULL */
    char *password;             /* AUTH password, or NULL */
    unsigned db;
    unsigned timeout_ms;
    bool ok;      /* the last call reached Redis */
    bool pending; /* a deferred command's reply is still to be read from ctx */
    char err[256];
};

static int kv_parse_uint(const char *s, size_t len, unsigned max, unsigned *ret)
{
    unsigned long v = 0;

    if (len == 0 || len > 10)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long) (s[i] - '0');
    }
    if (v > max)
        return -ERANGE;
    *ret = (unsigned) v;
    return 0;
}

/* [user:]password@ before the host of a redis:// url ("redis://:secret@host" = password only). */
static int kv_parse_userinfo(struct kv *kv, const char *s, size_t len)
{
    const char *colon = memchr(s, ':', len), *pw = s;
    size_t pwlen = len;

    if (colon) {
        if (colon > s) {
            kv->user = strndup(s, (size_t) (colon - s));
            if (!kv->user)
                return -ENOMEM;
        }
        pw = colon + 1;
        pwlen = len - (size_t) (pw - s);
    }
    kv->password = strndup(pw, pwlen);
    return kv->password ? 0 : -ENOMEM;
}

/* redis://[[user]:password@]HOST[:PORT][/DB] */
static int kv_parse_tcp(struct kv *kv, const char *s, char *err, size_t errlen)
{
    const char *at = strchr(s, '@'), *slash, *host, *colon, *host_end;
    unsigned port = 6379;
    size_t hlen;
    int r;

    slash = strchr(at ? at : s, '/');
    if (at && (!slash || at < slash)) {
        r = kv_parse_userinfo(kv, s, (size_t) (at - s));
        if (r < 0)
            return r;
        s = at + 1;
    }
    slash = strchr(s, '/');
    host = s;
    host_end = slash ? slash : s + strlen(s);
    if (*host == '[') { /* [IPv6]:port */
        const char *close = memchr(host, ']', (size_t) (host_end - host));

        if (!close)
            goto bad;
        colon = close + 1 < host_end && close[1] == ':' ? close + 1 : NULL;
        if (close + 1 != host_end && !colon)
            goto bad;
        host++;
        hlen = (size_t) (close - host);
    } else {
        colon = memchr(host, ':', (size_t) (host_end - host));
        hlen = (size_t) ((colon ? colon : host_end) - host);
    }
    if (hlen == 0 || hlen > KV_HOST_MAX)
        goto bad;
    memcpy(kv->host, host, hlen);
    kv->host[hlen] = '\0';
    if (colon && kv_parse_uint(colon + 1, (size_t) (host_end - colon - 1), 65535, &port) < 0)
        goto bad;
    if (port == 0)
        goto bad;
    kv->port = (int) port;
    if (slash && slash[1] && kv_parse_uint(slash + 1, strlen(slash + 1), 1000000, &kv->db) < 0)
        goto bad;
    return 0;
bad:
    snprintf(err, errlen, "bad redis url: expected redis://HOST:PORT[/DB]");
    return -EINVAL;
}

/* unix:///path/to/sock[?db=N] */
static int kv_parse_unix(struct kv *kv, const char *s, char *err, size_t errlen)
{
    const char *q = strchr(s, '?');
    size_t plen = q ? (size_t) (q - s) : strlen(s);

    if (plen == 0 || s[0] != '/' || plen > KV_PATH_MAX)
        goto bad;
    memcpy(kv->path, s, plen);
    kv->path[plen] = '\0';
    if (q &&
        (strncmp(q, "?db=", 4) != 0 || kv_parse_uint(q + 4, strlen(q + 4), 1000000, &kv->db) < 0))
        goto bad;
    return 0;
bad:
    snprintf(err, errlen, "bad redis url: expected unix:///path/to/redis.sock[?db=N]");
    return -EINVAL;
}

struct kv *kv_open(const char *url, unsigned timeout_ms, char *err, size_t errlen)
{
    struct kv *kv;
    int r;

    kv = calloc(1, sizeof(*kv));
    if (!kv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    kv->timeout_ms = timeout_ms ? timeout_ms : 1000;
    if (!url)
        url = "";
    if (strncmp(url, "redis://", 8) == 0) {
        r = kv_parse_tcp(kv, url + 8, err, errlen);
    } else if (strncmp(url, "unix://", 7) == 0) {
        r = kv_parse_unix(kv, url + 7, err, errlen);
    } else {
        snprintf(err, errlen,
                 "bad redis url '%.100s': expected redis://HOST:PORT[/DB] or "
                 "unix:///path",
                 url);
        r = -EINVAL;
    }
    if (r == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    if (r < 0) {
        kv_free(kv);
        return NULL;
    }
    return kv;
}

/* Closes the connection; a deferred command's reply not read yet is dropped with it. */
static void kv_disconnect(struct kv *kv)
{
    if (kv->ctx) {
        redisFree(kv->ctx);
        kv->ctx = NULL;
    }
    kv->pending = false;
}

/* Reads and drops the reply of a deferred command, if one is due. Returns 0, or -EIO when the
 * connection failed (kv->ctx->err says how). An error reply is only logged. */
static int kv_drain(struct kv *kv)
{
    void *rep = NULL;

    if (!kv->pending)
        return 0;
    if (redisGetReply(kv->ctx, &rep) != REDIS_OK)
        return -EIO;
    kv->pending = false;
    if (((redisReply *) rep)->type == REDIS_REPLY_ERROR)
        log_debug("event=redis_deferred_error err=\"%s\"", ((redisReply *) rep)->str);
    freeReplyObject(rep);
    return 0;
}

/* Closes the connection on purpose: reads a deferred command's reply first (bounded by the
 * timeout), so that the command is known to have run. */
static void kv_close(struct kv *kv)
{
    if (kv->ctx)
        kv_drain(kv);
    kv_disconnect(kv);
}

void kv_free(struct kv *kv)
{
    if (!kv)
        return;
    kv_close(kv);
    free(kv->user);
    free(kv->password);
    free(kv);
}

static void kv_fail(struct kv *kv, const char *what)
{
    snprintf(kv->err, sizeof(kv->err), "%s", what && *what ? what : "redis i/o error");
    kv->ok = false;
    log_debug("event=redis_error err=\"%s\"", kv->err);
}

/* Runs a setup command on a fresh connection; true when it answered without an error. */
static bool kv_setup_cmd(struct kv *kv, int argc, const char **argv)
{
    redisReply *rep = redisCommandArgv(kv->ctx, argc, argv, NULL);
    bool good = rep && rep->type != REDIS_REPLY_ERROR;

    if (!rep)
        kv_fail(kv, kv->ctx->errstr);
    else if (!good)
        kv_fail(kv, rep->str);
    freeReplyObject(rep);
    return good;
}

static int kv_connect(struct kv *kv)
{
    struct timeval tv = {.tv_sec = kv->timeout_ms / 1000,
                         .tv_usec = (suseconds_t) (kv->timeout_ms % 1000) * 1000};
    char dbs[16];

    if (kv->path[0])
        kv->ctx = redisConnectUnixWithTimeout(kv->path, tv);
    else
        kv->ctx = redisConnectWithTimeout(kv->host, kv->port, tv);
    if (!kv->ctx) {
        kv_fail(kv, "out of memory");
        return -ENOMEM;
    }
    if (kv->ctx->err) {
        char msg[200];

        snprintf(msg, sizeof(msg), "cannot connect to redis: %s", kv->ctx->errstr);
        kv_fail(kv, msg);
        goto fail;
    }
    if (redisSetTimeout(kv->ctx, tv) != REDIS_OK) {
        kv_fail(kv, "cannot set the redis timeout");
        goto fail;
    }
    if (!kv->path[0])
        redisEnableKeepAlive(kv->ctx);
    if (kv->password) {
        const char *argv[3] = {"AUTH", kv->user ? kv->user : kv->password, kv->password};

        if (!kv_setup_cmd(kv, kv->user ? 3 : 2, argv))
            goto fail;
    }
    if (kv->db) {
        const char *argv[2] = {"SELECT", dbs};

        snprintf(dbs, sizeof(dbs), "%u", kv->db);
        if (!kv_setup_cmd(kv, 2, argv))
            goto fail;
    }
    log_debug("event=redis_connected");
    return 0;
fail:
    kv_disconnect(kv);
    return -EIO;
}

/* A failure of a connection that had worked before, in a way that means the command was
 * not processed (the server went away): worth one retry on a fresh connection. */
static bool kv_stale(const redisContext *c)
{
    return c->err == REDIS_ERR_EOF ||
           (c->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
}

/* One try of an operation on kv->ctx: false when the connection failed (kv->ctx->err). */
typedef bool (*kv_try_fn)(struct kv *kv, void *arg);

/* Runs try on a connection, after the reply of an earlier deferred command. (Re)connects when
 * needed; a connection that had worked before and turns out stale gets one retry on a fresh
 * one. Returns true when try succeeded. */
static bool kv_attempt(struct kv *kv, kv_try_fn try, void *arg)
{
    bool fresh = false, retry;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (!kv->ctx) {
            if (kv_connect(kv) < 0)
                return false;
            fresh = true;
        }
        errno = 0;
        if (kv_drain(kv) == 0 && try(kv, arg)) {
            kv->ok = true;
            return true;
        }
        retry = !fresh && kv_stale(kv->ctx);
        kv_fail(kv, kv->ctx->errstr);
        kv_disconnect(kv);
        if (!retry)
            return false;
    }
    return false;
}

/* The reply of a command that reached Redis (NULL when it did not): NULL for an error reply. */
static redisReply *kv_reply(struct kv *kv, redisReply *rep)
{
    if (!rep)
        return NULL;
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(kv->err, sizeof(kv->err), "%s", rep->str ? rep->str : "redis error reply");
        log_debug("event=redis_error_reply err=\"%s\"", kv->err);
        freeReplyObject(rep);
        return NULL;
    }
    kv->err[0] = '\0';
    return rep;
}

struct kv_argv {
    int argc;
    const char **argv;
    const size_t *lens;
    redisReply *rep;
};

static bool kv_try_argv(struct kv *kv, void *arg)
{
    struct kv_argv *a = arg;

    a->rep = redisCommandArgv(kv->ctx, a->argc, a->argv, a->lens);
    return a->rep != NULL;
}

/* Writes the command out now; its reply is read by kv_drain() later. */
static bool kv_try_deferred(struct kv *kv, void *arg)
{
    struct kv_argv *a = arg;
    int done = 0;

    if (redisAppendCommandArgv(kv->ctx, a->argc, a->argv, a->lens) != REDIS_OK)
        return false;
    while (!done) {
        if (redisBufferWrite(kv->ctx, &done) != REDIS_OK)
            return false;
    }
    kv->pending = true;
    return true;
}

static bool kv_argv_valid(struct kv *kv, int argc, const char **argv)
{
    if (argc > 0 && argv)
        return true;
    snprintf(kv->err, sizeof(kv->err), "empty redis command");
    return false;
}

redisReply *kv_command(struct kv *kv, int argc, const char **argv, const size_t *lens)
{
    struct kv_argv a = {argc, argv, lens, NULL};

    if (!kv_argv_valid(kv, argc, argv))
        return NULL;
    return kv_reply(kv, kv_attempt(kv, kv_try_argv, &a) ? a.rep : NULL);
}

int kv_command_deferred(struct kv *kv, int argc, const char **argv, const size_t *lens)
{
    struct kv_argv a = {argc, argv, lens, NULL};

    if (!kv_argv_valid(kv, argc, argv))
        return -EINVAL;
    if (!kv_attempt(kv, kv_try_deferred, &a))
        return -EIO;
    kv->err[0] = '\0';
    return 0;
}

struct kv_fmt {
    const char *fmt;
    va_list ap;
    redisReply *rep;
};

static bool kv_try_fmt(struct kv *kv, void *arg)
{
    struct kv_fmt *f = arg;
    va_list ap;

    va_copy(ap, f->ap);
    f->rep = redisvCommand(kv->ctx, f->fmt, ap);
    va_end(ap);
    return f->rep != NULL;
}

redisReply *kv_commandf(struct kv *kv, const char *fmt, ...)
{
    struct kv_fmt f = {.fmt = fmt};
    bool sent;

    va_start(f.ap, fmt);
    sent = kv_attempt(kv, kv_try_fmt, &f);
    va_end(f.ap);
    return kv_reply(kv, sent ? f.rep : NULL);
}

bool kv_ok(struct kv *kv)
{
    return kv->ok;
}

const char *kv_error(struct kv *kv)
{
    return kv->err;
}

int kv_publish(struct kv *kv, const char *channel, const char *msg)
{
    const char *argv[3] = {"PUBLISH", channel, msg};
    redisReply *rep = kv_command(kv, 3, argv, NULL);

    if (!rep)
        return -EIO;
    freeReplyObject(rep);
    return 0;
}

/* The subscriber's connection broke: forget it (kv_subscribe() starts over). */
static int kv_sub_lost(struct kv *kv, const char *what)
{
    kv_fail(kv, what);
    kv_disconnect(kv);
    return -EIO;
}

/* True for the confirmation of one channel of a SUBSCRIBE. */
static bool kv_sub_confirmed(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
           rep->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(rep->element[0]->str, "subscribe") == 0;
}

int kv_subscribe(struct kv *kv, const char *const *channels, size_t n)
{
    const char *argv[KV_SUB_CHANNELS_MAX + 1] = {"SUBSCRIBE"};
    redisReply *rep;
    bool good;

    if (n == 0 || n > KV_SUB_CHANNELS_MAX) {
        snprintf(kv->err, sizeof(kv->err), "subscribe to 1..%d channels", KV_SUB_CHANNELS_MAX);
        return -EINVAL;
    }
    kv_close(kv);
    if (kv_connect(kv) < 0)
        return -EIO;
    memcpy(argv + 1, channels, n * sizeof(*channels));
    if (redisAppendCommandArgv(kv->ctx, (int) n + 1, argv, NULL) != REDIS_OK)
        return kv_sub_lost(kv, kv->ctx->errstr);
    for (size_t i = 0; i < n; i++) {
        if (redisGetReply(kv->ctx, (void **) &rep) != REDIS_OK)
            return kv_sub_lost(kv, kv->ctx->errstr);
        good = kv_sub_confirmed(rep);
        if (!good)
            kv_sub_lost(kv, rep->type == REDIS_REPLY_ERROR ? rep->str
                                                           : "unexpected answer to SUBSCRIBE");
        freeReplyObject(rep);
        if (!good)
            return -EIO;
    }
    kv->ok = true;
    kv->err[0] = '\0';
    return 0;
}

/* A published message ("message", channel, payload): fills msg and takes rep. */
static bool kv_msg_take(redisReply *rep, struct kv_msg *msg)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "message") != 0 ||
        rep->element[1]->type != REDIS_REPLY_STRING ||
        rep->element[2]->type != REDIS_REPLY_STRING)
        return false;
    msg->rep = rep;
    msg->channel = rep->element[1]->str;
    msg->payload = rep->element[2]->str;
    msg->payload_len = rep->element[2]->len;
    return true;
}

/* The next message already read from the socket: 1, 0 (none whole yet), -EIO. Other replies
 * (confirmations, PONGs) are skipped. */
static int kv_sub_buffered(struct kv *kv, struct kv_msg *msg)
{
    for (;;) {
        void *rep = NULL;

        if (redisGetReplyFromReader(kv->ctx, &rep) != REDIS_OK)
            return kv_sub_lost(kv, kv->ctx->errstr);
        if (!rep)
            return 0;
        if (kv_msg_take(rep, msg))
            return 1;
        freeReplyObject(rep);
    }
}

int kv_sub_read(struct kv *kv, int stop_fd, int wait_ms, struct kv_msg *msg)
{
    struct pollfd p[2];
    int r;

    memset(msg, 0, sizeof(*msg));
    if (!kv->ctx) {
        kv_fail(kv, "not subscribed");
        return -EIO;
    }
    r = kv_sub_buffered(kv, msg);
    if (r != 0)
        return r;
    p[0] = (struct pollfd){.fd = kv->ctx->fd, .events = POLLIN};
    p[1] = (struct pollfd){.fd = stop_fd, .events = POLLIN};
    r = poll(p, stop_fd >= 0 ? 2 : 1, wait_ms);
    if (stop_fd >= 0 && r > 0 && (p[1].revents & POLLIN))
        return -ECANCELED;
    if (r <= 0)
        return 0; /* idle (or EINTR): the connection stays */
    if (redisBufferRead(kv->ctx) != REDIS_OK)
        return kv_sub_lost(kv, kv->ctx->errstr);
    return kv_sub_buffered(kv, msg);
}

void kv_msg_free(struct kv_msg *msg)
{
    if (msg->rep)
        freeReplyObject(msg->rep);
    memset(msg, 0, sizeof(*msg));
}
