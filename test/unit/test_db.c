/* test/unit/test_db.c — common/db.c against a real PostgreSQL: bound parameters, errors,
 * transactions, scripts, and the reconnect after a server restart (run under with-services.sh). */
#include "check.h"
#include "db.h"
#include "svc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static int64_t count_rows(struct db *db, const char *where_v)
{
    int64_t n = -1;

    if (db_query_int64(db, "SELECT count(*) FROM t WHERE v = $1", 1, &where_v, &n) < 0)
        return -1;
    return n;
}

/* Runs fn with stderr redirected to a file; returns how many bytes it wrote there. */
static long stderr_bytes_of(void (*fn)(struct db *), struct db *db)
{
    char path[] = "/tmp/stf-test-db-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    struct stat st;

    if (fd < 0 || saved < 0)
        return -1;
    fflush(stderr);
    dup2(fd, 2);
    fn(db);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fstat(fd, &st);
    close(fd);
    unlink(path);
    return (long) st.st_size;
}

static void create_twice(struct db *db)
{
    db_run(db, "CREATE TABLE IF NOT EXISTS t (id serial PRIMARY KEY, v text UNIQUE, n int)", 0,
           NULL);
    db_run(db, "CREATE TABLE IF NOT EXISTS t (id serial PRIMARY KEY, v text UNIQUE, n int)", 0,
           NULL);
}

static void test_basics(struct db *db)
{
    const char *p2[2] = {"a", "1"};
    const char *pnull[2] = {"b", NULL};
    PGresult *res;
    int64_t v;

    CHECK(stderr_bytes_of(create_twice, db) == 0,
          "server notices (\"already exists, skipping\") do not reach stderr");
    CHECK(db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, p2) == 0, "insert with params");
    CHECK(db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, pnull) == 0, "NULL param");
    res = db_exec(db, "SELECT v, n FROM t ORDER BY v", 0, NULL);
    CHECK(res && PQntuples(res) == 2, "select returns two rows");
    CHECK(res && strcmp(PQgetvalue(res, 0, 1), "1") == 0 && PQgetisnull(res, 1, 1),
          "values round-trip, NULL element is SQL NULL");
    PQclear(res);

    /* A parameter is data, never SQL. */
    const char *evil[2] = {"x'); DROP TABLE t; --", "2"};
    CHECK(db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, evil) == 0 &&
              count_rows(db, evil[0]) == 1,
          "quotes in a parameter are stored verbatim");

    CHECK(db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, p2) == -EIO,
          "duplicate insert fails");
    CHECK(db_is_unique_violation(db), "unique violation detected");
    CHECK_STR(db_sqlstate(db), "23505", "sqlstate");
    CHECK_STR(db_constraint(db), "t_v_key", "constraint name");
    CHECK(strchr(db_error(db), '\n') == NULL && strstr(db_error(db), "duplicate key"),
          "one-line error: %s", db_error(db));

    CHECK(db_exec(db, "SELEC 1", 0, NULL) == NULL && strcmp(db_sqlstate(db), "42601") == 0,
          "syntax error reported with sqlstate");
    CHECK(!db_is_unique_violation(db), "not a unique violation");

    CHECK(db_query_int64(db, "SELECT 42", 0, NULL, &v) == 0 && v == 42, "query_int64");
    CHECK(db_query_int64(db, "SELECT 1 WHERE false", 0, NULL, &v) == -ENOENT, "no row: ENOENT");
    CHECK(db_query_int64(db, "SELECT NULL::int", 0, NULL, &v) == -ENODATA, "NULL: ENODATA");
    CHECK(db_query_int64(db, "SELECT 'x'", 0, NULL, &v) == -EINVAL, "text: EINVAL");

    CHECK(db_run_script(db, "CREATE TABLE s1 (a int); INSERT INTO s1 VALUES (1), (2);"
                            "CREATE TABLE s2 (b int);") == 0,
          "script of several statements");
    CHECK(db_query_int64(db, "SELECT count(*) FROM s1", 0, NULL, &v) == 0 && v == 2,
          "script applied");
}

