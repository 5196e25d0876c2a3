/* dispatcher/request.h — the state of one client request as the handlers see it, and the
 * helpers they share to read headers and to pace the upload phase. */
#ifndef STF_DISP_REQUEST_H
#define STF_DISP_REQUEST_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

struct server;
struct request;

enum req_method { RM_GET = 0, RM_HEAD, RM_PUT, RM_DELETE, RM_MOVE, RM_POST, RM_OTHER };

/* Called for every access-handler call of the request (see server.c); the same contract as
 * MHD's access handler. */
typedef enum MHD_Result (*req_handler)(struct request *req, const char *data, size_t *size);

struct request {
    struct server *srv;
    struct MHD_Connection *conn;
    const char *method; /* as sent (MHD-owned, valid for the request) */
    char rid[65];       /* request id: the client's X-Request-Id, else a fresh one */
    enum req_method m;
    int64_t start_us;
    size_t raw_len;  /* length of the request target as received (server.c: NUL detection) */
    unsigned calls;  /* access-handler calls so far, this one included */
    unsigned status; /* the status queued, 0 until then */
    uint64_t bytes_in;
    char bucket[NAMES_BUCKET_MAX + 1];
    char *object;             /* NULL for bucket-level requests */
    const char *error_reason; /* set by the router: answer error_status with this reason */
    unsigned error_status;
    req_handler handler;
    /* per-handler state, released by release() when the request ends (completed callback) */
    void *state;
    void (*release)(struct request *req, bool completed_ok);
};

/* A request header, or NULL. */
const char *req_header(struct request *req, const char *name);
/* A query argument (decoded), or NULL. */
const char *req_arg(struct request *req, const char *name);
/* Whether the client announced a body (Content-Length > 0 or Transfer-Encoding). */
bool req_has_body(struct request *req);

/* NULL, or why the request's method token or message framing is refused (several
 * Content-Length or Transfer-Encoding headers, both together, a coding other than chunked), with
 * its status (400, or 501 for a coding that ends with chunked) in *ret_status. */
const char *req_framing_invalid(struct request *req, unsigned *ret_status);

/* NULL, or why X-STF-Move-Destination is refused before it is read: it is sent several times, or
 * it is an absolute URL naming a host other than the request's Host (ports are not compared: a
 * front proxy may rewrite them). */
const char *req_move_destination_refused(struct request *req);

/* X-STF-Move-Destination as a percent-decoded path (an absolute URL is reduced to its path).
 * NULL when absent or out of memory; the caller free()s it. */
char *req_move_destination(struct request *req);

/* For handlers that take no body: returns true while the handler should just return MHD_YES
 * (first call, or a body chunk that is discarded); false on the call that must answer. */
bool req_skip_body(struct request *req, size_t *size);

#endif
