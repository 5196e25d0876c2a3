/* dispatcher/respond.h — building and queueing responses: the headers every response carries
 * (X-Content-Type-Options: nosniff, Connection: close while draining), one-line error texts,
 * and the one table that maps error codes to HTTP statuses. */
#ifndef STF_DISP_RESPOND_H
#define STF_DISP_RESPOND_H

#include <microhttpd.h>
#include <stddef.h>

struct request;

/* Adds the common headers, queues resp with status, destroys resp. */
enum MHD_Result respond(struct request *req, unsigned status, struct MHD_Response *resp);
/* A text/plain body: text and a newline (text is copied). */
enum MHD_Result respond_text(struct request *req, unsigned status, const char *text);
/* An empty body. */
enum MHD_Result respond_empty(struct request *req, unsigned status);
/* Maps -errno to a status (ENOENT 404, EINVAL 400, E2BIG 413, EIO/ENOTCONN 503, else 500) and
 * answers with what as the reason. */
enum MHD_Result respond_errno(struct request *req, int err, const char *what);
unsigned status_of_errno(int err);

#endif
