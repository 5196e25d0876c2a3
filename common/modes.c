/* common/modes.c — the storage/cluster mode state machine of SPEC §4: the transition table,
 * the one-line reason for every refusal, the risk of a forced change, and the effective mode. */
#include "modes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const storage_names[SMODE__COUNT] = {"rw", "ro", "down", "spare", "repair"};
static const char *const cluster_names[CMODE__COUNT] = {"rw", "ro", "down"};

/* What a cell of the SPEC §4 table says. */
enum cell {
    CELL_SAME = 0,   /* from == to: nothing to do */
    CELL_YES,        /* allowed */
    CELL_EMPTY_ONLY, /* `*`: only while the cluster holds no objects, or with --force */
    CELL_REPAIRD,    /* repair -> rw: by repaird only, on success */
    CELL_NO,         /* refused */
};

/* clang-format off */
static const enum cell transition_table[SMODE__COUNT][SMODE__COUNT] = {
    /*          to:   rw               ro         down       spare            repair */
    [SMODE_RW] =     {CELL_SAME,       CELL_YES,  CELL_YES,  CELL_EMPTY_ONLY, CELL_NO},
    [SMODE_RO] =     {CELL_YES,        CELL_SAME, CELL_YES,  CELL_EMPTY_ONLY, CELL_NO},
    [SMODE_DOWN] =   {CELL_NO,         CELL_NO,   CELL_SAME, CELL_YES,        CELL_YES},
    [SMODE_SPARE] =  {CELL_EMPTY_ONLY, CELL_NO,   CELL_YES,  CELL_SAME,       CELL_YES},
    [SMODE_REPAIR] = {CELL_REPAIRD,    CELL_NO,   CELL_YES,  CELL_NO,         CELL_SAME},
};
/* clang-format on */

const char *storage_mode_name(enum storage_mode m)
{
    return (unsigned) m < SMODE__COUNT ? storage_names[m] : "?";
}

const char *cluster_mode_name(enum cluster_mode m)
{
    return (unsigned) m < CMODE__COUNT ? cluster_names[m] : "?";
}

int storage_mode_parse(const char *s, enum storage_mode *ret)
{
    for (int i = 0; s && i < SMODE__COUNT; i++) {
        if (strcmp(s, storage_names[i]) == 0) {
            *ret = (enum storage_mode) i;
            return 0;
        }
    }
    return -EINVAL;
}

int cluster_mode_parse(const char *s, enum cluster_mode *ret)
{
    for (int i = 0; s && i < CMODE__COUNT; i++) {
        if (strcmp(s, cluster_names[i]) == 0) {
            *ret = (enum cluster_mode) i;
            return 0;
        }
    }
    return -EINVAL;
}

/* The reason for a refused cell (CELL_NO, or CELL_REPAIRD asked by an operator). */
static void refusal_reason(const char *name, enum storage_mode from, enum storage_mode to,
                           char *reason, size_t reason_len)
{
    switch (from) {
    case SMODE_RW:
    case SMODE_RO: /* only -> repair is refused */
        snprintf(reason, reason_len,
                 "%s is %s; only a down or spare storage can be repaired: "
                 "run `clusterctl mark-down %s` first",
                 name, storage_names[from], name);
        return;
    case SMODE_DOWN:
        snprintf(reason, reason_len,
                 "%s is down and may lack objects written while it was away; "
                 "bring it back with `clusterctl repair %s`",
                 name, name);
        return;
    case SMODE_SPARE: /* only -> ro is refused */
        snprintf(reason, reason_len,
                 "%s is a spare and serves no reads until it is complete; "
                 "`clusterctl repair %s` brings it complete and then to rw",
                 name, name);
        return;
    case SMODE_REPAIR:
        if (to == SMODE_RW)
            snprintf(reason, reason_len,
                     "%s is being repaired; only repaird sets it rw when the recovery "
                     "succeeds (see `clusterctl jobs`; `clusterctl mark-down %s` aborts it)",
                     name, name);
        else
            snprintf(reason, reason_len,
                     "%s is being repaired; it can only go down (abort the repair: "
                     "`clusterctl mark-down %s`) or, by repaird on success, rw",
                     name, name);
        return;
    default:
        snprintf(reason, reason_len, "%s: %s -> %s is not a transition", name,
                 storage_mode_name(from), storage_mode_name(to));
        return;
    }
}

