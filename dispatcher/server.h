/* dispatcher/server.h — the HTTP server: a listening socket shared with other dispatchers
 * (SO_REUSEPORT, for zero-downtime deploys), libmicrohttpd with a thread pool on epoll, the
 * life cycle of every request, and the graceful stop (stop accepting, finish in-flight work). */
#ifndef STF_DISP_SERVER_H
#define STF_DISP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct body_cache;
struct cfg;
struct janitor;
struct meta_cache;
struct topology;
struct upstream;

struct server {
    /* set by the caller before server_start (borrowed) */
    const struct cfg *cfg;
    struct topology *topo;
    struct meta_cache *cache;
    struct upstream *up;
    struct janitor *janitor;
    struct body_cache *bodies;
    /* private */
    struct MHD_Daemon *mhd;
    int listen_fd;
    _Atomic bool draining;
    _Atomic int64_t inflight;
    char addr[80];
};

/* Binds cfg->dispatcher.listen (port 0 = ephemeral) and starts serving; logs
 * `event=listening addr=HOST:PORT` with the real port. Returns 0 or -errno (logged). */
int server_start(struct server *s);
/* Stops accepting (the socket leaves the SO_REUSEPORT group, so another dispatcher on the same
 * address takes the new connections), lets in-flight requests finish for up to drain_ms, then
 * closes everything. */
void server_stop(struct server *s, unsigned drain_ms);
bool server_draining(struct server *s);

#endif
