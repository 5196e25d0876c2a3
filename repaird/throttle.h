/* repaird/throttle.h — one token bucket for [repaird] max_bytes_per_sec, shared by every byte
 * that repaird moves (repair, recovery, rebalance, scrub), across all worker threads. */
#ifndef REPAIRD_THROTTLE_H
#define REPAIRD_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

struct throttle;

/* bytes_per_sec 0 = unlimited. Returns NULL on ENOMEM. The caller owns the result:
 * throttle_free() (NULL-safe), after every thread stopped using it. */
struct throttle *throttle_new(uint64_t bytes_per_sec);
void throttle_free(struct throttle *t);

/* Accounts n bytes, sleeping as long as the bucket is in debt. Returns 0, or -ECANCELED when
 * repaird is shutting down (the caller aborts its transfer). t NULL = unlimited. */
int throttle_take(struct throttle *t, size_t n);

/* Accounts n bytes without sleeping and returns how many milliseconds the caller should wait
 * before moving more (0 = go on): for event loops that pause a transfer instead of blocking
 * (curl multi). t NULL = unlimited. */
uint64_t throttle_charge(struct throttle *t, size_t n);

/* The configured rate (0 = unlimited). */
uint64_t throttle_rate(const struct throttle *t);

#endif
