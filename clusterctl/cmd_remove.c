/* clusterctl/cmd_remove.c — `clusterctl storage remove NAME [--force]` and
 * `clusterctl cluster remove NAME`: taking members and empty clusters out of the metadata. */
#include "ctl.h"
#include "mode_change.h"

#include <stdio.h>

/* Prints the outcome of a removal; returns the exit status. */
static int cmd_remove_report(const struct mode_change_result *res, const char *what)
{
    switch (res->outcome) {
    case MODE_CHANGED:
        if (res->storage_id) {
            if (res->effective_before != res->effective_after)
                printf("removed %s %s (was %s; cluster %s: %s -> %s)\n", what, res->storage_name,
                       storage_mode_name(res->from), res->cluster_name,
                       cluster_mode_name(res->effective_before),
                       cluster_mode_name(res->effective_after));
            else
                printf("removed %s %s (was %s; cluster %s stays %s)\n", what, res->storage_name,
                       storage_mode_name(res->from), res->cluster_name,
                       cluster_mode_name(res->effective_after));
        } else {
            printf("removed %s %s\n", what, res->cluster_name);
        }
        if (res->warning[0])
            ctl_err("warning (--force): %s", res->warning);
        return CTL_OK;
    case MODE_REFUSED:
        ctl_err("refused: %s", res->message);
        return CTL_FAILED;
    default:
        ctl_err("%s", res->message[0] ? res->message : "failed");
        return CTL_FAILED;
    }
}

static int cmd_storage_remove(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL, *reason = NULL;
    bool force = false;
    const struct ctl_opt opts[] = {
        {"force", false, NULL, &force},
        {"reason", true, &reason, NULL},
        {0},
    };
    struct mode_change_result res;
    struct mode_who who;
    struct db *db;
    int r;

    r = ctl_parse_name(ctl, argc, argv, opts, "storage", &name, &reason);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    who = (struct mode_who){ctl_actor(), "clusterctl"};
    mode_change_remove_storage(db, ctl_kv(ctl), name, force, reason, &who, &res);
    return cmd_remove_report(&res, "storage");
}

static int cmd_cluster_remove(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL, *reason = NULL;
    const struct ctl_opt opts[] = {
        {"reason", true, &reason, NULL},
        {0},
    };
    struct mode_change_result res;
    struct mode_who who;
    struct db *db;
    int r;

    r = ctl_parse_name(ctl, argc, argv, opts, "cluster", &name, &reason);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    who = (struct mode_who){ctl_actor(), "clusterctl"};
    mode_change_remove_cluster(db, ctl_kv(ctl), name, reason, &who, &res);
    return cmd_remove_report(&res, "cluster");
}

const struct ctl_cmd ctl_cmd_storage_remove = {
    .name = "storage remove",
    .fn = cmd_storage_remove,
    .synopsis = "NAME [--force] [--reason TEXT]",
    .summary = "forget a storage (while its cluster is empty, or --force)",
    .help = "options:\n"
            "  --force         remove it although its cluster holds objects: the copies it\n"
            "                  holds no longer count (its disk is not touched)\n"
            "  --reason TEXT   recorded in `clusterctl history`\n\n"
            "A storage in repair is never removed: abort with `clusterctl mark-down` first.\n",
};

const struct ctl_cmd ctl_cmd_cluster_remove = {
    .name = "cluster remove",
    .fn = cmd_cluster_remove,
    .synopsis = "NAME [--reason TEXT]",
    .summary = "forget an empty cluster",
    .help = "options:\n"
            "  --reason TEXT   recorded in `clusterctl history`\n\n"
            "Remove its storages first with `clusterctl storage remove`.\n",
};
