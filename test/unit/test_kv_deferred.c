/* test/unit/test_kv_deferred.c — kv_command_deferred() against a real Redis: the command takes
 * effect at once (for this and other connections), replies stay in order, error replies are
 * dropped, kv_free() reads the pending reply, and a restart or outage of Redis is survived. */
#include "check.h"
#include "kv.h"
#include "svc.h"

#include <errno.h>
#include <string.h>

static bool reply_is(redisReply *rep, int type, const char *str)
{
    bool ok = rep && rep->type == type && (!str || (rep->str && strcmp(rep->str, str) == 0));

    freeReplyObject(rep);
    return ok;
}

static int deferred2(struct kv *kv, const char *cmd, const char *a)
{
    const char *argv[2] = {cmd, a};

    return kv_command_deferred(kv, 2, argv, NULL);
}

static int deferred3(struct kv *kv, const char *cmd, const char *a, const char *b)
{
    const char *argv[3] = {cmd, a, b};

    return kv_command_deferred(kv, 3, argv, NULL);
}

/* GET key through kv2, up to ~1 s until it has a value. */
static bool eventually_set(struct kv *kv2, const char *key, const char *want)
{
    for (int i = 0; i < 100; i++) {
        if (reply_is(kv_commandf(kv2, "GET %s", key), REDIS_REPLY_STRING, want))
            return true;
        svc_sleep_ms(10);
    }
    return false;
}

static void test_order(struct kv *kv)
{
    int ok = 1;

    CHECK(deferred3(kv, "SET", "d:a", "1") == 0 && kv_ok(kv), "deferred SET sent");
    CHECK(reply_is(kv_commandf(kv, "GET d:a"), REDIS_REPLY_STRING, "1"),
          "its effect is visible to the next command");
    CHECK(kv_command_deferred(kv, 0, NULL, NULL) == -EINVAL, "empty command refused");
    for (int i = 0; i < 5; i++)
        ok &= deferred2(kv, "INCR", "d:c") == 0;
    CHECK(ok, "five deferred INCRs in a row");
    CHECK(reply_is(kv_commandf(kv, "ECHO hello"), REDIS_REPLY_STRING, "hello"),
          "the next command gets its own reply, not a deferred one");
    CHECK(reply_is(kv_commandf(kv, "GET d:c"), REDIS_REPLY_STRING, "5"), "all five ran in order");

    CHECK(reply_is(kv_commandf(kv, "SET d:s text"), REDIS_REPLY_STATUS, "OK"), "a string");
    CHECK(deferred2(kv, "INCR", "d:s") == 0, "a deferred command that Redis will refuse");
    CHECK(reply_is(kv_commandf(kv, "PING"), REDIS_REPLY_STATUS, "PONG") && kv_ok(kv) &&
              !kv_error(kv)[0],
          "its error reply is dropped: the next command succeeds");
}

static void test_visibility(struct kv *kv, struct kv *kv2)
{
    struct kv *tmp;
    char err[256];

    CHECK(deferred3(kv, "SET", "d:v", "seen") == 0, "deferred SET, no command after it");
    CHECK(eventually_set(kv2, "d:v", "seen"), "another connection sees it: it was sent at once");

    /* Writes wait 300 ms in Redis: only a kv_free() that reads the reply waits for the SET. */
    tmp = kv_open(svc_env("STF_REDIS_URL"), 1000, err, sizeof(err));
    CHECK(tmp && reply_is(kv_commandf(tmp, "PING"), REDIS_REPLY_STATUS, "PONG"), "connected");
    CHECK(reply_is(kv_commandf(kv2, "CLIENT PAUSE 300 WRITE"), REDIS_REPLY_STATUS, "OK"),
          "Redis holds writes back for 300 ms");
    CHECK(deferred3(tmp, "SET", "d:f", "freed") == 0, "deferred SET, then kv_free()");
    kv_free(tmp);
    CHECK(reply_is(kv_commandf(kv2, "GET d:f"), REDIS_REPLY_STRING, "freed"),
          "kv_free() read the reply: the SET had run when it returned");
}

static void test_restart(struct kv *kv)
{
    redisReply *rep;

    CHECK(deferred3(kv, "SET", "d:r", "1") == 0, "deferred SET pending");
    CHECK(svc_redis_stop() == 0 && svc_redis_start() == 0, "Redis restarted");
    CHECK(reply_is(kv_commandf(kv, "GET d:r"), REDIS_REPLY_NIL, NULL) && kv_ok(kv),
          "the pending reply went with the old connection; the next command works: %s",
          kv_error(kv));

    CHECK(reply_is(kv_commandf(kv, "PING"), REDIS_REPLY_STATUS, "PONG"), "connected again");
    CHECK(svc_redis_stop() == 0 && svc_redis_start() == 0, "Redis restarted again");
    CHECK(deferred3(kv, "SET", "d:lost", "1") == 0,
          "deferred SET written into the dead connection");
    CHECK(reply_is(kv_commandf(kv, "GET d:r"), REDIS_REPLY_NIL, NULL) && kv_ok(kv),
          "the next command finds it dead, drops the reply and works on a new one: %s",
          kv_error(kv));

    CHECK(deferred3(kv, "SET", "d:r2", "2") == 0, "deferred SET on the new connection");
    CHECK(svc_redis_stop() == 0, "Redis stopped");
    rep = kv_commandf(kv, "PING");
    CHECK(rep == NULL && !kv_ok(kv), "the next command fails without hanging: %s", kv_error(kv));
    freeReplyObject(rep);
    CHECK(deferred3(kv, "SET", "d:r3", "3") == -EIO && !kv_ok(kv),
          "a deferred command while Redis is known down: -EIO: %s", kv_error(kv));
    CHECK(svc_redis_start() == 0, "Redis started");
    CHECK(deferred3(kv, "SET", "d:r4", "4") == 0 && kv_ok(kv), "deferred command works again");
    CHECK(reply_is(kv_commandf(kv, "GET d:r4"), REDIS_REPLY_STRING, "4"), "and took effect");
}

int main(void)
{
    const char *url = svc_env("STF_REDIS_URL");
    char err[256] = "";
    struct kv *kv = kv_open(url, 1000, err, sizeof(err));
    struct kv *kv2 = kv_open(url, 1000, err, sizeof(err));

    CHECK(kv && kv2, "open: %s", err);
    if (!kv || !kv2)
        return check_done();
    test_order(kv);
    test_visibility(kv, kv2);
    test_restart(kv);
    kv_free(kv);
    kv_free(kv2);
    return check_done();
}
