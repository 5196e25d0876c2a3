/* test/unit/test_rebalance_plan.c — clusterctl/rebalance_plan.c: targets from capacity shares,
 * the tolerance, the moves a new empty cluster gets, clusters that only give (ro), room limits,
 * and what is left out. */
#include "check.h"
#include "rebalance_plan.h"

#include <errno.h>
#include <stdint.h>

#define GIB (1ull << 30)

static struct rbp_cluster cl(uint64_t bytes, uint64_t capacity, bool receive)
{
    return (struct rbp_cluster){.counted = true,
                                .can_receive = receive,
                                .bytes = bytes,
                                .capacity = capacity,
                                .free = capacity - bytes};
}

static uint64_t moved_to(const struct rbp_plan *p, size_t dst)
{
    uint64_t n = 0;

    for (size_t i = 0; i < p->n; i++)
        n += p->moves[i].dst == dst ? p->moves[i].bytes : 0;
    return n;
}

static uint64_t moved_from(const struct rbp_plan *p, size_t src)
{
    uint64_t n = 0;

    for (size_t i = 0; i < p->n; i++)
        n += p->moves[i].src == src ? p->moves[i].bytes : 0;
    return n;
}

static void test_new_empty_cluster(void)
{
    struct rbp_cluster c[3] = {cl(60 * GIB, 100 * GIB, true), cl(60 * GIB, 100 * GIB, true),
                               cl(0, 100 * GIB, true)};
    struct rbp_plan p;

    CHECK(rbp_compute(c, 3, 5, &p) == 0 && !p.balanced, "a new empty cluster: unbalanced");
    CHECK(p.total_bytes == 120 * GIB && p.total_capacity == 300 * GIB, "totals");
    CHECK(c[0].target == 40 * GIB && c[2].target == 40 * GIB, "targets: a third each");
    CHECK(c[2].outside && c[0].outside, "all three are off by more than 5 points");
    CHECK(p.n == 2 && moved_to(&p, 2) == 40 * GIB, "two moves, 40 GiB into the new cluster");
    CHECK(moved_from(&p, 0) == 20 * GIB && moved_from(&p, 1) == 20 * GIB,
          "each full cluster gives its excess: 20 GiB");
    rbp_plan_release(&p);
    CHECK(p.moves == NULL && p.n == 0, "release empties the plan");
}

static void test_tolerance(void)
{
    struct rbp_cluster c[2] = {cl(52 * GIB, 100 * GIB, true), cl(48 * GIB, 100 * GIB, true)};
    struct rbp_plan p;

    CHECK(rbp_compute(c, 2, 5, &p) == 0 && p.balanced && p.n == 0, "52/48 is within 5 points");
    CHECK(rbp_compute(c, 2, 1, &p) == 0 && !p.balanced, "but not within 1 point");
    CHECK(p.n == 1 && p.moves[0].src == 0 && p.moves[0].dst == 1 && p.moves[0].bytes == 2 * GIB,
          "2 GiB from the fuller to the emptier");
    rbp_plan_release(&p);
    CHECK(rbp_compute(c, 2, -1, &p) == -EINVAL, "negative tolerance refused");
    CHECK(rbp_compute(c, 2, 101, &p) == -EINVAL, "tolerance over 100 refused");
    c[0].bytes = c[1].bytes = 0;
    c[0].free = c[1].free = 100 * GIB;
    CHECK(rbp_compute(c, 2, 0, &p) == 0 && p.balanced, "no bytes at all: balanced");
}

static void test_capacity_shares(void)
{
    /* a cluster twice as large should hold twice as much */
    struct rbp_cluster c[2] = {cl(30 * GIB, 100 * GIB, true), cl(30 * GIB, 200 * GIB, true)};
    struct rbp_plan p;

    CHECK(rbp_compute(c, 2, 5, &p) == 0 && !p.balanced, "equal bytes, unequal capacity");
    CHECK(c[0].target == 20 * GIB && c[1].target == 40 * GIB, "targets follow capacity");
    CHECK(p.n == 1 && p.moves[0].src == 0 && p.moves[0].bytes == 10 * GIB,
          "10 GiB to the larger one");
    rbp_plan_release(&p);
}

static void test_ro_gives_never_receives(void)
{
    struct rbp_cluster c[3] = {cl(90 * GIB, 100 * GIB, false), cl(0, 100 * GIB, false),
                               cl(0, 100 * GIB, true)};
    struct rbp_plan p;

    CHECK(rbp_compute(c, 3, 5, &p) == 0 && !p.balanced, "a full ro cluster");
    CHECK(moved_to(&p, 1) == 0, "an ro cluster never receives");
    CHECK(p.n == 1 && p.moves[0].src == 0 && p.moves[0].dst == 2 && p.moves[0].bytes == 30 * GIB,
          "the ro cluster gives its excess to the rw one");
    rbp_plan_release(&p);
}

static void test_room_and_left_out(void)
{
    struct rbp_cluster c[3] = {cl(90 * GIB, 100 * GIB, true), cl(0, 100 * GIB, true),
                               cl(50 * GIB, 100 * GIB, true)};
    struct rbp_plan p;

    c[1].free = 15 * GIB; /* the disk is shared with something else */
    c[2].counted = false; /* e.g. a storage did not answer /_stats */
    CHECK(rbp_compute(c, 3, 5, &p) == 0 && !p.balanced, "unbalanced");
    CHECK(p.total_bytes == 90 * GIB, "a cluster left out does not count");
    CHECK(c[2].target == 0 && !c[2].outside, "no target for it");
    CHECK(p.n == 1 && moved_to(&p, 1) == 5 * GIB,
          "the destination is filled only up to 90%% of its capacity");
    rbp_plan_release(&p);
    c[1].free = 5 * GIB;
    CHECK(rbp_compute(c, 3, 5, &p) == 0 && !p.balanced && p.n == 0, "no room anywhere: no moves");
    rbp_plan_release(&p);
}

int main(void)
{
    test_new_empty_cluster();
    test_tolerance();
    test_capacity_shares();
    test_ro_gives_never_receives();
    test_room_and_left_out();
    return check_done();
}
