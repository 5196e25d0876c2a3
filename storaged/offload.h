/* storaged/offload.h — a few threads of storaged's own for long blocking work of a request
 * (a batch pull): the connection is suspended while the work runs, so the HTTP worker thread
 * that accepted it goes on serving its other connections, and such work spreads over every
 * CPU whichever thread accepted its connection. */
#ifndef STF_STORAGED_OFFLOAD_H
#define STF_STORAGED_OFFLOAD_H

#include <microhttpd.h>
#include <stdbool.h>

struct sd_offload;

/* One piece of work; the caller embeds it in the request's state (no allocation). */
struct sd_offload_job {
    struct sd_offload_job *next;
    struct MHD_Connection *conn;
    void (*work)(void *arg);
    void *arg;
};

/* Starts threads workers. Returns 0 or -errno. */
int sd_offload_new(unsigned threads, struct sd_offload **ret);

/* From the access handler of conn's request (its daemon started with
 * MHD_ALLOW_SUSPEND_RESUME): suspends conn and queues job; a worker runs work(arg), then
 * resumes conn, and MHD calls the access handler again (no body left) to send the answer.
 * job must stay valid until then. Returns 0, or -ESHUTDOWN once the pool is stopping (conn
 * is then left as it was). */
int sd_offload_submit(struct sd_offload *o, struct sd_offload_job *job, struct MHD_Connection *conn,
                      void (*work)(void *arg), void *arg);

/* True once sd_offload_stop began: running work should give up as soon as it can. */
bool sd_offload_cancelled(const struct sd_offload *o);

/* Cancels: work still queued runs with sd_offload_cancelled() true, every connection is
 * resumed, the workers are joined, and the pool is freed. Afterwards no connection is left
 * suspended by it, so MHD_stop_daemon may follow. NULL-safe. */
void sd_offload_stop(struct sd_offload *o);

#endif
