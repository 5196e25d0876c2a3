/* clusterctl/cmd_mode.c — `clusterctl mark-rw|mark-ro|mark-down|mark-spare STORAGE` and
 * `clusterctl cluster mark-rw|mark-ro|mark-down NAME`: operator mode changes via mode_change.h. */
#include "ctl.h"
#include "mode_change.h"

#include <stdio.h>
#include <string.h>

/* The mode a command sets: its name ends in "mark-<mode>". */
static const char *cmd_mode_target(const struct ctl *ctl)
{
    const char *p = strstr(ctl->cmd->name, "mark-");

    return p ? p + 5 : "";
}

/* Prints the warning, the no-op line or the one-line refusal/error; returns the exit status. */
static int cmd_mode_report(const struct mode_change_result *res)
{
    if (res->warning[0])
        ctl_err("warning (--force): %s", res->warning);
    switch (res->outcome) {
    case MODE_CHANGED:
        return CTL_OK;
    case MODE_UNCHANGED:
        printf("%s\n", res->message);
        return CTL_OK;
    case MODE_REFUSED:
        ctl_err("refused: %s", res->message);
        return CTL_FAILED;
    case MODE_NOT_FOUND:
    case MODE_FAILED:
    default:
        ctl_err("%s", res->message[0] ? res->message : "failed");
        return CTL_FAILED;
    }
}

/* "(cluster c1: rw -> ro)" or "(cluster c1 stays ro)". */
static void cmd_mode_effect(const struct mode_change_result *res, char *out, size_t outlen)
{
    if (res->effective_before != res->effective_after)
        snprintf(out, outlen, "cluster %s: %s -> %s", res->cluster_name,
                 cluster_mode_name(res->effective_before), cluster_mode_name(res->effective_after));
    else
        snprintf(out, outlen, "cluster %s stays %s", res->cluster_name,
                 cluster_mode_name(res->effective_after));
}

static int cmd_mark_storage(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL, *reason = NULL;
    bool force = false;
    const struct ctl_opt opts[] = {
        {"reason", true, &reason, NULL},
        {"force", false, NULL, &force},
        {0},
    };
    struct mode_storage_request req = {0};
    struct mode_change_result res;
    char effect[160];
    struct db *db;
    int r;

    r = ctl_parse_name(ctl, argc, argv, opts, "storage", &name, &reason);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (storage_mode_parse(cmd_mode_target(ctl), &req.to) < 0)
        return ctl_usage_err(ctl, "unknown mode");
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    req.storage_name = name;
    req.actor = ACTOR_OPERATOR;
    req.force = force;
    req.reason = reason;
    req.who = (struct mode_who){ctl_actor(), "clusterctl"};
    mode_change_storage(db, ctl_kv(ctl), &req, &res); /* res.outcome says it all */
    if (res.outcome == MODE_CHANGED) {
        cmd_mode_effect(&res, effect, sizeof(effect));
        printf("%s: %s -> %s (%s)\n", res.storage_name, storage_mode_name(res.from),
               storage_mode_name(res.to), effect);
    }
    return cmd_mode_report(&res);
}

static int cmd_mark_cluster(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL, *reason = NULL;
    const struct ctl_opt opts[] = {
        {"reason", true, &reason, NULL},
        {0},
    };
    struct mode_change_result res;
    struct mode_who who;
    enum cluster_mode forced;
    char effect[64];
    struct db *db;
    int r;

    r = ctl_parse_name(ctl, argc, argv, opts, "cluster", &name, &reason);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (cluster_mode_parse(cmd_mode_target(ctl), &forced) < 0)
        return ctl_usage_err(ctl, "unknown mode");
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    who = (struct mode_who){ctl_actor(), "clusterctl"};
    mode_change_cluster(db, ctl_kv(ctl), name, forced, reason, &who, &res);
    if (res.outcome == MODE_CHANGED) {
        if (res.effective_before != res.effective_after)
            snprintf(effect, sizeof(effect), "effective mode %s -> %s",
                     cluster_mode_name(res.effective_before),
                     cluster_mode_name(res.effective_after));
        else
            snprintf(effect, sizeof(effect), "effective mode stays %s",
                     cluster_mode_name(res.effective_after));
        if (forced == CMODE_RW)
            printf("cluster %s: no longer forced (was %s); %s\n", res.cluster_name,
                   cluster_mode_name(res.forced_from), effect);
        else
            printf("cluster %s: forced %s; %s\n", res.cluster_name, cluster_mode_name(forced),
                   effect);
    }
    return cmd_mode_report(&res);
}

