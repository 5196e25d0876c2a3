/* common/db.c — PostgreSQL access through libpq: connection setup, bound-parameter statements
 * (each SQL text prepared once per connection), transactions, one-line error reporting, and a
 * single transparent reconnect outside a transaction. */
#include "db.h"

#include "hash.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DB_STMTS_MAX 64 /* prepared statements per connection; further SQL texts run unprepared */

/* A statement prepared on the current connection, found by its SQL text. */
struct db_stmt {
    char *sql;
    uint64_t hash; /* of sql */
    bool stale;    /* its plan no longer fits (e.g. after ALTER TABLE): DEALLOCATE before use */
    char name[24]; /* "stf_<n>", never reused on one struct db */
};

struct db {
    PGconn *conn;
    bool in_tx;          /* between db_begin() and db_commit()/db_rollback() */
    char err[512];       /* last error, one line */
    char sqlstate[6];    /* last error's SQLSTATE, "" when none */
    char constraint[64]; /* last error's constraint name, "" when none */
    uint64_t stmt_seq;   /* the number in the last statement name given out */
    size_t nstmts;       /* stmts[0..nstmts) are prepared on conn */
    struct db_stmt stmts[DB_STMTS_MAX];
};

/* Copies the first line of msg into out, without a "ERROR:  "-style prefix or trailing space. */
static void db_copy_line(char *out, size_t outlen, const char *msg)
{
    size_t n;

    if (!msg)
        msg = "";
    n = strcspn(msg, "\r\n");
    while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == '\t'))
        n--;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, msg, n);
    out[n] = '\0';
}

static void db_set_error(struct db *db, const PGresult *res, const char *fallback)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *cons = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;

    if (primary && *primary)
        db_copy_line(db->err, sizeof(db->err), primary);
    else if (fallback && *fallback)
        db_copy_line(db->err, sizeof(db->err), fallback);
    else
        db_copy_line(db->err, sizeof(db->err), PQerrorMessage(db->conn));
    if (!db->err[0])
        snprintf(db->err, sizeof(db->err), "unknown database error");
    snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state ? state : "");
    snprintf(db->constraint, sizeof(db->constraint), "%s", cons ? cons : "");
}

static void db_clear_error(struct db *db)
{
    db->err[0] = '\0';
    db->sqlstate[0] = '\0';
    db->constraint[0] = '\0';
}

/* Server notices ("relation already exists, skipping") go to the debug log, not to stderr. */
static void db_notice(void *arg, const char *message)
{
    char line[512];

    (void) arg;
    db_copy_line(line, sizeof(line), message);
    log_debug("event=db_notice msg=\"%s\"", line);
}

struct db *db_open(const char *url, char *err, size_t errlen)
{
    /* connect_timeout comes before dbname so that a value inside url wins. */
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *const vals[] = {"10", "stf", url, NULL};
    struct db *db = NULL;

    if (!url || !*url) {
        snprintf(err, errlen, "no database url");
        return NULL;
    }
    db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    db->conn = PQconnectdbParams(keys, vals, 1);
    if (!db->conn) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (PQstatus(db->conn) != CONNECTION_OK) {
        char line[400];

        db_copy_line(line, sizeof(line), PQerrorMessage(db->conn));
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", line[0] ? line : "unknown error");
        goto fail;
    }
    PQsetNoticeProcessor(db->conn, db_notice, NULL);
    return db;
fail:
    db_free(db);
    return NULL;
}

/* Forgets every prepared statement (the server forgot them with its session). */
static void db_stmts_forget(struct db *db)
{
    for (size_t i = 0; i < db->nstmts; i++)
        free(db->stmts[i].sql);
    db->nstmts = 0;
}

void db_free(struct db *db)
{
    if (!db)
        return;
    if (db->conn)
        PQfinish(db->conn);
    db_stmts_forget(db);
    free(db);
}

/* Re-establishes a broken connection. Returns true when it is usable afterwards. */
static bool db_reconnect(struct db *db)
{
    PQreset(db->conn);
    db_stmts_forget(db);
    if (PQstatus(db->conn) == CONNECTION_OK) {
        log_debug("event=db_reconnected");
        return true;
    }
    db_set_error(db, NULL, NULL);
    log_debug("event=db_reconnect_failed err=\"%s\"", db->err);
    return false;
}

/* Whether a broken connection may be silently re-established: only when no transaction of the
 * caller's was open (neither through db_begin() nor a raw BEGIN seen on a healthy connection). */
static bool db_may_reconnect(struct db *db, PGTransactionStatusType before)
{
    return !db->in_tx && (before == PQTRANS_IDLE || before == PQTRANS_UNKNOWN);
}

