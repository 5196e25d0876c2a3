/* dispatcher/health.c — GET /_health: 200 "ok" when PostgreSQL answers, with a line for each
 * degraded helper (Redis, stale topology, deferred work backlog); 503 otherwise. */
#include "handlers.h"

#include "buf.h"
#include "db.h"
#include "janitor.h"
#include "kv.h"
#include "request.h"
#include "respond.h"
#include "server.h"
#include "tctx.h"
#include "topology.h"

#include <inttypes.h>
#include <string.h>

enum MHD_Result health_get(struct request *req, const char *data, size_t *size)
{
    struct db *db;
    struct kv *kv;
    redisReply *rep = NULL;
    struct buf out;
    int64_t age;
    size_t backlog;
    bool pg_ok, redis_ok;
    enum MHD_Result ret;

    (void) data;
    if (req_skip_body(req, size))
        return MHD_YES;
    db = tctx_db();
    pg_ok = db && db_query_int64(db, "SELECT 1", 0, NULL, NULL) == 0;
    kv = tctx_kv();
    if (kv)
        rep = kv_commandf(kv, "PING");
    redis_ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep)
        freeReplyObject(rep);
    age = topology_age_seconds(req->srv->topo);
    backlog = janitor_backlog(req->srv->janitor);
    buf_init(&out, 4096);
    buf_puts(&out, pg_ok ? "ok" : "unavailable");
    if (!pg_ok)
        buf_puts(&out, "\npostgresql: unreachable");
    if (!redis_ok)
        buf_puts(&out, "\nredis: unreachable (degraded: no shared cache, jobs recorded in "
                       "PostgreSQL only)");
    if (age < 0 || age > 5)
        buf_printf(&out, "\ntopology: %s", age < 0 ? "never loaded" : "stale");
    if (backlog > 0)
        buf_printf(&out, "\ndeferred work waiting: %zu", backlog);
    if (server_draining(req->srv))
        buf_puts(&out, "\ndraining: shutting down");
    ret = respond_text(req, pg_ok ? 200 : 503, out.ptr ? out.ptr : "");
    buf_release(&out);
    return ret;
}