#define STORAGE_MARK_HELP(extra)                                                                   \
    "options:\n"                                                                                   \
    "  --reason TEXT   why (recorded in `clusterctl history`; one line, up to 500 bytes)\n"        \
    "  --force         allow a change the cluster's objects make risky (rw/ro -> spare,\n"         \
    "                  spare -> rw while the cluster holds objects); a warning says what\n"        \
    "                  it risks\n\n" extra                                                         \
    "Allowed changes: rw <-> ro; rw|ro|spare|repair -> down; down -> spare;\n"                     \
    "rw|ro -> spare and spare -> rw only while the cluster is empty, or with --force;\n"           \
    "down and spare are brought back with `clusterctl repair`. A refused change exits 1,\n"        \
    "changes nothing and says why. Works while the dispatcher and repaird are down.\n"

const struct ctl_cmd ctl_cmd_mark_rw = {
    .name = "mark-rw",
    .fn = cmd_mark_storage,
    .synopsis = "STORAGE [--reason TEXT] [--force]",
    .summary = "let a storage take reads and writes again (from ro, or spare)",
    .help = STORAGE_MARK_HELP(""),
};

const struct ctl_cmd ctl_cmd_mark_ro = {
    .name = "mark-ro",
    .fn = cmd_mark_storage,
    .synopsis = "STORAGE [--reason TEXT] [--force]",
    .summary = "make a storage read-only (its cluster becomes ro: writes go elsewhere)",
    .help = STORAGE_MARK_HELP(""),
};

const struct ctl_cmd ctl_cmd_mark_down = {
    .name = "mark-down",
    .fn = cmd_mark_storage,
    .synopsis = "STORAGE [--reason TEXT] [--force]",
    .summary = "take a storage out of all traffic (first step of a disk replacement)",
    .help = STORAGE_MARK_HELP("Example: clusterctl mark-down storage3 --reason \"disk errors, "
                              "ticket 4711\"\n\n"),
};

const struct ctl_cmd ctl_cmd_mark_spare = {
    .name = "mark-spare",
    .fn = cmd_mark_storage,
    .synopsis = "STORAGE [--reason TEXT] [--force]",
    .summary = "make a storage a hot spare (gets every write, serves no reads)",
    .help = STORAGE_MARK_HELP(""),
};

#define CLUSTER_MARK_HELP                                                                          \
    "options:\n"                                                                                   \
    "  --reason TEXT   why (recorded in `clusterctl history`)\n\n"                                 \
    "A cluster's effective mode is derived from its storages (rw only with at least 3 rw\n"        \
    "storages and every non-spare member rw); mark-ro / mark-down force it lower,\n"               \
    "mark-rw lifts the force.\n"

const struct ctl_cmd ctl_cmd_cluster_mark_rw = {
    .name = "cluster mark-rw",
    .fn = cmd_mark_cluster,
    .synopsis = "NAME [--reason TEXT]",
    .summary = "lift an operator's forced mode (its storages decide again)",
    .help = CLUSTER_MARK_HELP,
};

const struct ctl_cmd ctl_cmd_cluster_mark_ro = {
    .name = "cluster mark-ro",
    .fn = cmd_mark_cluster,
    .synopsis = "NAME [--reason TEXT]",
    .summary = "force a cluster read-only (writes go to other clusters)",
    .help = CLUSTER_MARK_HELP,
};

const struct ctl_cmd ctl_cmd_cluster_mark_down = {
    .name = "cluster mark-down",
    .fn = cmd_mark_cluster,
    .synopsis = "NAME [--reason TEXT]",
    .summary = "force a cluster down (no reads, no writes)",
    .help = CLUSTER_MARK_HELP,
};
