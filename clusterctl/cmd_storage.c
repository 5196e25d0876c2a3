/* clusterctl/cmd_storage.c — `clusterctl storage add NAME --cluster C --uri http://HOST:PORT
 * [--mode spare]`: registers a storage in a cluster and records its first mode. */
#include "ctl.h"
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define STORAGE_URI_MAX 255

/* http://HOST:PORT with no path, query or credentials; HOST a DNS name, IPv4 or [IPv6]. */
static bool storage_uri_valid(const char *uri)
{
    const char *p = uri + 7, *colon;
    unsigned long port = 0;
    size_t digits = 0;

    if (strlen(uri) > STORAGE_URI_MAX || strncmp(uri, "http://", 7) != 0)
        return false;
    if (*p == '[') {
        const char *close = strchr(p, ']');

        if (!close || close == p + 1)
            return false;
        for (const char *q = p + 1; q < close; q++)
            if (!strchr("0123456789abcdefABCDEF:.", *q))
                return false;
        colon = close + 1;
        if (*colon != ':')
            return false;
    } else {
        colon = strchr(p, ':');
        if (!colon || colon == p || *p == '.' || *p == '-')
            return false;
        for (const char *q = p; q < colon; q++) {
            bool alnum =
                (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9');

            if (!alnum && *q != '.' && *q != '-')
                return false;
        }
    }
    for (p = colon + 1; *p; p++, digits++) {
        if (*p < '0' || *p > '9' || digits >= 5)
            return false;
        port = port * 10 + (unsigned long) (*p - '0');
    }
    return digits > 0 && port >= 1 && port <= 65535;
}

/* The storage that already uses uri, for the duplicate message. */
static void storage_uri_owner(struct db *db, const char *uri, char *out, size_t outlen)
{
    PGresult *res = db_exec(db, "SELECT name FROM storages WHERE uri = $1", 1, &uri);

    snprintf(out, outlen, "another storage");
    if (res && PQntuples(res) == 1)
        snprintf(out, outlen, "storage %s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* Inside the transaction: refuses a rw storage for a cluster that holds objects.
 * Returns 0 ok, CTL_FAILED refused or failed (message printed). */
static int storage_check_empty(struct db *db, const char *cluster_id, const char *cluster,
                               const char *name)
{
    int r = db_query_int64(db, "SELECT 1 FROM objects WHERE cluster_id = $1 LIMIT 1", 1,
                           &cluster_id, NULL);

    if (r == -ENOENT)
        return 0;
    if (r == 0)
        ctl_err("cluster %s already holds objects: a new rw storage would lack them; add %s "
                "with --mode spare, then run `clusterctl repair %s`",
                cluster, name, name);
    else
        ctl_err("cannot add storage %s: %s", name, db_error(db));
    return CTL_FAILED;
}

/* Inserts the row and its history row; *ret_id receives the storage id. */
static int storage_insert(struct db *db, const char *name, const char *cluster, const char *uri,
                          const char *mode, int64_t *ret_id)
{
    char cluster_id[24], ids[24];
    int64_t id;
    int r;

    /* The cluster row lock orders this against concurrent mode changes of the cluster. */
    r = db_query_int64(db, "SELECT id FROM clusters WHERE name = $1 FOR UPDATE", 1, &cluster, &id);
    if (r == -ENOENT) {
        ctl_err("cluster %s does not exist (add it with `clusterctl cluster add %s`)", cluster,
                cluster);
        return CTL_FAILED;
    }
    if (r < 0)
        goto fail;
    snprintf(cluster_id, sizeof(cluster_id), "%lld", (long long) id);
    if (strcmp(mode, "rw") == 0 && storage_check_empty(db, cluster_id, cluster, name) != 0)
        return CTL_FAILED;
    r = db_query_int64(db,
                       "INSERT INTO storages (name, cluster_id, uri, mode)"
                       " VALUES ($1, $2, $3, $4) RETURNING id",
                       4, (const char *[]){name, cluster_id, uri, mode}, &id);
    if (r < 0 && db_is_unique_violation(db)) {
        char owner[100];

        if (strcmp(db_constraint(db), "storages_uri_key") == 0) {
            db_rollback(db);
            storage_uri_owner(db, uri, owner, sizeof(owner));
            ctl_err("uri %s is already used by %s", uri, owner);
        } else {
            ctl_err("storage %s already exists", name);
        }
        return CTL_FAILED;
    }
    if (r < 0)
        goto fail;
    *ret_id = id;
    snprintf(ids, sizeof(ids), "%lld", (long long) id);
    if (db_run(db,
               "INSERT INTO mode_history (target_kind, target_id, target_name, from_mode,"
               " to_mode, reason, actor, program)"
               " VALUES ('storage', $1, $2, NULL, $3, 'added', $4, 'clusterctl')",
               4, (const char *[]){ids, name, mode, ctl_actor()}) < 0)
        goto fail;
    return CTL_OK;
fail:
    ctl_err("cannot add storage %s: %s", name, db_error(db));
    return CTL_FAILED;
}

static int cmd_storage_add(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL, *cluster = NULL, *uri = NULL, *mode = "rw";
    const struct ctl_opt opts[] = {
        {"cluster", true, &cluster, NULL},
        {"uri", true, &uri, NULL},
        {"mode", true, &mode, NULL},
        {0},
    };
    struct db *db;
    char msg[64];
    int64_t id = 0;
    int r;

    r = ctl_parse_name(ctl, argc, argv, opts, "storage", &name, NULL);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (!cluster)
        return ctl_usage_err(ctl, "missing --cluster");
    if (!uri)
        return ctl_usage_err(ctl, "missing --uri");
    if (!storage_uri_valid(uri))
        return ctl_usage_err(ctl, "bad uri '%s': expected http://HOST:PORT with no path", uri);
    if (strcmp(mode, "rw") != 0 && strcmp(mode, "spare") != 0)
        return ctl_usage_err(ctl, "bad mode '%s': a new storage is rw (default) or spare", mode);
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    if (db_begin(db) < 0) {
        ctl_err("cannot add storage %s: %s", name, db_error(db));
        return CTL_FAILED;
    }
    r = storage_insert(db, name, cluster, uri, mode, &id);
    if (r == CTL_OK && db_commit(db) < 0) {
        ctl_err("cannot add storage %s: %s", name, db_error(db));
        r = CTL_FAILED;
    }
    db_rollback(db); /* no-op after a commit */
    if (r != CTL_OK)
        return r;
    snprintf(msg, sizeof(msg), "storage %lld", (long long) id);
    ctl_notify_topology(ctl, msg);
    printf("added storage %s to cluster %s (%s, %s)\n", name, cluster, mode, uri);
    return CTL_OK;
}

const struct ctl_cmd ctl_cmd_storage_add = {
    .name = "storage add",
    .fn = cmd_storage_add,
    .synopsis = "NAME --cluster C --uri http://HOST:PORT [--mode spare]",
    .summary = "register a storage (one storaged) in a cluster",
    .help = "options:\n"
            "  --cluster C     the cluster it belongs to (must exist)\n"
            "  --uri URL       its storaged, http://HOST:PORT (no path)\n"
            "  --mode MODE     rw (default) or spare. A cluster that already holds objects only\n"
            "                  takes a spare: run `clusterctl repair NAME` afterwards to copy a\n"
            "                  peer's disk onto it and bring it to rw.\n",
};
