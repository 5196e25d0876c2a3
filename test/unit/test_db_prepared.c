/* test/unit/test_db_prepared.c — common/db.c's prepared statements against a real PostgreSQL:
 * each SQL text prepared once per connection (pg_prepared_statements), keyed by its text,
 * bounded, prepared again after a killed connection and after DDL changed a result type, scripts
 * never prepared, errors (sqlstate, constraint, transactions) as without preparing. */
#include "check.h"
#include "db.h"
#include "svc.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define CACHE_MAX 64 /* DB_STMTS_MAX in common/db.c */

/* How many of db's own connection's prepared statements have exactly this text, or -1. */
static int64_t prepared_count(struct db *db, const char *sql)
{
    int64_t n = -1;

    if (db_query_int64(db, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", 1,
                       &sql, &n) < 0)
        return -1;
    return n;
}

/* How often the statement with this text was executed prepared (plans chosen), or -1. */
static int64_t prepared_runs(struct db *db, const char *sql)
{
    int64_t n = -1;

    if (db_query_int64(db,
                       "SELECT generic_plans + custom_plans FROM pg_prepared_statements "
                       "WHERE statement = $1",
                       1, &sql, &n) < 0)
        return -1;
    return n;
}

static int64_t total_prepared(struct db *db)
{
    int64_t n = -1;

    if (db_query_int64(db, "SELECT count(*) FROM pg_prepared_statements", 0, NULL, &n) < 0)
        return -1;
    return n;
}

static int64_t backend_pid(struct db *db)
{
    int64_t pid = -1;

    if (db_query_int64(db, "SELECT pg_backend_pid()", 0, NULL, &pid) < 0)
        return -1;
    return pid;
}

static const char *const sel_n = "SELECT n FROM pt WHERE v = $1";

static void test_prepared_once(struct db *db)
{
    const char *p[1] = {"a"};
    int64_t n = 0;
    int ok = 1;

    CHECK(db_run(db, "CREATE TABLE pt (id serial PRIMARY KEY, v text UNIQUE, n int)", 0, NULL) ==
                  0 &&
              db_run(db, "INSERT INTO pt (v, n) VALUES ('a', 1), ('b', 2)", 0, NULL) == 0,
          "table created: %s", db_error(db));
    for (int i = 0; i < 3; i++)
        ok &= db_query_int64(db, sel_n, 1, p, &n) == 0 && n == 1;
    CHECK(ok, "a parameterised SELECT three times: right answer each time");
    CHECK(prepared_count(db, sel_n) == 1, "prepared once on this connection");
    CHECK(prepared_runs(db, sel_n) == 3, "and executed prepared three times: %" PRId64,
          prepared_runs(db, sel_n));
}

static void test_keyed_by_text(struct db *db)
{
    char sql[64], copy[64];
    int64_t v = 0;

    snprintf(sql, sizeof(sql), "SELECT %d + 0", 1);
    CHECK(db_query_int64(db, sql, 0, NULL, &v) == 0 && v == 1, "run-time SQL text");
    snprintf(sql, sizeof(sql), "SELECT %d + 0", 2);
    CHECK(db_query_int64(db, sql, 0, NULL, &v) == 0 && v == 2,
          "the same buffer with another text runs the new text: %" PRId64, v);
    snprintf(copy, sizeof(copy), "SELECT %d + 0", 1);
    CHECK(db_query_int64(db, copy, 0, NULL, &v) == 0 && v == 1, "a copy of the first text");
    CHECK(prepared_count(db, "SELECT 1 + 0") == 1 && prepared_count(db, "SELECT 2 + 0") == 1,
          "one prepared statement per distinct text, wherever the text lives");
}

