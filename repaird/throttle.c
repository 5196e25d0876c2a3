/* repaird/throttle.c — a token bucket with debt: a caller takes what it needs at once and then
 * sleeps until the bucket is back to zero, so concurrent callers share the rate fairly. */
#include "throttle.h"

#include "stopflag.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define THROTTLE_BURST_MIN (64.0 * 1024) /* bytes that may pass without waiting */
#define THROTTLE_SLICE_MS 100            /* longest sleep between shutdown checks */

struct throttle {
    pthread_mutex_t lock;
    double rate;   /* bytes per second */
    double burst;  /* bucket size */
    double tokens; /* may go negative: the debt the next callers wait for */
    double last;   /* monotonic seconds of the last refill */
};

static double throttle_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

struct throttle *throttle_new(uint64_t bytes_per_sec)
{
    struct throttle *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    t->rate = (double) bytes_per_sec;
    t->burst = t->rate / 10 > THROTTLE_BURST_MIN ? t->rate / 10 : THROTTLE_BURST_MIN;
    t->tokens = t->burst;
    t->last = throttle_now();
    return t;
}

void throttle_free(struct throttle *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t);
}

uint64_t throttle_rate(const struct throttle *t)
{
    return t ? (uint64_t) t->rate : 0;
}

/* Charges n bytes; returns the debt in seconds (0 when the bucket still holds tokens). */
static double throttle_debit(struct throttle *t, size_t n, double now)
{
    double wait_s;

    pthread_mutex_lock(&t->lock);
    t->tokens += (now - t->last) * t->rate;
    if (t->tokens > t->burst)
        t->tokens = t->burst;
    t->last = now;
    t->tokens -= (double) n;
    wait_s = t->tokens < 0 ? -t->tokens / t->rate : 0;
    pthread_mutex_unlock(&t->lock);
    return wait_s;
}

uint64_t throttle_charge(struct throttle *t, size_t n)
{
    if (!t || t->rate <= 0)
        return 0;
    return (uint64_t) (throttle_debit(t, n, throttle_now()) * 1000 + 0.999);
}

int throttle_take(struct throttle *t, size_t n)
{
    double now, wait_s, until;

    if (!t || t->rate <= 0)
        return stopflag_raised() ? -ECANCELED : 0;
    now = throttle_now();
    wait_s = throttle_debit(t, n, now);
    until = now + wait_s;
    while (wait_s > 0) {
        double slice_ms = wait_s * 1000 < THROTTLE_SLICE_MS ? wait_s * 1000 : THROTTLE_SLICE_MS;

        if (stopflag_sleep_ms((uint64_t) slice_ms + 1))
            return -ECANCELED;
        wait_s = until - throttle_now();
    }
    return stopflag_raised() ? -ECANCELED : 0;
}
