/* storaged/request.h — the types shared by the server, the router and the endpoints: one
 * request's state, and the per-method operations an endpoint provides. */
#ifndef STF_STORAGED_REQUEST_H
#define STF_STORAGED_REQUEST_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct sd_server;
struct blob_store;

enum sd_method { SD_GET = 0, SD_HEAD, SD_PUT, SD_DELETE, SD_POST, SD_METHOD_COUNT };

struct sd_request;

/* What an endpoint does for one method. The server calls, in order:
 * - begin (optional) once the headers are complete, before any body byte. It may set
 *   rq->state/rq->state_free, or queue an error response (the connection then closes,
 *   since the body is left unread);
 * - body (optional) for every piece of the request body; without it the server discards the
 *   body (up to a bound). Returns 0, or -errno to drop the connection;
 * - end once the whole request has been received: it must queue the response. */
struct sd_method_ops {
    enum MHD_Result (*begin)(struct sd_request *rq);
    int (*body)(struct sd_request *rq, const char *data, size_t len);
    enum MHD_Result (*end)(struct sd_request *rq);
};

struct sd_endpoint {
    const char *name;                          /* for the logs, e.g. "blob", "stats" */
    struct sd_method_ops ops[SD_METHOD_COUNT]; /* .end == NULL: method not allowed */
};

/* One HTTP request. Allocated when its request line arrives, freed when MHD reports it
 * completed (after state_free ran). */
struct sd_request {
    struct sd_server *srv;
    struct blob_store *store;
    struct MHD_Connection *conn;
    const struct sd_endpoint *ep; /* NULL until routed */
    enum sd_method method;
    const char *method_name; /* static; NULL for a method storaged does not know */
    const char *url;         /* decoded path as MHD gives it; valid for the request's lifetime */
    const char *name;        /* the blob name inside url (blob endpoint only) */
    size_t name_len;
    const char *raw_refusal; /* why the raw request target is refused, or NULL (static) */
    size_t raw_len;          /* strlen of the raw request target as received */
    unsigned calls;          /* access-handler calls so far */
    unsigned status;         /* status of the queued response, 0 before */
    bool responded;
    uint64_t body_bytes;     /* request body bytes received */
    struct timespec started; /* CLOCK_MONOTONIC at the request line */
    void *state;             /* endpoint-owned */
    /* Frees state; ok is true when the request ran to completion (response sent). */
    void (*state_free)(struct sd_request *rq, bool ok);
};

#endif
