/* test/unit/test_repaird_units.c — repaird's small parts without services: the token bucket's
 * rate and shutdown, and lease holder ids (who is alive on this host). */
#include "check.h"
#include "lease_owner.h"
#include "stopflag.h"
#include "throttle.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

struct taker {
    struct throttle *t;
    size_t total;
    int err;
};

static void *take_all(void *arg)
{
    struct taker *k = arg;

    for (size_t done = 0; done < k->total && !k->err; done += 16384)
        k->err = throttle_take(k->t, 16384);
    return NULL;
}

static void test_throttle_rate(void)
{
    struct throttle *t = throttle_new(1 << 20);
    struct taker k[4];
    pthread_t th[4];
    double t0 = now_s(), took;

    CHECK(throttle_rate(t) == 1 << 20, "rate kept");
    for (int i = 0; i < 4; i++) { /* 4 threads share 1 MiB/s: 1.5 MiB take ~1.4 s */
        k[i] = (struct taker){t, 384 << 10, 0};
        pthread_create(&th[i], NULL, take_all, &k[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    took = now_s() - t0;
    CHECK(took > 1.25 && took < 2.5, "1.5 MiB at 1 MiB/s across 4 threads took %.2fs", took);
    CHECK(!k[0].err && !k[1].err && !k[2].err && !k[3].err, "no errors");
    throttle_free(t);

    t = throttle_new(1 << 20); /* the bucket starts full (burst 104857 B) */
    CHECK(throttle_charge(t, 100000) == 0, "within the burst: no wait");
    {
        uint64_t ms = throttle_charge(t, 1 << 20); /* ~1 MiB of debt at 1 MiB/s */

        CHECK(ms >= 990 && ms <= 1010, "charge beyond the burst: wait %llu ms",
              (unsigned long long) ms);
    }
    throttle_free(t);
    CHECK(throttle_charge(NULL, 1 << 30) == 0, "NULL: never wait");

    t = throttle_new(0);
    t0 = now_s();
    for (int i = 0; i < 1000; i++)
        throttle_take(t, 1 << 20);
    CHECK(now_s() - t0 < 0.1, "0 = unlimited");
    throttle_free(t);
    CHECK(throttle_take(NULL, 123) == 0, "NULL throttle = unlimited");
}

static void test_lease_owner(void)
{
    char self[LEASE_OWNER_MAX], other[LEASE_OWNER_MAX + 32], prefix[80], host[70];
    long pid;
    unsigned long long start, ns;
    pid_t child;
    int status;

    CHECK(lease_owner_self(self, sizeof(self)) == 0, "self id: %s", self);
    CHECK(sscanf(self, "%69[^:]:%ld:%llu:%llu", host, &pid, &start, &ns) == 4 &&
              pid == (long) getpid(),
          "HOST:PID:START:NS");
    CHECK(lease_owner_host_prefix(self, prefix, sizeof(prefix)) == 0 &&
              snprintf(other, sizeof(other), "%s:", host) > 0 && strcmp(prefix, other) == 0,
          "host prefix %s", prefix);
    CHECK(!lease_owner_is_dead(self, self), "self is alive");
    snprintf(other, sizeof(other), "%s#17", self);
    CHECK(!lease_owner_is_dead(self, other), "a claim token of self is alive");
    snprintf(other, sizeof(other), "another-host:%ld:%llu:%llu", pid, start, ns);
    CHECK(!lease_owner_is_dead(self, other), "another host: unknown, not dead");
    snprintf(other, sizeof(other), "%s:%ld:%llu:%llu", host, pid, start, ns + 1);
    CHECK(!lease_owner_is_dead(self, other), "another pid namespace: unknown, not dead");
    snprintf(other, sizeof(other), "%s:%ld:%llu:%llu", host, pid, start + 1, ns);
    CHECK(lease_owner_is_dead(self, other), "same pid, other start time: a reused pid, dead");
    CHECK(!lease_owner_is_dead(self, "garbage"), "garbage: not dead");

    child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    /* the child's start time, as its own lease_owner_self would write it */
    {
        char path[64], line[512], *p;
        FILE *f;
        int field;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) child);
        f = fopen(path, "r");
        line[fread(line, 1, sizeof(line) - 1, f)] = '\0';
        fclose(f);
        p = strrchr(line, ')') + 1;
        for (field = 2; field < 21; field++)
            p = strchr(p + 1, ' ');
        start = strtoull(p + 1, NULL, 10);
    }
    snprintf(other, sizeof(other), "%s:%d:%llu:%llu#3", host, (int) child, start, ns);
    CHECK(!lease_owner_is_dead(self, other), "a live child is alive");
    kill(child, SIGKILL);
    for (int i = 0; i < 200; i++) { /* until it is a zombie */
        if (lease_owner_is_dead(self, other))
            break;
        usleep(10000);
    }
    CHECK(lease_owner_is_dead(self, other), "a killed, unreaped child (zombie) is dead");
    waitpid(child, &status, 0);
    CHECK(lease_owner_is_dead(self, other), "a reaped child is dead");
}

static void test_stop(void)
{
    struct throttle *t = throttle_new(1024); /* 1 KiB/s: a 1 MiB take would wait ~17 min */
    double t0;
    int r;

    CHECK(!stopflag_raised(), "not raised at start");
    t0 = now_s();
    CHECK(!stopflag_sleep_ms(50) && now_s() - t0 >= 0.045, "a sleep lasts without a stop");
    stopflag_raise();
    t0 = now_s();
    r = throttle_take(t, 1 << 20);
    CHECK(r == -ECANCELED && now_s() - t0 < 0.5, "a raised flag ends a throttle wait (%d)", r);
    CHECK(stopflag_sleep_ms(10000) && now_s() - t0 < 0.5, "and every sleep");
    throttle_free(t);
}

int main(void)
{
    test_throttle_rate();
    test_lease_owner();
    test_stop(); /* last: the flag stays raised */
    return check_done();
}
