/* dispatcher/main.c — the dispatcher program: arguments and config, wiring of the parts
 * (topology, caches, upstream engine, janitor, notifications, HTTP server), and the graceful
 * stop on SIGTERM/SIGINT. */
#include "body_cache.h"
#include "config.h"
#include "daemon.h"
#include "http_client.h"
#include "janitor.h"
#include "log.h"
#include "meta_cache.h"
#include "put_guard.h"
#include "notify.h"
#include "server.h"
#include "tctx.h"
#include "topology.h"
#include "upstream.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define DRAIN_MS 30000
#define JANITOR_DRAIN_MS 5000

/* Many client and storage connections: raise the soft fd limit to the hard one. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct server srv;
    struct daemon_args args;
    struct janitor *janitor = NULL;
    struct meta_cache *cache = NULL;
    struct topology *topo = NULL;
    struct upstream *up = NULL;
    struct notify *notify = NULL;
    struct body_cache *bodies = NULL;
    struct cfg cfg;
    char err[256];
    int rc = 1, sig;
    unsigned loops;

    cfg_init(&cfg);
    daemon_parse_args(argc, argv, "dispatcher", DAEMON_LISTEN, &cfg, &args);
    if (put_guard_init(err, sizeof(err)) < 0) {
        fprintf(stderr, "dispatcher: %s\n", err);
        cfg_release(&cfg);
        return 1;
    }
    daemon_block_signals();
    raise_nofile();
    if (http_global_init() < 0 || tctx_init(cfg.database.url, cfg.redis.url) < 0) {
        log_error("event=init_failed");
        goto out;
    }
    memset(&srv, 0, sizeof(srv));
    srv.listen_fd = -1;
    loops = (cfg.dispatcher.threads + 1) / 2;
    janitor = janitor_new();
    cache = janitor ? meta_cache_new(janitor) : NULL;
    topo = cache ? topology_new(cfg.database.url) : NULL;
    up = topo ? upstream_new(loops ? loops : 1) : NULL;
    bodies = up ? body_cache_new(BODY_CACHE_BYTES) : NULL;
    notify = bodies ? notify_new(cfg.redis.url, topo, cache) : NULL;
    if (!notify) {
        log_error("event=init_failed");
        goto out;
    }
    srv.cfg = &cfg;
    srv.topo = topo;
    srv.cache = cache;
    srv.up = up;
    srv.janitor = janitor;
    srv.bodies = bodies;
    if (server_start(&srv) < 0)
        goto out;
    for (;;) {
        sig = daemon_wait_signal();
        if (sig == SIGHUP) {
            log_info("event=reload_requested");
            topology_reload_soon(topo);
            meta_cache_clear_local(cache);
            continue;
        }
        break;
    }
    log_info("event=stopping signal=%d", sig);
    server_stop(&srv, DRAIN_MS);
    rc = 0;
out:
    notify_free(notify);
    upstream_free(up, 2000);
    topology_free(topo);
    janitor_free(janitor, JANITOR_DRAIN_MS);
    meta_cache_free(cache);
    body_cache_free(bodies);
    tctx_release();
    http_global_cleanup();
    cfg_release(&cfg);
    return rc;
}
