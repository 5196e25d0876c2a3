/* test/unit/test_objcache.c — the metadata cache's Redis side against a real Redis:
 * invalidation (tombstone + PUBLISH in one script, or two commands when scripts are refused),
 * and the write-through of a committed row (objcache_mark before the COMMIT, objcache_settle
 * after it), which stores the row only when no other change of the key was announced in
 * between, in every interleaving of two writers. */
#include "check.h"
#include "kv.h"
#include "objcache.h"
#include "svc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "stf:o:1:photo.jpg"

static char *get(struct kv *kv, const char *key, char *out, size_t outlen)
{
    redisReply *rep = kv_commandf(kv, "GET %s", key);

    snprintf(out, outlen, "%s", rep && rep->type == REDIS_REPLY_STRING ? rep->str : "(nil)");
    freeReplyObject(rep);
    return out;
}

static long long ttl(struct kv *kv, const char *key)
{
    redisReply *rep = kv_commandf(kv, "TTL %s", key);
    long long t = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -100;

    freeReplyObject(rep);
    return t;
}

/* Checks that the next message on the subscriber's channel (within 1 s) is key. */
static void check_published(struct kv *sub, const char *key, const char *what)
{
    struct kv_msg m = {0};
    char got[256] = "(none)", want[256];

    if (kv_sub_read(sub, -1, 1000, &m) == 1)
        snprintf(got, sizeof(got), "%s %.*s", m.channel, (int) m.payload_len, m.payload);
    kv_msg_free(&m);
    snprintf(want, sizeof(want), "%s %s", OBJCACHE_CHANNEL, key);
    CHECK_STR(got, want, what);
}

static void test_invalidate(struct kv *kv, struct kv *sub)
{
    char v[128];

    freeReplyObject(kv_commandf(kv, "SET %s row EX 15", KEY));
    CHECK(objcache_invalidate(kv, KEY) == 0, "invalidate");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-", "the value is a plain tombstone");
    CHECK(ttl(kv, KEY) >= 1 && ttl(kv, KEY) <= OBJCACHE_TOMBSTONE_S, "that expires in 2 s");
    check_published(sub, KEY, "and the key was published");
}

static void test_write_through(struct kv *kv, struct kv *sub)
{
    char v[128];

    CHECK(objcache_mark(kv, KEY, "aaaa") == 0, "mark before the commit");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-aaaa", "the writer's own tombstone");
    check_published(sub, KEY, "published");
    freeReplyObject(kv_commandf(kv, "SET %s stale EX 15 NX", KEY));
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-aaaa", "a reader's SET NX fill does not replace it");
    CHECK(objcache_settle(kv, KEY, "aaaa", "1 row-a") == 1, "settle after the commit: stored");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "1 row-a", "the committed row is cached");
    CHECK(ttl(kv, KEY) > OBJCACHE_TOMBSTONE_S && ttl(kv, KEY) <= OBJCACHE_TTL_S,
          "for the row's TTL");
    check_published(sub, KEY, "published again (other dispatchers drop what they read meanwhile)");
}

/* Two writers A and B of one key, B committing after A, in the orders their announcements
 * can take: whatever A's late settle finds, B's row or a tombstone ends up in the key. */
static void test_two_writers(struct kv *kv)
{
    char v[128];

    /* A marks, B marks, A settles (A's tombstone is gone: no store), B settles (B's is gone) */
    objcache_mark(kv, KEY, "A");
    objcache_mark(kv, KEY, "B");
    CHECK(objcache_settle(kv, KEY, "A", "1 row-A") == 0, "A after B's mark: not stored");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-", "a plain tombstone instead");
    CHECK(objcache_settle(kv, KEY, "B", "1 row-B") == 0, "B after A's settle: not stored");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-", "still a tombstone: the next read goes to "
                                               "PostgreSQL");

    /* B marks, A marks (A's commit first), A settles: stored (stale), B settles: replaced */
    objcache_mark(kv, KEY, "B");
    objcache_mark(kv, KEY, "A");
    CHECK(objcache_settle(kv, KEY, "A", "1 row-A") == 1, "A's token intact: A stored");
    CHECK(objcache_settle(kv, KEY, "B", "1 row-B") == 0, "B finds A's row, not its token");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-", "and replaces it before B answers its client");

    /* A marks, A settles, then B: B's row wins */
    objcache_mark(kv, KEY, "A");
    objcache_settle(kv, KEY, "A", "1 row-A");
    objcache_mark(kv, KEY, "B");
    CHECK(objcache_settle(kv, KEY, "B", "1 row-B") == 1, "B after A: stored");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "1 row-B", "B's row is cached");

    /* a writer that only invalidates (repaird moving the object) between mark and settle */
    objcache_mark(kv, KEY, "C");
    objcache_invalidate(kv, KEY);
    CHECK(objcache_settle(kv, KEY, "C", "1 row-C") == 0, "an invalidation in between: no store");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-", "tombstone");

    /* the writer's tombstone expired (a commit slower than 2 s): no store */
    freeReplyObject(kv_commandf(kv, "DEL %s", KEY));
    CHECK(objcache_settle(kv, KEY, "D", "1 row-D") == 0, "no token left: not stored");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-", "tombstone");
}