static void test_transactions(struct db *db)
{
    const char *p[2] = {"tx1", "1"};

    CHECK(db_begin(db) == 0 && db_in_transaction(db), "begin");
    CHECK(db_begin(db) == -EBUSY, "nested begin refused");
    CHECK(db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, p) == 0, "insert in tx");
    db_rollback(db);
    CHECK(!db_in_transaction(db) && count_rows(db, "tx1") == 0, "rollback discards");

    CHECK(db_begin(db) == 0, "begin");
    CHECK(db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, p) == 0, "insert in tx");
    CHECK(db_commit(db) == 0 && count_rows(db, "tx1") == 1, "commit keeps");

    CHECK(db_begin(db) == 0, "begin");
    CHECK(db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, p) == -EIO, "failing statement");
    CHECK(db_commit(db) == -EIO && !db_in_transaction(db),
          "commit of a failed transaction reports the rollback");
    CHECK_STR(db_sqlstate(db), "40000", "sqlstate of the rolled back commit");
    CHECK(db_query_int64(db, "SELECT 1", 0, NULL, NULL) == 0, "connection usable afterwards");
}

static void test_restart(struct db *db)
{
    const char *p[2] = {"in-broken-tx", "1"};
    const char *q[2] = {"after-restart", "2"};

    CHECK(db_query_int64(db, "SELECT 1", 0, NULL, NULL) == 0, "connected before restart");
    CHECK(svc_pg_stop() == 0 && svc_pg_start() == 0, "PostgreSQL restarted");
    CHECK(db_query_int64(db, "SELECT 1", 0, NULL, NULL) == 0,
          "first statement after a restart succeeds on the same struct db (reconnect+retry)");

    CHECK(svc_pg_stop() == 0, "PostgreSQL stopped");
    CHECK(db_exec(db, "SELECT 1", 0, NULL) == NULL && db_error(db)[0],
          "statement while the server is down fails: %s", db_error(db));
    CHECK(db_exec(db, "SELECT 1", 0, NULL) == NULL, "and again, without hanging");
    CHECK(svc_pg_start() == 0, "PostgreSQL started");
    CHECK(db_query_int64(db, "SELECT 1", 0, NULL, NULL) == 0, "same struct db works again");

    /* Inside a transaction nothing reconnects: statements must not be autocommitted alone. */
    CHECK(db_begin(db) == 0, "begin");
    CHECK(db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, p) == 0, "insert in tx");
    CHECK(svc_pg_stop() == 0 && svc_pg_start() == 0, "PostgreSQL restarted mid-transaction");
    CHECK(db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, q) == -EIO,
          "statement in the broken transaction fails");
    CHECK(db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, q) == -EIO,
          "and keeps failing until rollback: %s", db_error(db));
    db_rollback(db);
    CHECK(count_rows(db, "in-broken-tx") == 0 && count_rows(db, "after-restart") == 0,
          "nothing of the broken transaction was committed");
    CHECK(db_begin(db) == 0 && db_run(db, "INSERT INTO t (v, n) VALUES ($1, $2)", 2, q) == 0 &&
              db_commit(db) == 0 && count_rows(db, "after-restart") == 1,
          "a new transaction works after rollback");
}

int main(void)
{
    char err[256] = "";
    struct db *db;

    CHECK(db_open("postgresql://nobody@127.0.0.1:1/none", err, sizeof(err)) == NULL &&
              strstr(err, "cannot connect") && !strchr(err, '\n'),
          "unreachable server: NULL and one line: %s", err);
    CHECK(db_open("", err, sizeof(err)) == NULL, "empty url refused");
    db_free(NULL);

    err[0] = '\0';
    db = db_open(svc_env("STF_DB_URL"), err, sizeof(err));
    CHECK(db != NULL, "connect: %s", err);
    if (!db)
        return check_done();
    test_basics(db);
    test_transactions(db);
    test_restart(db);
    db_free(db);
    return check_done();
}
