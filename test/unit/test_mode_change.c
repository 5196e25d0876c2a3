/* test/unit/test_mode_change.c — common/mode_change.c against a real PostgreSQL and
 * Redis (run under with-services.sh): repaird's transitions, the repair hook, history rows. */
#include "check.h"
#include "db.h"
#include "jobs.h"
#include "kv.h"
#include "mode_change.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct db *db;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 24) &&
        fseek(f, 0, SEEK_SET) == 0 && (s = calloc(1, (size_t) n + 1)) &&
        fread(s, 1, (size_t) n, f) != (size_t) n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    return s;
}

/* One text value from a query, copied into out ("" for NULL or no row). */
static const char *q1(const char *sql, const char *param, char *out, size_t outlen)
{
    PGresult *res = db_exec(db, sql, param ? 1 : 0, param ? (const char *[]){param} : NULL);

    out[0] = '\0';
    if (res && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

static const char *mode_of(const char *storage)
{
    static char m[32];

    return q1("SELECT mode FROM storages WHERE name = $1", storage, m, sizeof(m));
}

static int64_t count(const char *sql, const char *param)
{
    int64_t n = -1;

    db_query_int64(db, sql, param ? 1 : 0, param ? (const char *[]){param} : NULL, &n);
    return n;
}

static int64_t history_rows(const char *name)
{
    return count("SELECT count(*) FROM mode_history WHERE target_name = $1", name);
}

static int64_t id_of(const char *storage)
{
    return count("SELECT id FROM storages WHERE name = $1", storage);
}

static void set_mode(const char *storage, const char *mode)
{
    db_run(db, "UPDATE storages SET mode = $2 WHERE name = $1", 2, (const char *[]){storage, mode});
}

static int setup(void)
{
    char path[4096];
    const char *src = getenv("STF_SRC");
    char *schema;
    int r;

    snprintf(path, sizeof(path), "%s/migrations/0001_create_schema.sql", src ? src : ".");
    schema = read_file(path);
    if (!schema) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    r = db_run_script(db, schema);
    free(schema);
    if (r < 0)
        return -1;
    return db_run_script(db,
                         "INSERT INTO clusters (name) VALUES ('c1');"
                         "INSERT INTO storages (name, cluster_id, uri) VALUES"
                         " ('s1', 1, 'http://127.0.0.1:1/'), ('s2', 1, 'http://127.0.0.1:2/'),"
                         " ('s3', 1, 'http://127.0.0.1:3/'), ('s4', 1, 'http://127.0.0.1:4/');");
}

static void test_repaird(struct kv *kv)
{
    struct mode_change_result res;
    struct mode_storage_request req = {0};
    int64_t s1 = id_of("s1"), h;
    char v[600];
    int r;

    /* repair -> rw on success, by repaird only */
    set_mode("s1", "repair");
    h = history_rows("s1");
    req = (struct mode_storage_request){.storage_name = "s1",
                                        .to = SMODE_RW,
                                        .actor = ACTOR_OPERATOR,
                                        .who = {"alice", "clusterctl"}};
    r = mode_change_storage(db, kv, &req, &res);
    CHECK(r == -EPERM && res.outcome == MODE_REFUSED, "operator repair -> rw refused");
    CHECK(strstr(res.message, "only repaird sets it rw") != NULL, "message: %s", res.message);
    CHECK(strcmp(mode_of("s1"), "repair") == 0 && history_rows("s1") == h, "nothing changed");

    r = mode_change_repair_finished(db, kv, s1, true, NULL, &res);
    CHECK(r == 0 && res.outcome == MODE_CHANGED, "repaird repair -> rw: %s", res.message);
    CHECK(res.from == SMODE_REPAIR && res.to == SMODE_RW, "from/to in result");
    CHECK(res.effective_before == CMODE_RO && res.effective_after == CMODE_RW,
          "cluster ro -> rw after the repair");
    CHECK(strcmp(mode_of("s1"), "rw") == 0, "s1 is rw");
    CHECK(res.published, "published on Redis");
    CHECK_STR(q1("SELECT program || ' ' || from_mode || ' ' || to_mode || ' ' || reason FROM"
                 " mode_history WHERE target_name = $1 ORDER BY id DESC LIMIT 1",
                 "s1", v, sizeof(v)),
              "repaird repair rw recovery finished", "history row of repaird");

    /* finished, but an operator aborted meanwhile: nothing happens */
    set_mode("s1", "down");
    h = history_rows("s1");
    r = mode_change_repair_finished(db, kv, s1, true, "copy done", &res);
    CHECK(r == -EPERM && res.outcome == MODE_REFUSED, "repair finished after abort refused");
    CHECK_STR(res.message, "s1 is down now (changed meanwhile); down -> rw not applied", "message");
    CHECK(strcmp(mode_of("s1"), "down") == 0 && history_rows("s1") == h, "still down");

    /* repair -> down on failure */
    set_mode("s1", "repair");
    r = mode_change_repair_finished(db, kv, s1, false, "peer s2 unreachable", &res);
    CHECK(r == 0 && res.outcome == MODE_CHANGED && strcmp(mode_of("s1"), "down") == 0,
          "repair -> down on failure");
    CHECK_STR(q1("SELECT reason FROM mode_history WHERE target_name = $1 ORDER BY id DESC"
                 " LIMIT 1",
                 "s1", v, sizeof(v)),
              "peer s2 unreachable", "failure reason recorded");

    /* health checks: rw/ro -> down; down stays; spare is left alone */
    set_mode("s1", "rw");
    r = mode_change_health_down(db, kv, s1, "3 failed health checks", &res);
    CHECK(r == 0 && res.outcome == MODE_CHANGED && strcmp(mode_of("s1"), "down") == 0,
          "health: rw -> down");
    CHECK(res.effective_before == CMODE_RW && res.effective_after == CMODE_RO,
          "health: cluster rw -> ro");
    h = history_rows("s1");
    r = mode_change_health_down(db, kv, s1, NULL, &res);
    CHECK(r == 0 && res.outcome == MODE_UNCHANGED && history_rows("s1") == h,
          "health on a down storage: unchanged, no row");
    CHECK_STR(res.message, "s1 is already down", "no-op message");
    set_mode("s1", "repair");
    r = mode_change_health_down(db, kv, s1, NULL, &res);
    CHECK(r == -EPERM && strcmp(mode_of("s1"), "repair") == 0, "health leaves a repair alone");
    CHECK_STR(res.message, "s1 is repair now (changed meanwhile); repair -> down not applied",
              "message");
    set_mode("s1", "spare");
    r = mode_change_health_down(db, kv, s1, NULL, &res);
    CHECK(r == 0 && strcmp(mode_of("s1"), "down") == 0, "health: spare -> down");
    set_mode("s1", "ro");
    r = mode_change_health_down(db, kv, s1, NULL, &res);
    CHECK(r == 0 && strcmp(mode_of("s1"), "down") == 0, "health: ro -> down");

    r = mode_change_health_down(db, kv, 999999, NULL, &res);
    CHECK(r == -ENOENT && res.outcome == MODE_NOT_FOUND, "unknown storage id");
    CHECK_STR(res.message, "no storage with id 999999", "not found message");
    set_mode("s1", "rw");
}

struct hook_arg {
    bool fail;
    int64_t job_id;
};

static int repair_hook(struct db *d, struct mode_change_result *res, void *arg)
{
    struct hook_arg *a = arg;
    char payload[128];

    if (a->fail) {
        snprintf(res->message, sizeof(res->message), "hook failed on purpose");
        return -EIO;
    }
    snprintf(payload, sizeof(payload), "{\"storage_id\": %" PRId64 ", \"from_storage_id\": 2}",
             res->storage_id);
    return jobs_insert(d, "recover_storage", payload, &a->job_id);
}

static void test_begin_repair(struct kv *kv)
{
    struct mode_who who = {"bob", "clusterctl"};
    struct mode_change_result res;
    struct hook_arg arg = {0};
    int64_t h, jobs;
    int r;

    set_mode("s2", "down");
    h = history_rows("s2");
    jobs = count("SELECT count(*) FROM jobs", NULL);
    arg.fail = true;
    r = mode_change_begin_repair(db, kv, "s2", "new disk", &who, repair_hook, &arg, &res);
    CHECK(r == -EIO && res.outcome == MODE_FAILED, "failing hook fails the change");
    CHECK_STR(res.message, "hook failed on purpose", "hook message kept");
    CHECK(strcmp(mode_of("s2"), "down") == 0 && history_rows("s2") == h &&
              count("SELECT count(*) FROM jobs", NULL) == jobs,
          "rolled back: mode, history and jobs unchanged");

    arg.fail = false;
    r = mode_change_begin_repair(db, kv, "s2", "new disk", &who, repair_hook, &arg, &res);
    CHECK(r == 0 && res.outcome == MODE_CHANGED && strcmp(mode_of("s2"), "repair") == 0,
          "down -> repair");
    CHECK(arg.job_id > 0 &&
              count("SELECT count(*) FROM jobs WHERE kind = 'recover_storage' AND"
                    " (payload->>'storage_id')::bigint = (SELECT id FROM storages WHERE"
                    " name = $1)",
                    "s2") == 1,
          "job recorded in the same transaction");
    CHECK(history_rows("s2") == h + 1, "one history row");

    set_mode("s3", "rw");
    r = mode_change_begin_repair(db, kv, "s3", NULL, &who, NULL, NULL, &res);
    CHECK(r == -EPERM && strcmp(mode_of("s3"), "rw") == 0, "rw -> repair refused");
    CHECK_STR(res.message,
              "s3 is rw; only a down or spare storage can be repaired: run `clusterctl "
              "mark-down s3` first",
              "message");
    set_mode("s2", "rw");
}

static void test_cluster_and_reason(struct kv *kv)
{
    struct mode_who who = {"carol", "clusterctl"};
    struct mode_change_result res;
    char reason[700], v[700];
    int r;

    r = mode_change_cluster(db, kv, "c1", CMODE_RO, "maintenance", &who, &res);
    CHECK(r == 0 && res.outcome == MODE_CHANGED && res.effective_after == CMODE_RO,
          "cluster forced ro");
    CHECK_STR(q1("SELECT coalesce(forced_mode, 'NULL') FROM clusters WHERE name = $1", "c1", v,
                 sizeof(v)),
              "ro", "forced_mode column");
    r = mode_change_cluster(db, kv, "c1", CMODE_RO, NULL, &who, &res);
    CHECK(r == 0 && res.outcome == MODE_UNCHANGED, "again: unchanged");
    CHECK_STR(res.message, "cluster c1 is already forced ro", "no-op message");
    r = mode_change_cluster(db, kv, "c1", CMODE_RW, NULL, &who, &res);
    CHECK(r == 0 && res.forced_from == CMODE_RO && res.effective_after == CMODE_RW, "force lifted");
    CHECK_STR(q1("SELECT coalesce(forced_mode, 'NULL') FROM clusters WHERE name = $1", "c1", v,
                 sizeof(v)),
              "NULL", "forced_mode NULL");
    CHECK_STR(q1("SELECT target_kind || ' ' || from_mode || ' ' || to_mode || ' ' || actor FROM"
                 " mode_history WHERE target_name = $1 ORDER BY id DESC LIMIT 1",
                 "c1", v, sizeof(v)),
              "cluster ro rw carol", "cluster history row");
    r = mode_change_cluster(db, kv, "nope", CMODE_RO, NULL, &who, &res);
    CHECK(r == -ENOENT && res.outcome == MODE_NOT_FOUND, "unknown cluster");

    /* reasons are kept to one line of MODE_REASON_MAX bytes */
    memset(reason, 'x', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    reason[3] = '\n';
    CHECK(mode_reason_invalid(reason) != NULL, "long reason invalid for the CLI");
    CHECK(mode_reason_invalid("disk errors, ticket 4711") == NULL, "plain reason valid");
    r = mode_change_storage(db, kv,
                            &(struct mode_storage_request){
                                .storage_name = "s4", .to = SMODE_RO, .reason = reason, .who = who},
                            &res);
    CHECK(r == 0, "change with a long reason");
    q1("SELECT reason FROM mode_history WHERE target_name = $1 ORDER BY id DESC LIMIT 1", "s4", v,
       sizeof(v));
    CHECK(strlen(v) == MODE_REASON_MAX && strchr(v, '\n') == NULL && v[3] == ' ',
          "reason cut to %d bytes, newline replaced (len %zu)", MODE_REASON_MAX, strlen(v));
    set_mode("s4", "rw");
}

static void test_redis_away(void)
{
    char err[256];
    struct kv *dead = kv_open("redis://127.0.0.1:1/0", 200, err, sizeof(err));
    struct mode_change_result res;
    int r;

    CHECK(dead != NULL, "kv_open on a closed port does not fail");
    r = mode_change_storage(db, dead,
                            &(struct mode_storage_request){.storage_name = "s3",
                                                           .to = SMODE_DOWN,
                                                           .who = {"dave", "clusterctl"}},
                            &res);
    CHECK(r == 0 && res.outcome == MODE_CHANGED && !res.published,
          "change committed although Redis is away");
    CHECK(strcmp(mode_of("s3"), "down") == 0, "s3 is down");
    kv_free(dead);
    set_mode("s3", "rw");
}

int main(void)
{
    const char *url = getenv("STF_DB_URL"), *rurl = getenv("STF_REDIS_URL");
    char err[256];
    struct kv *kv;

    db = db_open(url ? url : "", err, sizeof(err));
    if (!db) {
        printf("Bail out! cannot connect: %s\n", err);
        return 1;
    }
    kv = kv_open(rurl ? rurl : "redis://127.0.0.1:6379/0", 1000, err, sizeof(err));
    if (!kv || setup() < 0) {
        printf("Bail out! setup failed: %s\n", kv ? db_error(db) : err);
        return 1;
    }
    test_repaird(kv);
    test_begin_repair(kv);
    test_cluster_and_reason(kv);
    test_redis_away();
    kv_free(kv);
    db_free(db);
    return check_done();
}
