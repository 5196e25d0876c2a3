/* storaged/server.h — the HTTP server: libmicrohttpd with a pool of poll threads, the
 * request lifecycle around the endpoints, and a graceful stop. */
#ifndef STF_STORAGED_SERVER_H
#define STF_STORAGED_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct blob_store;
struct sd_offload;
struct sd_server;

struct sd_server_opts {
    const char *listen; /* "HOST:PORT", port 0 = ephemeral */
    unsigned threads;   /* MHD worker threads (poll each), 1..limits.max_connections */
    /* effective limits (max_connections >= 1, shared by the workers); connection_memory is
     * the per-connection pool: header bound and upload chunk size */
    struct cfg_limits limits;
};

/* Starts listening and serving store. On success *ret is owned by the caller (release with
 * sd_server_free). Returns 0 or -errno with a one-line reason in err. */
int sd_server_start(struct blob_store *store, const struct sd_server_opts *opts,
                    struct sd_server **ret, char *err, size_t errlen);

/* The offload threads of long blocking request work (offload.h): twice the HTTP threads, at
 * most 32. */
struct sd_offload *sd_server_offload(struct sd_server *s);

/* The bound address, "HOST:PORT" with the real port (also when 0 was asked). */
const char *sd_server_address(const struct sd_server *s);

/* Stops accepting new connections (the listening socket is closed) and makes every further
 * response close its connection; requests in flight go on. */
void sd_server_quiesce(struct sd_server *s);
bool sd_server_stopping(const struct sd_server *s);

/* Requests received but not completed yet (idle keep-alive connections do not count). */
unsigned sd_server_in_flight(const struct sd_server *s);

/* Stops the daemon (closing every connection still open) and frees it. NULL-safe. */
void sd_server_free(struct sd_server *s);

#endif
