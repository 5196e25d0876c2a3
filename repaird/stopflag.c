/* repaird/stopflag.c — the process-wide shutdown flag: an atomic for polling plus a condition
 * variable so that sleeping threads wake at once when it is raised. */
#include "stopflag.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static atomic_bool stopflag_set;
static pthread_mutex_t stopflag_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stopflag_cond;
static pthread_once_t stopflag_once = PTHREAD_ONCE_INIT;

static void stopflag_init(void)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&stopflag_cond, &a);
    pthread_condattr_destroy(&a);
}

void stopflag_raise(void)
{
    pthread_once(&stopflag_once, stopflag_init);
    pthread_mutex_lock(&stopflag_lock);
    atomic_store(&stopflag_set, true);
    pthread_cond_broadcast(&stopflag_cond);
    pthread_mutex_unlock(&stopflag_lock);
}

bool stopflag_raised(void)
{
    return atomic_load(&stopflag_set);
}

bool stopflag_sleep_ms(uint64_t ms)
{
    struct timespec until;

    pthread_once(&stopflag_once, stopflag_init);
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t) (ms / 1000);
    until.tv_nsec += (long) (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&stopflag_lock);
    while (!atomic_load(&stopflag_set)) {
        if (pthread_cond_timedwait(&stopflag_cond, &stopflag_lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&stopflag_lock);
    return atomic_load(&stopflag_set);
}
