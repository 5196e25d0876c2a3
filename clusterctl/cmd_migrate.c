/* clusterctl/cmd_migrate.c — `clusterctl migrate`: applies the embedded migrations in order,
 * each in its own transaction under an advisory lock, recorded in schema_migrations. */
#include "ctl.h"
#include "db.h"
#include "migrations.h"

#include <errno.h>
#include <stdio.h>

/* pg_advisory_xact_lock key shared by every clusterctl migrate ("STFMIGR" in ASCII). */
#define MIGRATE_LOCK_KEY "23491051873978706"

static const char create_table_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       " version    integer PRIMARY KEY,"
                                       " name       text NOT NULL,"
                                       " applied_at timestamptz NOT NULL DEFAULT now())";

/* Runs sql inside a transaction that holds the migration lock. */
static int migrate_locked_begin(struct db *db)
{
    if (db_begin(db) < 0)
        return -1;
    if (db_run(db, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", 0, NULL) < 0) {
        db_rollback(db);
        return -1;
    }
    return 0;
}

/* Applies one migration unless it is already recorded. Returns 1 applied, 0 skipped, -1 error. */
static int migrate_one(struct db *db, const struct migration *m)
{
    char version[16];
    const char *params[2] = {version, m->name};
    int r;

    snprintf(version, sizeof(version), "%d", m->version);
    if (migrate_locked_begin(db) < 0)
        goto fail;
    r = db_query_int64(db, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, params, NULL);
    if (r == 0) {
        db_rollback(db);
        return 0;
    }
    if (r != -ENOENT)
        goto fail;
    if (db_run_script(db, m->sql) < 0)
        goto fail;
    if (db_run(db, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, params) < 0)
        goto fail;
    if (db_commit(db) < 0)
        goto fail;
    return 1;
fail:
    ctl_err("migration %s failed: %s", m->name, db_error(db));
    db_rollback(db);
    return -1;
}

/* Warns about versions recorded in the database that this binary does not know. */
static void migrate_check_newer(struct db *db)
{
    char latest[16];
    const char *params[1] = {latest};
    PGresult *res;

    snprintf(latest, sizeof(latest), "%d",
             migrations_count ? migrations[migrations_count - 1].version : 0);
    res = db_exec(db, "SELECT name FROM schema_migrations WHERE version > $1 ORDER BY version", 1,
                  params);
    if (!res)
        return;
    for (int i = 0; i < PQntuples(res); i++)
        fprintf(stderr,
                "clusterctl: warning: the database has migration %s, which this "
                "clusterctl does not know (it is older than the schema)\n",
                PQgetvalue(res, i, 0));
    PQclear(res);
}

static int cmd_migrate(struct ctl *ctl, int argc, char **argv)
{
    struct db *db;
    int r, applied = 0;

    r = ctl_parse(ctl, argc, argv, NULL, NULL, 0, 0, NULL);
    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    db = ctl_db(ctl);
    if (!db)
        return CTL_FAILED;
    if (migrate_locked_begin(db) < 0 || db_run(db, create_table_sql, 0, NULL) < 0 ||
        db_commit(db) < 0) {
        ctl_err("cannot create schema_migrations: %s", db_error(db));
        db_rollback(db);
        return CTL_FAILED;
    }
    for (size_t i = 0; i < migrations_count; i++) {
        r = migrate_one(db, &migrations[i]);
        if (r < 0)
            return CTL_FAILED;
        if (r > 0) {
            printf("applied %s\n", migrations[i].name);
            fflush(stdout);
            applied++;
        }
    }
    if (applied == 0)
        printf("up to date\n");
    migrate_check_newer(db);
    return CTL_OK;
}

const struct ctl_cmd ctl_cmd_migrate = {
    .name = "migrate",
    .fn = cmd_migrate,
    .synopsis = "",
    .summary = "apply the database migrations in order (idempotent, safe to run concurrently)",
    .help = "Applies every migration built into this clusterctl that the database does not have\n"
            "yet, in version order, each in its own transaction, and records it in\n"
            "schema_migrations. Prints \"applied NNNN_name\" per migration, or \"up to date\".\n",
};
