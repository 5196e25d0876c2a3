/* test/unit/test_jobs.c — common/jobs.c against real PostgreSQL and Redis: the row is the record,
 * the stream entry is the announcement, and a Redis outage loses nothing. */
#include "check.h"
#include "db.h"
#include "jobs.h"
#include "kv.h"
#include "svc.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        s = calloc(1, (size_t) n + 1);
        if (s && fread(s, 1, (size_t) n, f) != (size_t) n) {
            free(s);
            s = NULL;
        }
    }
    fclose(f);
    return s;
}

/* True if the stream holds an entry with field id = id. */
static bool stream_has(struct kv *kv, int64_t id)
{
    redisReply *rep = kv_commandf(kv, "XRANGE %s - +", JOBS_STREAM);
    char want[24];
    bool found = false;

    snprintf(want, sizeof(want), "%" PRId64, id);
    for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        redisReply *fields = rep->element[i]->element[1];

        if (fields->elements == 2 && strcmp(fields->element[0]->str, "id") == 0 &&
            strcmp(fields->element[1]->str, want) == 0)
            found = true;
    }
    freeReplyObject(rep);
    return found;
}

static bool job_row(struct db *db, int64_t id, const char *kind, const char *payload_key)
{
    char ids[24];
    PGresult *res;
    bool ok;

    snprintf(ids, sizeof(ids), "%" PRId64, id);
    res = db_exec(db, "SELECT kind, state, payload ? $2 FROM jobs WHERE id = $1", 2,
                  (const char *[]){ids, payload_key});
    ok = res && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), kind) == 0 &&
         strcmp(PQgetvalue(res, 0, 1), "pending") == 0 && strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    PQclear(res);
    return ok;
}

int main(void)
{
    char path[1024], err[256], url[64];
    struct db *db;
    struct kv *kv, *dead;
    int64_t id = 0, id2 = 0, id3 = 0, n = -1;
    char *schema;

    db = db_open(svc_env("STF_DB_URL"), err, sizeof(err));
    kv = kv_open(svc_env("STF_REDIS_URL"), 500, err, sizeof(err));
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", svc_dead_port());
    dead = kv_open(url, 300, err, sizeof(err));
    snprintf(path, sizeof(path), "%s/migrations/0001_create_schema.sql", svc_env("STF_SRC"));
    schema = read_file(path);
    CHECK(db && kv && dead && schema, "setup");
    if (!db || !kv || !dead || !schema)
        return check_done();
    CHECK(db_run_script(db, schema) == 0, "schema applied: %s", db_error(db));

    CHECK(jobs_enqueue(db, kv, "repair_object", "{\"object_id\": 7}", &id) == 0 && id > 0,
          "enqueue");
    CHECK(job_row(db, id, "repair_object", "object_id"), "row pending with its payload");
    CHECK(stream_has(kv, id), "announced on %s", JOBS_STREAM);

    CHECK(jobs_enqueue(db, dead, "delete_files", "{\"cluster_id\": 1}", &id2) == 0 && id2 > id,
          "enqueue while Redis is away still succeeds");
    CHECK(job_row(db, id2, "delete_files", "cluster_id"), "the row is the record");
    CHECK(!stream_has(kv, id2), "not announced");
    CHECK(jobs_announce(dead, id2) == -EIO, "announce reports the outage");
    CHECK(jobs_announce(kv, id2) == 0 && stream_has(kv, id2), "re-announce later");

    CHECK(db_begin(db) == 0, "begin");
    CHECK(jobs_enqueue(db, kv, "delete_bucket", "{\"bucket_id\": 3}", &id3) == 0, "in a tx");
    CHECK(!stream_has(kv, id3), "not announced before commit");
    db_rollback(db);
    CHECK(db_query_int64(db, "SELECT count(*) FROM jobs WHERE kind = 'delete_bucket'", 0, NULL,
                         &n) == 0 &&
              n == 0,
          "rolled back with the transaction");

    CHECK(jobs_insert(db, "verify", "not json", NULL) == -EIO, "bad payload refused");
    CHECK(jobs_insert(db, "", "{}", NULL) == -EINVAL, "empty kind refused");
    CHECK(jobs_insert(db, "scrub", NULL, &id3) == 0, "NULL payload");
    CHECK(db_query_int64(db, "SELECT count(*) FROM jobs WHERE kind = 'scrub' AND payload = '{}'", 0,
                         NULL, &n) == 0 &&
              n == 1,
          "NULL payload stored as {}");

    free(schema);
    kv_free(dead);
    kv_free(kv);
    db_free(db);
    return check_done();
}