static void test_errors(struct db *db)
{
    const char *dup[1] = {"a"};
    const char *later = "SELECT count(*) FROM created_later";
    int64_t v = -1;

    CHECK(db_exec(db, "SELEC 1", 0, NULL) == NULL && strcmp(db_sqlstate(db), "42601") == 0,
          "syntax error (the prepare fails): sqlstate %s", db_sqlstate(db));
    CHECK(db_exec(db, "SELECT 1; SELECT 2", 0, NULL) == NULL &&
              strcmp(db_sqlstate(db), "42601") == 0,
          "two statements refused as before: %s", db_error(db));
    CHECK(db_run(db, "INSERT INTO pt (v, n) VALUES ($1, 9)", 1, dup) == -EIO &&
              db_run(db, "INSERT INTO pt (v, n) VALUES ($1, 9)", 1, dup) == -EIO,
          "duplicate insert fails, also when already prepared");
    CHECK(db_is_unique_violation(db) && check_streq(db_constraint(db), "pt_v_key") &&
              strstr(db_error(db), "duplicate key") && !strchr(db_error(db), '\n'),
          "sqlstate, constraint and one-line message kept: %s", db_error(db));
    CHECK(db_query_int64(db, later, 0, NULL, &v) == -EIO && strcmp(db_sqlstate(db), "42P01") == 0,
          "a missing table fails to prepare: %s", db_sqlstate(db));
    CHECK(db_run(db, "CREATE TABLE created_later (a int)", 0, NULL) == 0 &&
              db_query_int64(db, later, 0, NULL, &v) == 0 && v == 0,
          "the failed prepare was not remembered: the same text works once the table exists");

    CHECK(db_begin(db) == 0, "begin");
    CHECK(db_exec(db, "SELEC 2", 0, NULL) == NULL, "a failing prepare inside a transaction");
    CHECK(db_exec(db, sel_n, 1, dup) == NULL && strcmp(db_sqlstate(db), "25P02") == 0,
          "aborts it like a failing statement: %s", db_sqlstate(db));
    CHECK(db_commit(db) == -EIO && check_streq(db_sqlstate(db), "40000"),
          "commit reports the rollback");

    CHECK(db_begin(db) == 0 &&
              db_query_int64(db, "SELECT n + 100 FROM pt WHERE v = $1", 1, dup, &v) == 0 &&
              v == 101,
          "a statement first prepared inside a transaction");
    db_rollback(db);
    CHECK(db_query_int64(db, "SELECT n + 100 FROM pt WHERE v = $1", 1, dup, &v) == 0 && v == 101 &&
              prepared_count(db, "SELECT n + 100 FROM pt WHERE v = $1") == 1,
          "stays prepared after the rollback and runs again");
}

static void test_script(struct db *db)
{
    const char *script = "CREATE TABLE sc (a int); INSERT INTO sc VALUES (1), (2);";
    const char *part[1] = {"INSERT INTO sc"};
    int64_t n = -1;

    CHECK(db_run_script(db, script) == 0, "a script of two statements runs");
    CHECK(db_query_int64(db,
                         "SELECT count(*) FROM pg_prepared_statements "
                         "WHERE strpos(statement, $1) > 0",
                         1, part, &n) == 0 &&
              n == 0,
          "and is not prepared: %" PRId64, n);
}

static void test_terminate(struct db *db, struct db *admin)
{
    const char *p[1] = {"b"}, *pid_s[1];
    char pid[24];
    int64_t pid1 = backend_pid(db), pid2, n = 0;

    CHECK(db_query_int64(db, sel_n, 1, p, &n) == 0 && n == 2, "prepared statement runs");
    snprintf(pid, sizeof(pid), "%" PRId64, pid1);
    pid_s[0] = pid;
    CHECK(db_run(admin, "SELECT pg_terminate_backend($1::int, 10000)", 1, pid_s) == 0,
          "backend %s terminated by another connection", pid);
    n = 0;
    CHECK(db_query_int64(db, sel_n, 1, p, &n) == 0 && n == 2,
          "the same statement works at once after the kill: %s", db_error(db));
    pid2 = backend_pid(db);
    CHECK(pid2 > 0 && pid2 != pid1, "on a new connection (backend %" PRId64 ")", pid2);
    CHECK(prepared_count(db, sel_n) == 1 && prepared_runs(db, sel_n) == 1,
          "where it was prepared again");

    CHECK(db_begin(db) == 0 && db_query_int64(db, sel_n, 1, p, &n) == 0, "inside a transaction");
    snprintf(pid, sizeof(pid), "%" PRId64, pid2);
    CHECK(db_run(admin, "SELECT pg_terminate_backend($1::int, 10000)", 1, pid_s) == 0,
          "backend killed mid-transaction");
    CHECK(db_query_int64(db, sel_n, 1, p, &n) == -EIO, "the transaction's next statement fails");
    db_rollback(db);
    n = 0;
    CHECK(db_begin(db) == 0 && db_query_int64(db, sel_n, 1, p, &n) == 0 && n == 2 &&
              db_commit(db) == 0,
          "after rollback a new transaction reconnects and prepares again: %s", db_error(db));
    CHECK(prepared_count(db, sel_n) == 1, "once");
}

