/* clusterctl/cmd_cluster.c — `clusterctl cluster add NAME`: registers a cluster (and records
 * its creation in mode_history). */
#include "ctl.h"
#include "db.h"
#include "mode_change.h"

#include <stdio.h>

static int cmd_cluster_add(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL, *reason = "added";
    const struct ctl_opt opts[] = {
        {"reason", true, &reason, NULL},
        {0},
    };
    struct db *db;
    int64_t id;
    char ids[24];
    int r;

    r = ctl_parse_name(ctl, argc, argv, opts, "cluster", &name, &reason);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    if (db_begin(db) < 0)
        goto fail;
    r = db_query_int64(db, "INSERT INTO clusters (name) VALUES ($1) RETURNING id", 1, &name, &id);
    if (r < 0) {
        if (db_is_unique_violation(db)) {
            db_rollback(db);
            ctl_err("cluster %s already exists", name);
            return CTL_FAILED;
        }
        goto fail;
    }
    snprintf(ids, sizeof(ids), "%lld", (long long) id);
    /* History speaks of the operator's level: rw = not forced lower. */
    if (db_run(db,
               "INSERT INTO mode_history (target_kind, target_id, target_name, from_mode,"
               " to_mode, reason, actor, program)"
               " VALUES ('cluster', $1, $2, NULL, 'rw', $3, $4, 'clusterctl')",
               4, (const char *[]){ids, name, reason, ctl_actor()}) < 0)
        goto fail;
    if (db_commit(db) < 0)
        goto fail;
    snprintf(ids, sizeof(ids), "cluster %lld", (long long) id);
    ctl_notify_topology(ctl, ids);
    printf("added cluster %s\n", name);
    return CTL_OK;
fail:
    ctl_err("cannot add cluster %s: %s", name, db_error(db));
    db_rollback(db);
    return CTL_FAILED;
}

const struct ctl_cmd ctl_cmd_cluster_add = {
    .name = "cluster add",
    .fn = cmd_cluster_add,
    .synopsis = "NAME",
    .summary = "register a cluster (add at least 3 storages before it takes writes)",
    .help = "options:\n"
            "  --reason TEXT   recorded in the history (default \"added\")\n",
};