static bool db_result_ok(const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static struct db_stmt *db_stmt_find(struct db *db, const char *sql, uint64_t hash)
{
    for (size_t i = 0; i < db->nstmts; i++) {
        struct db_stmt *st = &db->stmts[i];

        if (st->hash == hash && strcmp(st->sql, sql) == 0)
            return st;
    }
    return NULL;
}

static void db_stmt_remove(struct db *db, struct db_stmt *st)
{
    free(st->sql);
    *st = db->stmts[--db->nstmts];
}

/* Checks and clears the result of a command of db.c's own (PREPARE, DEALLOCATE). Returns 0
 * or -EIO (error stored). */
static int db_command_done(struct db *db, PGresult *res)
{
    int r = 0;

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_set_error(db, res, NULL);
        r = -EIO;
    }
    PQclear(res);
    return r;
}

/* DEALLOCATEs a stale statement and forgets it. Fails (error stored, -EIO) as any statement
 * would, e.g. inside a transaction that an earlier statement aborted. */
static int db_stmt_deallocate(struct db *db, struct db_stmt *st)
{
    char sql[sizeof(st->name) + 16];

    snprintf(sql, sizeof(sql), "DEALLOCATE %s", st->name);
    if (db_command_done(db, PQexec(db->conn, sql)) < 0)
        return -EIO;
    db_stmt_remove(db, st);
    return 0;
}

/* Prepares sql under a new name. Returns 1 (*ret set), 0 when the cache is full (run it
 * unprepared), or -EIO: the prepare failed as the statement itself would have (error stored). */
static int db_stmt_add(struct db *db, const char *sql, uint64_t hash, struct db_stmt **ret)
{
    struct db_stmt *st;

    if (db->nstmts == DB_STMTS_MAX)
        return 0;
    st = &db->stmts[db->nstmts];
    st->sql = strdup(sql);
    if (!st->sql)
        return 0;
    st->hash = hash;
    st->stale = false;
    snprintf(st->name, sizeof(st->name), "stf_%" PRIu64, ++db->stmt_seq);
    if (db_command_done(db, PQprepare(db->conn, st->name, sql, 0, NULL)) < 0) {
        free(st->sql);
        st->sql = NULL;
        return -EIO;
    }
    db->nstmts++;
    *ret = st;
    return 1;
}

/* The prepared statement for sql, prepared now if needed. Returns 1 (*ret set; *ret_cached
 * tells whether it was prepared before this call), 0 (run sql unprepared), or -EIO. */
static int db_stmt_get(struct db *db, const char *sql, struct db_stmt **ret, bool *ret_cached)
{
    uint64_t hash = hash_murmur64(sql, strlen(sql));
    struct db_stmt *st = db_stmt_find(db, sql, hash);

    *ret_cached = false;
    if (st && st->stale) {
        if (db_stmt_deallocate(db, st) < 0)
            return -EIO;
        st = NULL;
    }
    if (st) {
        *ret = st;
        *ret_cached = true;
        return 1;
    }
    return db_stmt_add(db, sql, hash, ret);
}

/* After a failed execution of a statement prepared earlier: true when the failure says that
 * the server-side statement is outdated ("cached plan must not change result type" after DDL,
 * 0A000) or gone (26000). It is then prepared again on its next use. */
static bool db_stmt_outdated(struct db *db, struct db_stmt *st)
{
    if (strcmp(db->sqlstate, "26000") == 0) {
        db_stmt_remove(db, st);
        return true;
    }
    if (strcmp(db->sqlstate, "0A000") == 0) {
        st->stale = true;
        return true;
    }
    return false;
}

/* One attempt of a statement with parameters, prepared (see db_stmt_get). On a failure the
 * result is NULL, the error stored, and *ret_outdated set as db_stmt_outdated() says. */
static PGresult *db_exec_params(struct db *db, const char *sql, int nparams,
                                const char *const *params, bool *ret_outdated)
{
    struct db_stmt *st = NULL;
    bool cached = false;
    PGresult *res;
    int r = db_stmt_get(db, sql, &st, &cached);

    if (r < 0)
        return NULL;
    if (r == 0)
        res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    else
        res = PQexecPrepared(db->conn, st->name, nparams, params, NULL, NULL, 0);
    if (db_result_ok(res))
        return res;
    db_set_error(db, res, NULL);
    PQclear(res);
    *ret_outdated = cached && db_stmt_outdated(db, st);
    return NULL;
}

/* One attempt; on a failure the result is NULL and the error stored. */
static PGresult *db_exec_once(struct db *db, const char *sql, int nparams,
                              const char *const *params, bool script, bool *ret_outdated)
{
    PGresult *res;

    *ret_outdated = false;
    if (!script)
        return db_exec_params(db, sql, nparams, params, ret_outdated);
    res = PQexec(db->conn, sql);
    if (db_result_ok(res))
        return res;
    db_set_error(db, res, NULL);
    PQclear(res);
    return NULL;
}

