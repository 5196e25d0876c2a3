/* test/unit/test_kv.c — common/kv.c against a real Redis: urls (TCP and unix socket), binary-safe
 * commands, error replies, timeouts, lazy connect, reconnects across a Redis restart, and the
 * subscriber (messages, idle waits longer than the timeout, stop fd, loss and resubscribe). */
#include "check.h"
#include "kv.h"
#include "svc.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static bool kv_str_is(redisReply *rep, const char *want, size_t len)
{
    return rep && rep->type == REDIS_REPLY_STRING && rep->len == len &&
           memcmp(rep->str, want, len) == 0;
}

static void test_urls(void)
{
    static const char *const bad[] = {
        "http://127.0.0.1:6379",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:99999",
        "redis://h:12x",
        "redis://h:1/db",
        "unix://relative",
        "unix:///s.sock?db=x",
        "unix:///s?foo=1",
        "",
    };
    char err[256];
    struct kv *kv;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        kv = kv_open(bad[i], 500, err, sizeof(err));
        CHECK(kv == NULL && err[0] && !strchr(err, '\n'), "bad url '%s' refused: %s", bad[i], err);
        kv_free(kv);
    }
    kv = kv_open("redis://:secret@127.0.0.1:6379/2", 500, err, sizeof(err));
    CHECK(kv != NULL, "url with password and db accepted");
    kv_free(kv);
    kv = kv_open("redis://[::1]:6379", 500, err, sizeof(err));
    CHECK(kv != NULL, "IPv6 url accepted");
    kv_free(kv);
    kv_free(NULL);
}

static void test_down(void)
{
    char url[64], err[256];
    struct kv *kv;

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", svc_dead_port());
    kv = kv_open(url, 300, err, sizeof(err));
    CHECK(kv != NULL, "kv_open does not fail while Redis is away (lazy connect)");
    CHECK(kv && kv_commandf(kv, "PING") == NULL && !kv_ok(kv), "command fails, kv_ok false");
    CHECK(kv && strstr(kv_error(kv), "connect"), "error says why: %s", kv ? kv_error(kv) : "");
    CHECK(kv && kv_publish(kv, "c", "m") == -EIO, "publish fails with -EIO");
    kv_free(kv);
}

static void test_commands(struct kv *kv)
{
    const char *argv[3] = {"SET", "bin", "a\0b"};
    const size_t lens[3] = {3, 3, 3};
    redisReply *rep;

    rep = kv_command(kv, 3, argv, lens);
    CHECK(rep && kv_ok(kv), "SET binary value");
    freeReplyObject(rep);
    rep = kv_commandf(kv, "GET %s", "bin");
    CHECK(kv_str_is(rep, "a\0b", 3), "GET returns the bytes with the NUL");
    freeReplyObject(rep);
    rep = kv_commandf(kv, "SET %s %b", "k2", "xyz", (size_t) 2);
    freeReplyObject(rep);
    rep = kv_commandf(kv, "GET k2");
    CHECK(kv_str_is(rep, "xy", 2), "printf-style with %%b");
    freeReplyObject(rep);

    rep = kv_commandf(kv, "INCR bin");
    CHECK(rep == NULL && kv_ok(kv), "error reply: NULL but Redis was reached");
    CHECK(strstr(kv_error(kv), "ERR") != NULL, "error reply text kept: %s", kv_error(kv));
    rep = kv_commandf(kv, "PING");
    CHECK(rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0,
          "connection still good after an error reply");
    freeReplyObject(rep);
    CHECK(kv_publish(kv, "stf:test", "hello") == 0, "publish");
}

