/* common/kv.h — Redis access through hiredis: one connection per struct kv (one per thread),
 * connect and read timeouts, and a reconnect on the next call after any failure.
 * Redis is a helper, never the source of truth: callers treat a failure as "Redis away". */
#ifndef STF_KV_H
#define STF_KV_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

struct kv;

/* url: redis://HOST:PORT[/DB] or unix:///path/to/sock[?db=N]. Does not fail when Redis is
 * down (it connects lazily); returns NULL only for a malformed url (one line in err) or ENOMEM.
 * timeout_ms bounds connect and each reply. The caller owns the result: kv_free() (NULL-safe). */
struct kv *kv_open(const char *url, unsigned timeout_ms, char *err, size_t errlen);
void kv_free(struct kv *kv);

/* Runs one command given as argv (binary-safe with lens, or lens NULL for C strings).
 * (Re)connects when needed. Returns the reply (caller freeReplyObject()s it), or NULL when
 * Redis is unreachable or answered with an error reply (logged at debug; kv_error() says). */
redisReply *kv_command(struct kv *kv, int argc, const char **argv, const size_t *lens);

/* printf-style convenience (redisCommand format). Same return convention. */
redisReply *kv_commandf(struct kv *kv, const char *fmt, ...);

/* True if the last call reached Redis. */
bool kv_ok(struct kv *kv);
const char *kv_error(struct kv *kv);

/* Publishes msg on channel (best effort). Returns 0 or -EIO. */
int kv_publish(struct kv *kv, const char *channel, const char *msg);

#endif
