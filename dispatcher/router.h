/* dispatcher/router.h — maps a request line (method, decoded path) to its handler: the
 * /_health and /_metrics endpoints, buckets, objects; refuses bad names (400) and methods a
 * resource does not have (405) with a one-line reason. */
#ifndef STF_DISP_ROUTER_H
#define STF_DISP_ROUTER_H

struct request;

/* Sets req->handler (always) and req->bucket/object. */
void router_route(struct request *req, const char *url);

/* Answers the request with status and a one-line reason (a static string) instead. */
void router_refuse(struct request *req, unsigned status, const char *reason);

#endif
