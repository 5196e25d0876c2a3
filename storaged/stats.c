/* storaged/stats.c — GET /_stats: the disk's bytes (statvfs of the root) and the number of
 * blobs, as one JSON object. */
#include "blob_store.h"
#include "handlers.h"
#include "response.h"

#include <inttypes.h>
#include <stdio.h>

static enum MHD_Result stats_get(struct sd_request *rq)
{
    struct MHD_Response *resp;
    struct statvfs vfs;
    char json[256];
    uint64_t total, used, avail;
    int n, r;

    r = blob_store_statvfs(rq->store, &vfs);
    if (r < 0)
        return sd_reply_errno(rq, r, "statvfs");
    total = (uint64_t) vfs.f_blocks * vfs.f_frsize;
    used = (uint64_t) (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
    avail = (uint64_t) vfs.f_bavail * vfs.f_frsize; /* what storaged may still write */
    n = snprintf(json, sizeof(json),
                 "{\"bytes_total\":%" PRIu64 ",\"bytes_used\":%" PRIu64 ",\"bytes_free\":%" PRIu64
                 ",\"files\":%" PRIu64 "}\n",
                 total, used, avail, blob_store_files(rq->store));
    resp = MHD_create_response_from_buffer((size_t) n, json, MHD_RESPMEM_MUST_COPY);
    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return sd_reply(rq, MHD_HTTP_OK, resp);
}

const struct sd_endpoint sd_stats_endpoint = {
    .name = "stats",
    .ops = {[SD_GET] = {.end = stats_get}, [SD_HEAD] = {.end = stats_get}},
};