static void test_unix_and_db(void)
{
    char url[300], err[256];
    struct kv *unix1, *tcp0, *tcp1;
    redisReply *rep;

    snprintf(url, sizeof(url), "unix://%s?db=1", svc_env("REDIS_SOCKET"));
    unix1 = kv_open(url, 500, err, sizeof(err));
    snprintf(url, sizeof(url), "redis://127.0.0.1:%s/0", svc_env("REDIS_PORT"));
    tcp0 = kv_open(url, 500, err, sizeof(err));
    snprintf(url, sizeof(url), "redis://127.0.0.1:%s/1", svc_env("REDIS_PORT"));
    tcp1 = kv_open(url, 500, err, sizeof(err));
    CHECK(unix1 && tcp0 && tcp1, "open unix and tcp urls");
    if (!unix1 || !tcp0 || !tcp1)
        goto out;
    rep = kv_commandf(unix1, "SET indb1 yes");
    CHECK(rep != NULL, "SET over the unix socket");
    freeReplyObject(rep);
    rep = kv_commandf(tcp1, "GET indb1");
    CHECK(kv_str_is(rep, "yes", 3), "visible in db 1 over TCP");
    freeReplyObject(rep);
    rep = kv_commandf(tcp0, "GET indb1");
    CHECK(rep && rep->type == REDIS_REPLY_NIL, "not in db 0 (SELECT applied)");
    freeReplyObject(rep);
out:
    kv_free(unix1);
    kv_free(tcp0);
    kv_free(tcp1);
}

static void test_timeout(struct kv *kv)
{
    redisReply *rep = kv_commandf(kv, "BLPOP nothing-here 2");

    CHECK(rep == NULL && !kv_ok(kv), "reply slower than the timeout fails");
    rep = kv_commandf(kv, "PING");
    CHECK(rep != NULL && kv_ok(kv), "next command reconnects");
    freeReplyObject(rep);
}

static void test_restart(struct kv *kv)
{
    redisReply *rep;

    rep = kv_commandf(kv, "PING");
    CHECK(rep != NULL, "connected before restart");
    freeReplyObject(rep);
    CHECK(svc_redis_stop() == 0 && svc_redis_start() == 0, "Redis restarted");
    rep = kv_commandf(kv, "SET after restart");
    CHECK(rep != NULL && kv_ok(kv), "first command after a restart succeeds on the same struct kv");
    freeReplyObject(rep);

    CHECK(svc_redis_stop() == 0, "Redis stopped");
    rep = kv_commandf(kv, "PING");
    CHECK(rep == NULL && !kv_ok(kv), "command while Redis is down fails: %s", kv_error(kv));
    CHECK(kv_publish(kv, "c", "m") == -EIO, "publish fails while down");
    CHECK(svc_redis_start() == 0, "Redis started");
    rep = kv_commandf(kv, "GET after");
    CHECK(rep && rep->type == REDIS_REPLY_NIL && kv_ok(kv),
          "same struct kv works again (data gone: no persistence)");
    freeReplyObject(rep);
}

static const char *const sub_channels[] = {"stf:test:a", "stf:test:b"};

/* Reads the next message within 2 s; true if it came on channel with payload. */
static bool sub_got(struct kv *sub, const char *channel, const char *payload)
{
    struct kv_msg msg;
    bool good = false;

    for (int i = 0; i < 20; i++) {
        int r = kv_sub_read(sub, -1, 100, &msg);

        if (r < 0)
            return false;
        if (r == 0)
            continue;
        good = strcmp(msg.channel, channel) == 0 && msg.payload_len == strlen(payload) &&
               strcmp(msg.payload, payload) == 0;
        kv_msg_free(&msg);
        return good;
    }
    return false;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Subscribers on the server: "PUBSUB NUMSUB channel" (-1 when it cannot be asked). */
static long long numsub(struct kv *kv, const char *channel)
{
    redisReply *rep = kv_commandf(kv, "PUBSUB NUMSUB %s", channel);
    long long n = -1;

    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_INTEGER)
        n = rep->element[1]->integer;
    freeReplyObject(rep);
    return n;
}