static PGresult *db_exec_retry(struct db *db, const char *sql, int nparams,
                               const char *const *params, bool script)
{
    PGTransactionStatusType before;
    bool outdated;
    PGresult *res;

    db_clear_error(db);
    if (nparams < 0 || (nparams > 0 && !params)) {
        snprintf(db->err, sizeof(db->err), "bad statement parameters");
        return NULL;
    }
    before = PQtransactionStatus(db->conn);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        /* Known dead before we try: reconnect now if allowed, else fail without sending. */
        if (!db_may_reconnect(db, before)) {
            db_set_error(db, NULL, "connection to PostgreSQL lost inside a transaction");
            return NULL;
        }
        if (!db_reconnect(db))
            return NULL;
        before = PQTRANS_IDLE;
    }
    res = db_exec_once(db, sql, nparams, params, script, &outdated);
    if (!res && outdated && db_may_reconnect(db, before)) {
        /* Outside a transaction nothing was aborted: prepare it again and retry once. */
        log_debug("event=db_statement_outdated sqlstate=%s", db->sqlstate);
        res = db_exec_once(db, sql, nparams, params, script, &outdated);
    }
    if (res || PQstatus(db->conn) == CONNECTION_OK)
        goto out;
    if (!db_may_reconnect(db, before)) {
        log_debug("event=db_lost_in_transaction err=\"%s\"", db->err);
        goto out;
    }
    log_debug("event=db_connection_lost err=\"%s\"", db->err);
    if (!db_reconnect(db))
        goto out;
    res = db_exec_once(db, sql, nparams, params, script, &outdated);
out:
    if (!res)
        log_debug("event=db_error sqlstate=%s err=\"%s\"", db->sqlstate[0] ? db->sqlstate : "-",
                  db->err);
    return res;
}

PGresult *db_exec(struct db *db, const char *sql, int nparams, const char *const *params)
{
    return db_exec_retry(db, sql, nparams, params, false);
}

int db_run(struct db *db, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = db_exec(db, sql, nparams, params);

    if (!res)
        return -EIO;
    PQclear(res);
    return 0;
}

int db_run_script(struct db *db, const char *sql)
{
    PGresult *res = db_exec_retry(db, sql, 0, NULL, true);

    if (!res)
        return -EIO;
    PQclear(res);
    return 0;
}

int db_begin(struct db *db)
{
    return db_begin_with(db, "BEGIN");
}

int db_begin_with(struct db *db, const char *begin_sql)
{
    int r;

    if (db->in_tx) {
        snprintf(db->err, sizeof(db->err), "transaction already open");
        return -EBUSY;
    }
    r = db_run(db, begin_sql, 0, NULL);
    if (r == 0)
        db->in_tx = true;
    return r;
}

int db_commit(struct db *db)
{
    PGresult *res = db_exec(db, "COMMIT", 0, NULL);
    int r = 0;

    db->in_tx = false;
    if (!res)
        return -EIO;
    /* COMMIT of a transaction that had failed answers "ROLLBACK", not an error. */
    if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        snprintf(db->err, sizeof(db->err), "transaction was rolled back");
        snprintf(db->sqlstate, sizeof(db->sqlstate), "40000");
        r = -EIO;
    }
    PQclear(res);
    return r;
}

void db_rollback(struct db *db)
{
    PGresult *res;

    if (PQstatus(db->conn) == CONNECTION_OK && PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
        res = PQexec(db->conn, "ROLLBACK");
        PQclear(res);
    }
    db->in_tx = false;
}

bool db_in_transaction(struct db *db)
{
    return db->in_tx;
}

const char *db_error(struct db *db)
{
    return db->err;
}

const char *db_sqlstate(struct db *db)
{
    return db->sqlstate;
}

const char *db_constraint(struct db *db)
{
    return db->constraint;
}

bool db_is_unique_violation(struct db *db)
{
    return strcmp(db->sqlstate, "23505") == 0;
}

int db_query_int64(struct db *db, const char *sql, int nparams, const char *const *params,
                   int64_t *ret)
{
    PGresult *res = db_exec(db, sql, nparams, params);
    char *end;
    long long v;
    int r = 0;

    if (!res)
        return -EIO;
    if (PQntuples(res) == 0) {
        r = -ENOENT;
        goto out;
    }
    if (PQnfields(res) < 1 || PQgetisnull(res, 0, 0)) {
        r = -ENODATA;
        goto out;
    }
    errno = 0;
    v = strtoll(PQgetvalue(res, 0, 0), &end, 10);
    if (errno || *end) {
        snprintf(db->err, sizeof(db->err), "not an integer: '%.64s'", PQgetvalue(res, 0, 0));
        r = -EINVAL;
        goto out;
    }
    if (ret)
        *ret = v;
out:
    PQclear(res);
    return r;
}
