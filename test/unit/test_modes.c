/* test/unit/test_modes.c — every cell of the SPEC §4 transition table for both actors, with and
 * without objects and --force; the refusal and warning lines; the effective cluster mode. */
#include "check.h"
#include "modes.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* The expected outcome of one cell, written out from SPEC §4 independently of modes.c. */
enum expect { E_SAME, E_YES, E_EMPTY_ONLY, E_REPAIRD, E_NO };

static const enum expect spec_table[SMODE__COUNT][SMODE__COUNT] = {
    /* from rw */ {E_SAME, E_YES, E_YES, E_EMPTY_ONLY, E_NO},
    /* from ro */ {E_YES, E_SAME, E_YES, E_EMPTY_ONLY, E_NO},
    /* from down */ {E_NO, E_NO, E_SAME, E_YES, E_YES},
    /* from spare */ {E_EMPTY_ONLY, E_NO, E_YES, E_SAME, E_YES},
    /* from repair */ {E_REPAIRD, E_NO, E_YES, E_NO, E_SAME},
};

static bool expect_allowed(enum expect e, enum mode_actor actor, bool objects, bool force)
{
    switch (e) {
    case E_SAME:
    case E_YES:
        return true;
    case E_EMPTY_ONLY:
        return !objects || force;
    case E_REPAIRD:
        return actor == ACTOR_REPAIRD;
    case E_NO:
    default:
        return false;
    }
}

static void test_names(void)
{
    enum storage_mode sm;
    enum cluster_mode cm;

    for (int m = 0; m < SMODE__COUNT; m++) {
        CHECK(storage_mode_parse(storage_mode_name((enum storage_mode) m), &sm) == 0 &&
                  (int) sm == m,
              "storage mode %s round-trips", storage_mode_name((enum storage_mode) m));
    }
    for (int m = 0; m < CMODE__COUNT; m++) {
        CHECK(cluster_mode_parse(cluster_mode_name((enum cluster_mode) m), &cm) == 0 &&
                  (int) cm == m,
              "cluster mode %s round-trips", cluster_mode_name((enum cluster_mode) m));
    }
    CHECK_STR(storage_mode_name(SMODE_REPAIR), "repair", "repair name");
    CHECK_STR(cluster_mode_name(CMODE_DOWN), "down", "cluster down name");
    CHECK(storage_mode_parse("RW", &sm) == -EINVAL, "names are case-sensitive");
    CHECK(storage_mode_parse("", &sm) == -EINVAL, "empty storage mode refused");
    CHECK(storage_mode_parse(NULL, &sm) == -EINVAL, "NULL storage mode refused");
    CHECK(cluster_mode_parse("spare", &cm) == -EINVAL, "spare is not a cluster mode");
    CHECK(cluster_mode_parse("repair", &cm) == -EINVAL, "repair is not a cluster mode");
    CHECK_STR(storage_mode_name((enum storage_mode) 99), "?", "out-of-range storage mode");
}

/* 5 x 5 cells x 2 actors x objects x force = 200 decisions, each against the SPEC table. */
static void test_every_cell(void)
{
    char reason[512], warning[512];

    for (int from = 0; from < SMODE__COUNT; from++) {
        for (int to = 0; to < SMODE__COUNT; to++) {
            for (int actor = ACTOR_OPERATOR; actor <= ACTOR_REPAIRD; actor++) {
                for (int objects = 0; objects <= 1; objects++) {
                    for (int force = 0; force <= 1; force++) {
                        enum expect e = spec_table[from][to];
                        bool want = expect_allowed(e, (enum mode_actor) actor, objects, force);
                        int r;
                        bool risky;

                        memset(reason, 'x', sizeof(reason));
                        r = modes_check_transition("storage3", (enum storage_mode) from,
                                                   (enum storage_mode) to, (enum mode_actor) actor,
                                                   objects, force, reason, sizeof(reason));
                        CHECK(want ? r == 0 : r == -EPERM,
                              "%s -> %s actor=%s objects=%d force=%d: %s",
                              storage_mode_name((enum storage_mode) from),
                              storage_mode_name((enum storage_mode) to),
                              actor == ACTOR_REPAIRD ? "repaird" : "operator", objects, force,
                              want ? "allowed" : "refused");
                        if (want) {
                            CHECK(reason[0] == '\0', "allowed change leaves reason empty");
                        } else {
                            CHECK(strstr(reason, "storage3") != NULL &&
                                      strchr(reason, '\n') == NULL && strlen(reason) > 20,
                                  "refusal is one line naming the storage: %s", reason);
                        }
                        risky = modes_force_risk("storage3", (enum storage_mode) from,
                                                 (enum storage_mode) to, objects, warning,
                                                 sizeof(warning));
                        CHECK(risky == (e == E_EMPTY_ONLY && objects),
                              "%s -> %s objects=%d: risk %s",
                              storage_mode_name((enum storage_mode) from),
                              storage_mode_name((enum storage_mode) to), objects,
                              risky ? "warned" : "none");
                        CHECK(risky ? strncmp(warning, "storage3 ", 9) == 0 : warning[0] == '\0',
                              "warning line: '%s'", warning);
                    }
                }
            }
        }
    }
}