/* The reason for a `*` cell refused because the cluster holds objects and --force is absent. */
static void needs_force_reason(const char *name, enum storage_mode from, enum storage_mode to,
                               char *reason, size_t reason_len)
{
    if (to == SMODE_RW)
        snprintf(reason, reason_len,
                 "%s is a spare and its cluster holds objects it may lack; run "
                 "`clusterctl repair %s`, or `clusterctl mark-rw %s --force` to accept "
                 "missing copies",
                 name, name, name);
    else
        snprintf(reason, reason_len,
                 "%s's cluster holds objects; %s -> spare takes a readable copy away and "
                 "needs --force",
                 name, storage_names[from]);
}

int modes_check_transition(const char *storage_name, enum storage_mode from, enum storage_mode to,
                           enum mode_actor actor, bool cluster_has_objects, bool force,
                           char *reason, size_t reason_len)
{
    char dummy[1];

    if (!reason || reason_len == 0) {
        reason = dummy;
        reason_len = sizeof(dummy);
    }
    reason[0] = '\0';
    if (!storage_name)
        storage_name = "storage";
    if ((unsigned) from >= SMODE__COUNT || (unsigned) to >= SMODE__COUNT) {
        snprintf(reason, reason_len, "%s: unknown mode", storage_name);
        return -EPERM;
    }
    switch (transition_table[from][to]) {
    case CELL_SAME:
    case CELL_YES:
        return 0;
    case CELL_EMPTY_ONLY:
        if (!cluster_has_objects || force)
            return 0;
        needs_force_reason(storage_name, from, to, reason, reason_len);
        return -EPERM;
    case CELL_REPAIRD:
        if (actor == ACTOR_REPAIRD)
            return 0;
        refusal_reason(storage_name, from, to, reason, reason_len);
        return -EPERM;
    case CELL_NO:
    default:
        refusal_reason(storage_name, from, to, reason, reason_len);
        return -EPERM;
    }
}

bool modes_force_risk(const char *storage_name, enum storage_mode from, enum storage_mode to,
                      bool cluster_has_objects, char *warning, size_t warning_len)
{
    bool risky;

    if (warning && warning_len)
        warning[0] = '\0';
    if ((unsigned) from >= SMODE__COUNT || (unsigned) to >= SMODE__COUNT)
        return false;
    risky = transition_table[from][to] == CELL_EMPTY_ONLY && cluster_has_objects;
    if (!risky || !warning || warning_len == 0)
        return risky;
    if (!storage_name)
        storage_name = "storage";
    if (to == SMODE_RW)
        snprintf(warning, warning_len,
                 "%s may lack objects written before it joined or while it was away; "
                 "reads of those fail over to other copies and queue repairs "
                 "(`clusterctl verify` finds them)",
                 storage_name);
    else
        snprintf(warning, warning_len,
                 "%s keeps its files but serves no reads as a spare, so its cluster has "
                 "one readable copy less; it cannot become rw again without --force or "
                 "`clusterctl repair %s`",
                 storage_name, storage_name);
    return true;
}

enum cluster_mode modes_cluster_effective(enum cluster_mode forced,
                                          const enum storage_mode *members, size_t n)
{
    size_t nrw = 0, nreadable = 0;
    bool all_rw = true;
    enum cluster_mode derived;

    for (size_t i = 0; i < n; i++) {
        enum storage_mode m = members[i];

        if (m == SMODE_RW)
            nrw++;
        if (storage_mode_readable(m))
            nreadable++;
        if (m != SMODE_RW && m != SMODE_SPARE)
            all_rw = false;
    }
    if (nrw >= MODES_MIN_RW && all_rw)
        derived = CMODE_RW;
    else if (nreadable > 0)
        derived = CMODE_RO;
    else
        derived = CMODE_DOWN;
    /* A forced mode only ever lowers the derived one: rw > ro > down. */
    if ((unsigned) forced < CMODE__COUNT && forced > derived)
        return forced;
    return derived;
}

bool storage_mode_readable(enum storage_mode m)
{
    return m == SMODE_RW || m == SMODE_RO;
}

bool storage_mode_writable(enum storage_mode m)
{
    return m == SMODE_RW || m == SMODE_SPARE;
}
