/* storaged/router.c — the route table of storaged and the strict checks on request targets.
 * A new endpoint is one line in sd_routes (plus the file that implements it). */
#include "router.h"

#include "blob_path.h"
#include "handlers.h"
#include "rsync_batch.h"
#include "rsync_endpoints.h"

#include <stdbool.h>
#include <string.h>

/* GET/HEAD/PUT/DELETE /<name>. */
/* clang-format off */
static const struct sd_endpoint sd_blob_endpoint = {
    .name = "blob",
    .ops = {
        [SD_GET] = {.end = blob_get_end},
        [SD_HEAD] = {.end = blob_get_end},
        [SD_PUT] = {.begin = blob_put_begin, .body = blob_put_body, .end = blob_put_end},
        [SD_DELETE] = {.end = blob_delete_end},
    },
};
/* clang-format on */

struct sd_route {
    const char *path; /* exact path, or a prefix when it ends with '/' */
    const struct sd_endpoint *ep;
};

/* Reserved paths all start with "/_"; any other path is a blob name. */
static const struct sd_route sd_routes[] = {
    {"/_health", &sd_health_endpoint},
    {"/_stats", &sd_stats_endpoint},
    {RSYNC_PATH_MANIFEST, &sd_rsync_manifest_endpoint},
    {RSYNC_PATH_SIGNATURE, &sd_rsync_signature_endpoint},
    {RSYNC_PATH_DELTA, &sd_rsync_delta_endpoint},
    {RSYNC_PATH_PATCH, &sd_rsync_patch_endpoint},
    {RSYNC_PATH_SYNC, &sd_rsync_sync_endpoint},
    {RSYNC_PATH_PACK, &sd_rsync_pack_endpoint},
    {RSYNC_PATH_PULL, &sd_rsync_pull_endpoint},
};

static bool path_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~!$&'()*+,;=:@/", c) != NULL;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Checks one path segment [s, s + n) that starts after a '/'. */
static const char *check_segment(const char *s, size_t n, bool last)
{
    if (n == 0 && !last)
        return "empty segment in request path";
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return "'.' or '..' segment in request path";
    return NULL;
}

static const char *check_query(const unsigned char *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (q[i] <= 0x20 || q[i] >= 0x7f)
            return "control character, space or non-ASCII byte in request query";
        if (q[i] != '%')
            continue;
        if (i + 2 >= n || !is_hex(q[i + 1]) || !is_hex(q[i + 2]))
            return "malformed percent-encoding in request query";
        if (q[i + 1] == '0' || q[i + 1] == '1' ||
            (q[i + 1] == '7' && (q[i + 2] == 'f' || q[i + 2] == 'F')))
            return "encoded control character in request query";
    }
    return NULL;
}

const char *router_check_target(const char *raw, size_t len)
{
    const unsigned char *p = (const unsigned char *) raw;
    size_t seg = 1, i;
    const char *reason;

    if (len == 0 || raw[0] != '/')
        return "request target must be an absolute path ('/...')";
    if (len > ROUTER_TARGET_MAX)
        return "request target is too long";
    for (i = 1; i < len && p[i] != '?'; i++) {
        unsigned char c = p[i];

        if (c < 0x20 || c == 0x7f)
            return "control character in request path";
        if (c == '%')
            return "percent-encoding is not accepted in request paths";
        if (c == '\\')
            return "backslash in request path";
        if (c >= 0x80)
            return "non-ASCII byte in request path";
        if (!path_char_ok(c))
            return "character not allowed in request path";
        if (c == '/') {
            reason = check_segment(raw + seg, i - seg, false);
            if (reason)
                return reason;
            seg = i + 1;
        }
    }
    reason = check_segment(raw + seg, i - seg, true);
    if (reason)
        return reason;
    if (i < len)
        return check_query(p + i + 1, len - i - 1);
    return NULL;
}

unsigned router_route(struct sd_request *rq, const char **ret_reason)
{
    const char *url = rq->url;
    size_t n = strlen(url);

    if (n < 2 || url[0] != '/') {
        *ret_reason = "no blob name in the request path";
        return 400;
    }
    if (url[1] == '_') {
        for (size_t i = 0; i < sizeof(sd_routes) / sizeof(sd_routes[0]); i++) {
            const struct sd_route *rt = &sd_routes[i];
            size_t pl = strlen(rt->path);

            if (rt->path[pl - 1] == '/' ? strncmp(url, rt->path, pl) == 0
                                        : strcmp(url, rt->path) == 0) {
                rq->ep = rt->ep;
                return 0;
            }
        }
        *ret_reason = "no such endpoint (paths starting with '/_' are reserved)";
        return 404;
    }
    *ret_reason = blob_name_invalid(url + 1, n - 1);
    if (*ret_reason)
        return 400;
    rq->ep = &sd_blob_endpoint;
    rq->name = url + 1;
    rq->name_len = n - 1;
    return 0;
}