static void expect_reason(enum storage_mode from, enum storage_mode to, enum mode_actor actor,
                          bool objects, const char *want)
{
    char reason[512];
    int r =
        modes_check_transition("storage3", from, to, actor, objects, false, reason, sizeof(reason));

    CHECK(r == -EPERM, "%s -> %s refused", storage_mode_name(from), storage_mode_name(to));
    CHECK_STR(reason, want, "reason");
}

static void test_reasons(void)
{
    char small[16];

    expect_reason(SMODE_DOWN, SMODE_RW, ACTOR_OPERATOR, false,
                  "storage3 is down and may lack objects written while it was away; "
                  "bring it back with `clusterctl repair storage3`");
    expect_reason(SMODE_DOWN, SMODE_RO, ACTOR_REPAIRD, false,
                  "storage3 is down and may lack objects written while it was away; "
                  "bring it back with `clusterctl repair storage3`");
    expect_reason(SMODE_RW, SMODE_REPAIR, ACTOR_OPERATOR, false,
                  "storage3 is rw; only a down or spare storage can be repaired: "
                  "run `clusterctl mark-down storage3` first");
    expect_reason(SMODE_RO, SMODE_REPAIR, ACTOR_OPERATOR, false,
                  "storage3 is ro; only a down or spare storage can be repaired: "
                  "run `clusterctl mark-down storage3` first");
    expect_reason(SMODE_SPARE, SMODE_RO, ACTOR_OPERATOR, false,
                  "storage3 is a spare and serves no reads until it is complete; "
                  "`clusterctl repair storage3` brings it complete and then to rw");
    expect_reason(SMODE_REPAIR, SMODE_RW, ACTOR_OPERATOR, false,
                  "storage3 is being repaired; only repaird sets it rw when the recovery "
                  "succeeds (see `clusterctl jobs`; `clusterctl mark-down storage3` aborts it)");
    expect_reason(SMODE_REPAIR, SMODE_SPARE, ACTOR_OPERATOR, false,
                  "storage3 is being repaired; it can only go down (abort the repair: "
                  "`clusterctl mark-down storage3`) or, by repaird on success, rw");
    expect_reason(SMODE_SPARE, SMODE_RW, ACTOR_OPERATOR, true,
                  "storage3 is a spare and its cluster holds objects it may lack; run "
                  "`clusterctl repair storage3`, or `clusterctl mark-rw storage3 --force` to "
                  "accept missing copies");
    expect_reason(SMODE_RW, SMODE_SPARE, ACTOR_OPERATOR, true,
                  "storage3's cluster holds objects; rw -> spare takes a readable copy away and "
                  "needs --force");
    /* repaird gets the same refusal on a `*` cell: force is the operator's word only */
    expect_reason(SMODE_SPARE, SMODE_RW, ACTOR_REPAIRD, true,
                  "storage3 is a spare and its cluster holds objects it may lack; run "
                  "`clusterctl repair storage3`, or `clusterctl mark-rw storage3 --force` to "
                  "accept missing copies");

    /* a short buffer is truncated, never overrun; a NULL buffer is allowed */
    memset(small, 'z', sizeof(small));
    CHECK(modes_check_transition("storage3", SMODE_DOWN, SMODE_RW, ACTOR_OPERATOR, false, false,
                                 small, sizeof(small)) == -EPERM &&
              small[sizeof(small) - 1] == '\0' && strlen(small) == sizeof(small) - 1,
          "reason truncated to its buffer");
    CHECK(modes_check_transition("s", SMODE_DOWN, SMODE_RW, ACTOR_OPERATOR, false, false, NULL,
                                 0) == -EPERM,
          "NULL reason buffer");
    CHECK(modes_check_transition("s", (enum storage_mode) 7, SMODE_RW, ACTOR_OPERATOR, false, false,
                                 NULL, 0) == -EPERM,
          "unknown from mode refused");
}

