/* common/db.h — PostgreSQL access through libpq: one connection per struct db (one per thread),
 * bound parameters only, and a transparent reconnect after a server restart. */
#ifndef STF_DB_H
#define STF_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct db;

/* Connects to url (anything libpq accepts). Returns NULL and one line in err on failure.
 * The caller owns the result: db_free() (NULL-safe). */
struct db *db_open(const char *url, char *err, size_t errlen);
void db_free(struct db *db);

/* Runs one statement with text parameters ($1..$n; a NULL element is SQL NULL).
 * Outside a transaction, a broken connection is re-established and the statement retried
 * once. Returns the result (caller PQclear()s it) when its status is COMMAND_OK or
 * TUPLES_OK; otherwise logs at debug, stores the message for db_error(), and returns NULL. */
PGresult *db_exec(struct db *db, const char *sql, int nparams, const char *const *params);

/* Like db_exec for statements whose result is not needed. Returns 0 or -EIO. */
int db_run(struct db *db, const char *sql, int nparams, const char *const *params);

/* Transactions: BEGIN / COMMIT / ROLLBACK. Inside one, no silent reconnect happens. */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* The last error message (one line, no trailing newline), and its SQLSTATE or "". */
const char *db_error(struct db *db);
const char *db_sqlstate(struct db *db);
/* True if the last error was a unique violation (23505). */
bool db_is_unique_violation(struct db *db);

#endif
