/* clusterctl/rebalance_plan.h — the arithmetic of `clusterctl rebalance`: each cluster's target
 * (its share of the capacity, applied to all bytes stored), whether the clusters are balanced
 * within a tolerance, and the moves (source -> destination, bytes) that bring them there.
 * Pure logic, no I/O: the command feeds it what PostgreSQL and storaged said. */
#ifndef STF_CLUSTERCTL_REBALANCE_PLAN_H
#define STF_CLUSTERCTL_REBALANCE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A destination is never planned past this share of its capacity. */
#define RBP_FILL_MAX_PCT 90

struct rbp_cluster {
    /* inputs */
    bool counted;      /* takes part: not down, capacity known */
    bool can_receive;  /* effective mode rw and every writable storage reachable */
    uint64_t bytes;    /* bytes of its objects */
    uint64_t capacity; /* bytes_total of its smallest storage */
    uint64_t free;     /* bytes_free of its fullest writable storage */
    /* results (rbp_compute) */
    uint64_t target;   /* bytes it should hold */
    double share_pct;  /* of all bytes, now */
    double target_pct; /* its share of the capacity */
    bool outside;      /* off its target share by more than the tolerance */
};

struct rbp_move {
    size_t src, dst; /* indexes into the cluster array */
    uint64_t bytes;
};

struct rbp_plan {
    struct rbp_move *moves; /* owned; rbp_plan_release() */
    size_t n;
    uint64_t total_bytes, total_capacity;
    bool balanced; /* every counted cluster is within the tolerance: nothing to do */
};

/* Fills the results of c[0..n) and the plan for tolerance_pct (percentage points of share,
 * 0..100). Moves pair the largest excess with the largest room first; a source gives at most
 * its excess over target, a destination takes at most its deficit and what keeps it under
 * RBP_FILL_MAX_PCT of its capacity. Returns 0, -EINVAL, -ENOMEM. */
int rbp_compute(struct rbp_cluster *c, size_t n, double tolerance_pct, struct rbp_plan *ret);
void rbp_plan_release(struct rbp_plan *p);

#endif