static void test_bad_input_and_scripts(struct kv *kv)
{
    char v[128], longtok[OBJCACHE_TOKEN_MAX + 2];

    memset(longtok, 'x', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = '\0';
    freeReplyObject(kv_commandf(kv, "SET %s keep EX 15", KEY));
    CHECK(objcache_mark(kv, KEY, "") == -EINVAL, "empty token refused");
    CHECK(objcache_mark(kv, KEY, longtok) == -EINVAL, "over-long token refused");
    CHECK(objcache_settle(kv, KEY, "E", "-looks like a tombstone") == -EINVAL,
          "a value that would read as a tombstone is refused");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "keep", "and nothing was changed");

    freeReplyObject(kv_commandf(kv, "SCRIPT FLUSH"));
    objcache_mark(kv, KEY, "F");
    CHECK(objcache_settle(kv, KEY, "F", "1 row-F") == 1 && kv_ok(kv),
          "after SCRIPT FLUSH (a Redis restart) the scripts are loaded again");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "1 row-F", "stored");
}

/* EVALSHA and EVAL calls Redis has seen, refused ones included (INFO commandstats lines
 * "cmdstat_evalsha:calls=N,...,rejected_calls=M,..."). */
static long script_calls(struct kv *kv)
{
    static const char *const names[2] = {"\ncmdstat_evalsha:", "\ncmdstat_eval:"};
    redisReply *rep = kv_commandf(kv, "INFO commandstats");
    long total = 0;

    for (int i = 0; i < 2 && rep && rep->str; i++) {
        const char *line = strstr(rep->str, names[i]), *rej;
        long calls = 0, rejected = 0;

        if (!line)
            continue;
        line += strlen(names[i]);
        rej = strstr(line, "rejected_calls=");
        if (sscanf(line, "calls=%ld", &calls) == 1)
            total += calls;
        if (rej && rej < strchr(line, '\n') && sscanf(rej, "rejected_calls=%ld", &rejected) == 1)
            total += rejected;
    }
    freeReplyObject(rep);
    return total;
}

/* A Redis whose ACL denies scripts (some managed offerings): invalidations still land. */
static void test_scripts_refused(struct kv *kv, const char *url)
{
    char v[128], err[256] = "", *noscript_url = NULL;
    const char *host = strstr(url, "://");
    struct kv *ns;
    long calls;

    freeReplyObject(kv_commandf(kv, "ACL SETUSER noscript on >pw ~* &* +@all -eval -evalsha"));
    if (!host || strncmp(url, "redis://", 8) != 0 ||
        asprintf(&noscript_url, "redis://noscript:pw@%s", host + 3) < 0) {
        CHECK(0, "STF_REDIS_URL is not a redis:// url: %s", url);
        return;
    }
    ns = kv_open(noscript_url, 1000, err, sizeof(err));
    free(noscript_url);
    CHECK(ns != NULL, "open as a user without EVAL: %s", err);
    if (!ns)
        return;
    freeReplyObject(kv_commandf(kv, "SET %s row EX 15", KEY));
    CHECK(objcache_invalidate(ns, KEY) == 0, "invalidate without scripts: done with SET + PUBLISH");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-", "tombstone");
    CHECK(objcache_mark(ns, KEY, "H") == 0, "mark without scripts");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-H", "the writer's tombstone");
    CHECK(objcache_settle(ns, KEY, "H", "1 row-H") == 0, "settle without scripts: not stored");
    CHECK_STR(get(kv, KEY, v, sizeof(v)), "-", "a plain tombstone instead");
    calls = script_calls(kv);
    for (int i = 0; i < 5; i++)
        objcache_invalidate(ns, KEY);
    CHECK(calls > 0 && script_calls(kv) == calls,
          "after a refusal, scripts are not tried again for a while (%ld script calls)", calls);
    kv_free(ns);
    freeReplyObject(kv_commandf(kv, "ACL DELUSER noscript"));
}

static void test_redis_down(struct kv *kv)
{
    CHECK(svc_redis_stop() == 0, "Redis stopped");
    CHECK(objcache_invalidate(kv, KEY) == -EIO, "invalidate: -EIO");
    CHECK(objcache_mark(kv, KEY, "G") == -EIO, "mark: -EIO");
    CHECK(objcache_settle(kv, KEY, "G", "1 row-G") == -EIO, "settle: -EIO");
    CHECK(svc_redis_start() == 0, "Redis started");
    CHECK(objcache_invalidate(kv, KEY) == 0, "works again");
}

int main(void)
{
    const char *url = svc_env("STF_REDIS_URL");
    const char *channels[1] = {OBJCACHE_CHANNEL};
    char err[256] = "";
    struct kv *kv = kv_open(url, 1000, err, sizeof(err));
    struct kv *sub = kv_open(url, 1000, err, sizeof(err));

    CHECK(kv && sub && kv_subscribe(sub, channels, 1) == 0, "open and subscribe: %s", err);
    if (!kv || !sub)
        return check_done();
    test_invalidate(kv, sub);
    test_write_through(kv, sub);
    kv_free(sub);
    test_two_writers(kv);
    test_bad_input_and_scripts(kv);
    test_scripts_refused(kv, url);
    test_redis_down(kv);
    kv_free(kv);
    return check_done();
}
