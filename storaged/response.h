/* storaged/response.h — queueing responses: the headers every response carries, one-line
 * error bodies, and the one table that maps -errno to an HTTP status. */
#ifndef STF_STORAGED_RESPONSE_H
#define STF_STORAGED_RESPONSE_H

#include "request.h"

/* Adds the common headers (X-Content-Type-Options, Connection: close while shutting down),
 * queues resp with status, records the status in rq and drops our reference to resp.
 * resp may be NULL (allocation failed): the connection is then dropped. */
enum MHD_Result sd_reply(struct sd_request *rq, unsigned status, struct MHD_Response *resp);

/* Queues a text/plain body of one line: text plus '\n'. */
enum MHD_Result sd_reply_text(struct sd_request *rq, unsigned status, const char *text);

/* Same, formatted (the line is cut at 512 bytes). */
enum MHD_Result sd_reply_textf(struct sd_request *rq, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A streamed body of unknown length, read by rd in blocks of block bytes, with Content-Type
 * ctype; fr(cls) runs when the response ends. NULL when out of memory (fr(cls) has run). */
struct MHD_Response *sd_stream_response(size_t block, MHD_ContentReaderCallback rd, void *cls,
                                        MHD_ContentReaderFreeCallback fr, const char *ctype);

/* An empty body (201, 204, 304...). */
enum MHD_Result sd_reply_empty(struct sd_request *rq, unsigned status);

/* The HTTP status for a -errno from the store: -ENOENT 404, -EINVAL 400, -ENOSPC/-EDQUOT 507,
 * -EROFS/-EMFILE/-ENFILE/-ENOMEM/-EAGAIN 503, anything else 500. */
unsigned sd_errno_status(int err);

/* Replies to a failed store operation: the mapped status and a one-line reason
 * "<what>: <strerror>"; logs it at error level when it is a server-side failure (5xx). */
enum MHD_Result sd_reply_errno(struct sd_request *rq, int err, const char *what);

#endif
