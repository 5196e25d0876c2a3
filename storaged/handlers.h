/* storaged/handlers.h — the endpoints storaged serves, one source file each, and the blob
 * operations the route table combines into the blob endpoint. */
#ifndef STF_STORAGED_HANDLERS_H
#define STF_STORAGED_HANDLERS_H

#include "request.h"

/* blob_get.c: GET and HEAD /<name> with sendfile, Range, Last-Modified, If-Modified-Since. */
enum MHD_Result blob_get_end(struct sd_request *rq);

/* blob_put.c: PUT /<name>, streamed to a temp file, verified, fsync'd, renamed into place. */
enum MHD_Result blob_put_begin(struct sd_request *rq);
int blob_put_body(struct sd_request *rq, const char *data, size_t len);
enum MHD_Result blob_put_end(struct sd_request *rq);

/* blob_delete.c: DELETE /<name>. */
enum MHD_Result blob_delete_end(struct sd_request *rq);

/* health.c: GET /_health. */
extern const struct sd_endpoint sd_health_endpoint;

/* stats.c: GET /_stats. */
extern const struct sd_endpoint sd_stats_endpoint;

#endif