static void test_subscribe_messages(struct kv *pub, struct kv *sub)
{
    struct kv_msg msg;
    int64_t t0;
    int r;

    CHECK(kv_subscribe(sub, sub_channels, 0) == -EINVAL, "no channels: -EINVAL");
    CHECK(kv_subscribe(sub, sub_channels, 2) == 0, "subscribe to two channels");
    CHECK(numsub(pub, sub_channels[1]) == 1, "Redis counts one subscriber");
    CHECK(kv_publish(pub, sub_channels[0], "one") == 0 &&
              kv_publish(pub, sub_channels[1], "two") == 0 &&
              kv_publish(pub, sub_channels[0], "three") == 0,
          "publish three messages");
    CHECK(sub_got(sub, sub_channels[0], "one"), "first message, first channel");
    CHECK(sub_got(sub, sub_channels[1], "two"), "second message, second channel");
    CHECK(sub_got(sub, sub_channels[0], "three"), "third message (read together with the others)");
    /* idle for twice the connection's 500 ms reply timeout: no reconnect, nothing lost */
    t0 = mono_ms();
    r = kv_sub_read(sub, -1, 1000, &msg);
    CHECK(r == 0 && mono_ms() - t0 >= 900, "idle wait returns 0 after wait_ms (%d)", r);
    r = kv_sub_read(sub, -1, 100, &msg);
    CHECK(r == 0, "another idle wait: still subscribed (%d)", r);
    CHECK(numsub(pub, sub_channels[0]) == 1, "still one subscriber after idling");
    CHECK(kv_publish(pub, sub_channels[1], "after idle") == 0 &&
              sub_got(sub, sub_channels[1], "after idle"),
          "message after idling arrives on the same subscription");
}

static void test_subscribe_stop(struct kv *sub)
{
    uint64_t one = 1;
    struct kv_msg msg;
    int fd = eventfd(0, EFD_CLOEXEC);
    int64_t t0 = mono_ms();

    CHECK(fd >= 0 && write(fd, &one, sizeof(one)) == sizeof(one), "stop fd signalled");
    CHECK(kv_sub_read(sub, fd, 5000, &msg) == -ECANCELED && mono_ms() - t0 < 1000,
          "kv_sub_read returns -ECANCELED at once when the stop fd is readable");
    if (fd >= 0)
        close(fd);
}

static void test_subscribe_loss(struct kv *pub, struct kv *sub)
{
    struct kv_msg msg;
    int r = 0;

    CHECK(svc_redis_stop() == 0, "Redis stopped");
    for (int i = 0; i < 20 && r >= 0; i++)
        r = kv_sub_read(sub, -1, 100, &msg);
    CHECK(r == -EIO, "loss reported as -EIO (%d): %s", r, kv_error(sub));
    CHECK(kv_sub_read(sub, -1, 10, &msg) == -EIO, "reading a lost subscription keeps failing");
    CHECK(kv_subscribe(sub, sub_channels, 2) == -EIO, "subscribe fails while Redis is down");
    CHECK(svc_redis_start() == 0, "Redis started");
    CHECK(kv_subscribe(sub, sub_channels, 2) == 0, "resubscribed after the restart");
    CHECK(kv_publish(pub, sub_channels[0], "back") == 0 && sub_got(sub, sub_channels[0], "back"),
          "messages flow again");
}

static void test_subscribe(void)
{
    char err[256];
    struct kv *pub = kv_open(svc_env("STF_REDIS_URL"), 500, err, sizeof(err));
    struct kv *sub = kv_open(svc_env("STF_REDIS_URL"), 500, err, sizeof(err));
    struct kv_msg msg;
    char url[300];

    CHECK(pub && sub, "open publisher and subscriber");
    if (!pub || !sub)
        goto out;
    CHECK(kv_sub_read(sub, -1, 10, &msg) == -EIO, "reading before subscribing fails");
    test_subscribe_messages(pub, sub);
    test_subscribe_stop(sub);
    test_subscribe_loss(pub, sub);
    kv_free(sub);
    snprintf(url, sizeof(url), "unix://%s", svc_env("REDIS_SOCKET"));
    sub = kv_open(url, 500, err, sizeof(err));
    CHECK(sub && kv_subscribe(sub, sub_channels, 2) == 0, "subscribe over the unix socket");
    CHECK(sub && kv_publish(pub, sub_channels[1], "unix") == 0 &&
              sub_got(sub, sub_channels[1], "unix"),
          "message over the unix socket");
out:
    kv_free(pub);
    kv_free(sub);
}

int main(void)
{
    char err[256];
    struct kv *kv;

    test_urls();
    test_down();
    kv = kv_open(svc_env("STF_REDIS_URL"), 500, err, sizeof(err));
    CHECK(kv != NULL, "open %s", svc_env("STF_REDIS_URL"));
    if (!kv)
        return check_done();
    test_commands(kv);
    test_unix_and_db();
    test_timeout(kv);
    test_restart(kv);
    kv_free(kv);
    test_subscribe();
    return check_done();
}