static enum cluster_mode eff(enum cluster_mode forced, const char *modes)
{
    enum storage_mode m[16];
    size_t n = 0;
    char copy[128];
    char *save = NULL;

    snprintf(copy, sizeof(copy), "%s", modes);
    for (char *t = strtok_r(copy, " ", &save); t && n < 16; t = strtok_r(NULL, " ", &save)) {
        if (storage_mode_parse(t, &m[n]) < 0)
            return (enum cluster_mode) - 1;
        n++;
    }
    return modes_cluster_effective(forced, m, n);
}

#define CHECK_EFF(forced, modes, want)                                                             \
    CHECK(eff((forced), (modes)) == (want), "forced=%s members=[%s] -> %s",                        \
          cluster_mode_name(forced), (modes), cluster_mode_name(want))

static void test_effective(void)
{
    /* healthy */
    CHECK_EFF(CMODE_RW, "rw rw rw", CMODE_RW);
    CHECK_EFF(CMODE_RW, "rw rw rw rw", CMODE_RW);
    /* spares do not count against rw, nor for it */
    CHECK_EFF(CMODE_RW, "rw rw rw spare", CMODE_RW);
    CHECK_EFF(CMODE_RW, "rw rw spare", CMODE_RO);
    CHECK_EFF(CMODE_RW, "rw rw spare spare", CMODE_RO);
    /* fewer than three rw */
    CHECK_EFF(CMODE_RW, "rw rw", CMODE_RO);
    CHECK_EFF(CMODE_RW, "rw", CMODE_RO);
    /* one storage down / ro / in repair makes the cluster ro at once */
    CHECK_EFF(CMODE_RW, "rw rw rw down", CMODE_RO);
    CHECK_EFF(CMODE_RW, "rw rw down", CMODE_RO);
    CHECK_EFF(CMODE_RW, "rw rw rw ro", CMODE_RO);
    CHECK_EFF(CMODE_RW, "rw rw rw repair", CMODE_RO);
    CHECK_EFF(CMODE_RW, "rw rw rw down spare", CMODE_RO);
    /* ro members only */
    CHECK_EFF(CMODE_RW, "ro ro ro", CMODE_RO);
    CHECK_EFF(CMODE_RW, "ro down down", CMODE_RO);
    /* nothing readable */
    CHECK_EFF(CMODE_RW, "down down down", CMODE_DOWN);
    CHECK_EFF(CMODE_RW, "spare spare spare", CMODE_DOWN);
    CHECK_EFF(CMODE_RW, "repair down spare", CMODE_DOWN);
    CHECK_EFF(CMODE_RW, "", CMODE_DOWN);
    /* forced modes only lower */
    CHECK_EFF(CMODE_RO, "rw rw rw", CMODE_RO);
    CHECK_EFF(CMODE_DOWN, "rw rw rw", CMODE_DOWN);
    CHECK_EFF(CMODE_DOWN, "rw rw ro", CMODE_DOWN);
    CHECK_EFF(CMODE_RO, "down down down", CMODE_DOWN);
    CHECK_EFF(CMODE_RO, "rw rw down", CMODE_RO);
    CHECK(modes_cluster_effective(CMODE_RW, NULL, 0) == CMODE_DOWN, "no members: down");
}

static void test_readable_writable(void)
{
    const bool readable[SMODE__COUNT] = {true, true, false, false, false};
    const bool writable[SMODE__COUNT] = {true, false, false, true, false};

    for (int m = 0; m < SMODE__COUNT; m++) {
        CHECK(storage_mode_readable((enum storage_mode) m) == readable[m], "%s readable=%d",
              storage_mode_name((enum storage_mode) m), readable[m]);
        CHECK(storage_mode_writable((enum storage_mode) m) == writable[m], "%s writable=%d",
              storage_mode_name((enum storage_mode) m), writable[m]);
    }
}

int main(void)
{
    test_names();
    test_every_cell();
    test_reasons();
    test_effective();
    test_readable_writable();
    return check_done();
}
