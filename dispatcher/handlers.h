/* dispatcher/handlers.h — the handler of every resource (one file each: bucket.c, listing.c,
 * object_put.c, object_get.c, object_delete.c, object_move.c, object_post.c, health.c,
 * metrics_http.c). Each follows the access-handler contract of request.h. */
#ifndef STF_DISP_HANDLERS_H
#define STF_DISP_HANDLERS_H

#include <microhttpd.h>
#include <stddef.h>

struct request;

enum MHD_Result bucket_put(struct request *req, const char *data, size_t *size);
enum MHD_Result bucket_delete(struct request *req, const char *data, size_t *size);
enum MHD_Result bucket_move(struct request *req, const char *data, size_t *size);
enum MHD_Result bucket_head(struct request *req, const char *data, size_t *size);
enum MHD_Result listing_get(struct request *req, const char *data, size_t *size);
enum MHD_Result object_put(struct request *req, const char *data, size_t *size);
enum MHD_Result object_get(struct request *req, const char *data, size_t *size);
enum MHD_Result object_delete(struct request *req, const char *data, size_t *size);
enum MHD_Result object_move(struct request *req, const char *data, size_t *size);
enum MHD_Result object_post(struct request *req, const char *data, size_t *size);
enum MHD_Result health_get(struct request *req, const char *data, size_t *size);
enum MHD_Result metrics_get(struct request *req, const char *data, size_t *size);
/* Answers req->error_status with req->error_reason. */
enum MHD_Result error_handler(struct request *req, const char *data, size_t *size);

#endif
