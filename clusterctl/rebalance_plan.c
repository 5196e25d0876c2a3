/* clusterctl/rebalance_plan.c — targets from capacity shares, the tolerance test, and a greedy
 * pairing of excess with room that yields the moves of a rebalance. */
#include "rebalance_plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* a * b / c without overflow (c > 0), rounded down. */
static uint64_t rbp_muldiv(uint64_t a, uint64_t b, uint64_t c)
{
    return (uint64_t) ((unsigned __int128) a * b / c);
}

static uint64_t rbp_room(const struct rbp_cluster *c)
{
    uint64_t cap_left, deficit;

    if (!c->counted || !c->can_receive || c->target <= c->bytes)
        return 0;
    deficit = c->target - c->bytes;
    /* what it may still take: its free space above (100 - RBP_FILL_MAX_PCT)% of capacity */
    cap_left = rbp_muldiv(c->capacity, 100 - RBP_FILL_MAX_PCT, 100);
    cap_left = c->free > cap_left ? c->free - cap_left : 0;
    return deficit < cap_left ? deficit : cap_left;
}

static int rbp_add(struct rbp_plan *p, size_t src, size_t dst, uint64_t bytes)
{
    struct rbp_move *v;

    for (size_t i = 0; i < p->n; i++) {
        if (p->moves[i].src == src && p->moves[i].dst == dst) {
            p->moves[i].bytes += bytes;
            return 0;
        }
    }
    v = realloc(p->moves, (p->n + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    p->moves = v;
    p->moves[p->n++] = (struct rbp_move){src, dst, bytes};
    return 0;
}

/* Index of the largest value in v[0..n), or n when all are 0. */
static size_t rbp_max(const uint64_t *v, size_t n)
{
    size_t best = n;

    for (size_t i = 0; i < n; i++) {
        if (v[i] > 0 && (best == n || v[i] > v[best]))
            best = i;
    }
    return best;
}

int rbp_compute(struct rbp_cluster *c, size_t n, double tolerance_pct, struct rbp_plan *ret)
{
    uint64_t *excess = NULL, *room = NULL;
    int r = 0;

    memset(ret, 0, sizeof(*ret));
    if (!(tolerance_pct >= 0 && tolerance_pct <= 100))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].counted)
            continue;
        if (ret->total_bytes + c[i].bytes < ret->total_bytes ||
            ret->total_capacity + c[i].capacity < ret->total_capacity)
            return -EINVAL;
        ret->total_bytes += c[i].bytes;
        ret->total_capacity += c[i].capacity;
    }
    ret->balanced = true;
    for (size_t i = 0; i < n; i++) {
        struct rbp_cluster *x = &c[i];

        x->target = 0;
        x->share_pct = x->target_pct = 0;
        x->outside = false;
        if (!x->counted || ret->total_capacity == 0)
            continue;
        x->target = rbp_muldiv(ret->total_bytes, x->capacity, ret->total_capacity);
        x->target_pct = 100.0 * (double) x->capacity / (double) ret->total_capacity;
        x->share_pct = ret->total_bytes ? 100.0 * (double) x->bytes / (double) ret->total_bytes : 0;
        x->outside = ret->total_bytes > 0 && (x->share_pct - x->target_pct > tolerance_pct ||
                                              x->target_pct - x->share_pct > tolerance_pct);
        if (x->outside)
            ret->balanced = false;
    }
    if (ret->balanced)
        return 0;
    excess = calloc(n + 1, sizeof(*excess));
    room = calloc(n + 1, sizeof(*room));
    if (!excess || !room) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        excess[i] = c[i].counted && c[i].bytes > c[i].target ? c[i].bytes - c[i].target : 0;
        room[i] = rbp_room(&c[i]);
    }
    for (;;) {
        size_t s = rbp_max(excess, n), d = rbp_max(room, n);
        uint64_t amount;

        if (s == n || d == n)
            break;
        amount = excess[s] < room[d] ? excess[s] : room[d];
        r = rbp_add(ret, s, d, amount);
        if (r < 0)
            goto out;
        excess[s] -= amount;
        room[d] -= amount;
    }
out:
    free(excess);
    free(room);
    if (r < 0)
        rbp_plan_release(ret);
    return r;
}

void rbp_plan_release(struct rbp_plan *p)
{
    free(p->moves);
    p->moves = NULL;
    p->n = 0;
}