static void test_alter(struct db *db, struct db *admin)
{
    const char *star = "SELECT * FROM at";
    PGresult *res;

    CHECK(db_run(db, "CREATE TABLE at (a int)", 0, NULL) == 0 &&
              db_run(db, "INSERT INTO at VALUES (1)", 0, NULL) == 0,
          "table for SELECT *");
    res = db_exec(db, star, 0, NULL);
    CHECK(res && PQnfields(res) == 1, "SELECT * sees one column");
    PQclear(res);
    CHECK(db_run(admin, "ALTER TABLE at ADD COLUMN b int DEFAULT 7", 0, NULL) == 0,
          "another connection adds a column");
    res = db_exec(db, star, 0, NULL);
    CHECK(res && PQnfields(res) == 2 && strcmp(PQgetvalue(res, 0, 1), "7") == 0,
          "the prepared SELECT * works after ALTER TABLE and sees both columns: %s [%s]",
          db_error(db), db_sqlstate(db));
    PQclear(res);
    CHECK(prepared_count(db, star) == 1, "the outdated statement was replaced, not leaked");

    CHECK(db_run(admin, "ALTER TABLE at ADD COLUMN c int DEFAULT 8", 0, NULL) == 0,
          "another column");
    CHECK(db_begin(db) == 0, "begin");
    CHECK(db_exec(db, star, 0, NULL) == NULL && check_streq(db_sqlstate(db), "0A000"),
          "inside a transaction the outdated statement fails (nothing can be retried): %s",
          db_error(db));
    db_rollback(db);
    res = db_exec(db, star, 0, NULL);
    CHECK(res && PQnfields(res) == 3, "after rollback it is prepared again and works: %s",
          db_error(db));
    PQclear(res);
    CHECK(prepared_count(db, star) == 1, "still one prepared statement for the text");
}

static void test_bounded(struct db *db)
{
    const char *p[1] = {"1000"};
    char sql[64];
    int64_t v = -1, before = total_prepared(db);
    int ok = 1;

    for (int i = 0; i < CACHE_MAX + 16; i++) {
        snprintf(sql, sizeof(sql), "SELECT $1::int + %d", i);
        ok &= db_query_int64(db, sql, 1, p, &v) == 0 && v == 1000 + i;
    }
    CHECK(ok, "%d distinct statements all answer right", CACHE_MAX + 16);
    CHECK(before > 0 && total_prepared(db) == CACHE_MAX,
          "at most %d prepared on one connection: %" PRId64, CACHE_MAX, total_prepared(db));
    CHECK(prepared_count(db, sql) == 0, "the last ones ran unprepared");
}

int main(void)
{
    const char *url = svc_env("STF_DB_URL");
    char err[256] = "";
    struct db *db = db_open(url, err, sizeof(err)), *admin = db_open(url, err, sizeof(err));

    CHECK(db && admin, "connect: %s", err);
    if (!db || !admin)
        return check_done();
    test_prepared_once(db);
    test_keyed_by_text(db);
    test_errors(db);
    test_script(db);
    test_terminate(db, admin);
    test_alter(db, admin);
    test_bounded(db);
    db_free(db);
    db_free(admin);
    return check_done();
}
