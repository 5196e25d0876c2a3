/* common/kv.h — Redis access through hiredis: one connection per struct kv (one per thread),
 * connect and read timeouts, a reconnect on the next call after any failure, commands whose
 * reply is read later (one round trip less), and a subscriber mode (SUBSCRIBE, then waiting for
 * messages without reconnecting while merely idle).
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

/* Sends one command like kv_command but does not wait for its reply: the reply is read (and
 * dropped; an error reply is logged at debug) before the next command on this kv, or when kv is
 * freed. The command is written to the socket before this returns (Redis runs it without
 * waiting for this kv's next command, which sees its effect). If the connection is then found
 * dead, the reply is dropped with it (and the command may have been lost: use this only for
 * best-effort writes such as cache fills). Returns 0 (written), -EINVAL (empty command) or
 * -EIO (Redis away). */
int kv_command_deferred(struct kv *kv, int argc, const char **argv, const size_t *lens);

/* printf-style convenience (redisCommand format). Same return convention as kv_command. */
redisReply *kv_commandf(struct kv *kv, const char *fmt, ...);

/* True if the last call reached Redis. */
bool kv_ok(struct kv *kv);
const char *kv_error(struct kv *kv);

/* Publishes msg on channel (best effort). Returns 0 or -EIO. */
int kv_publish(struct kv *kv, const char *channel, const char *msg);

/* Subscriber mode. A struct kv given to kv_subscribe() is a subscriber from then on: read it
 * with kv_sub_read() only (not kv_command()). */
#define KV_SUB_CHANNELS_MAX 16

/* A message from a subscribed channel; the strings live in rep (kv_msg_free() frees it). */
struct kv_msg {
    redisReply *rep;
    const char *channel;
    const char *payload;
    size_t payload_len;
};

/* Opens a fresh connection (AUTH/SELECT as for commands) and SUBSCRIBEs to channels[0..n),
 * waiting for every confirmation. Returns 0, -EINVAL (n is 0 or > KV_SUB_CHANNELS_MAX), or
 * -EIO (Redis away or refusing; kv_error() says; nothing stays connected). Messages published
 * before it returned are not delivered: callers resynchronise after every (re)subscribe. */
int kv_subscribe(struct kv *kv, const char *const *channels, size_t n);

/* Waits at most wait_ms for the next message of a subscribed kv, or until stop_fd (ignored
 * when < 0) is readable. Returns 1 (*msg filled: kv_msg_free() it), 0 (no whole message yet:
 * the connection stays, however long it has been idle), -ECANCELED (stop_fd is readable), or
 * -EIO (the connection is lost or was never subscribed: kv_subscribe() again). */
int kv_sub_read(struct kv *kv, int stop_fd, int wait_ms, struct kv_msg *msg);
void kv_msg_free(struct kv_msg *msg);

#endif
