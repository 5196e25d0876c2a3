/* common/db.h — PostgreSQL access through libpq: one connection per struct db (one per thread),
 * bound parameters only (statements prepared transparently), and a transparent reconnect after a
 * server restart. */
#ifndef STF_DB_H
#define STF_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

/* Connects to url (anything libpq accepts). Returns NULL and one line in err on failure.
 * The caller owns the result: db_free() (NULL-safe). */
struct db *db_open(const char *url, char *err, size_t errlen);
void db_free(struct db *db);

/* Runs one statement with text parameters ($1..$n; a NULL element is SQL NULL).
 * Outside a transaction, a broken connection is re-established and the statement retried
 * once. Returns the result (caller PQclear()s it) when its status is COMMAND_OK or
 * TUPLES_OK; otherwise logs at debug, stores the message for db_error(), and returns NULL.
 * Each distinct SQL text (compared as text, so it may be built at run time) is prepared once
 * per connection, for the first 64 texts; later ones run unprepared. A reconnect prepares
 * again. A statement whose plan DDL made unfit ("cached plan must not change result type")
 * is prepared again and, outside a transaction, retried once; inside one it fails (0A000) like
 * any failed statement, and the next use after db_rollback() works. */
PGresult *db_exec(struct db *db, const char *sql, int nparams, const char *const *params);

/* Like db_exec for statements whose result is not needed. Returns 0 or -EIO. */
int db_run(struct db *db, const char *sql, int nparams, const char *const *params);

/* Runs a script of several statements without parameters (PQexec, never prepared), e.g. a
 * migration. Same reconnect rule as db_exec. Returns 0 or -EIO. */
int db_run_script(struct db *db, const char *sql);

/* Runs sql and reads the first column of the first row as an integer. Returns 0 and sets
 * *ret (may be NULL), -ENOENT for no row, -ENODATA for NULL, -EINVAL for a non-integer,
 * -EIO for a failed statement. */
int db_query_int64(struct db *db, const char *sql, int nparams, const char *const *params,
                   int64_t *ret);

/* Transactions: BEGIN / COMMIT / ROLLBACK. Inside one, no silent reconnect happens: a lost
 * connection fails every statement until db_rollback(); the next statement after it reconnects.
 * db_commit() returns -EIO (and clears the transaction) when COMMIT failed or the server rolled
 * the transaction back because a statement in it had failed. */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);
/* db_begin with another opening statement, e.g.
 * "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY". Returns 0, -EBUSY (already open), -EIO. */
int db_begin_with(struct db *db, const char *begin_sql);
/* True between a successful db_begin() and db_commit()/db_rollback(). */
bool db_in_transaction(struct db *db);

/* The last error message (one line, no trailing newline), and its SQLSTATE or "". */
const char *db_error(struct db *db);
const char *db_sqlstate(struct db *db);
/* The constraint the last error names (e.g. "storages_uri_key"), or "". */
const char *db_constraint(struct db *db);
/* True if the last error was a unique violation (23505). */
bool db_is_unique_violation(struct db *db);

#endif
