/* storaged/health.c — GET /_health: 200 "ok" while the root is the directory storaged opened,
 * holds its marker and is writable; else 503 with the reason (repaird's health checks). */
#include "blob_store.h"
#include "handlers.h"
#include "marker.h"
#include "response.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/* Returns NULL when healthy, else writes the reason into buf and returns it. */
static const char *health_problem(struct blob_store *store, char *buf, size_t len)
{
    struct stat by_path, by_fd;
    struct statvfs vfs;
    const char *root = blob_store_root(store);
    int fd = blob_store_root_fd(store);

    if (stat(root, &by_path) < 0) {
        snprintf(buf, len, "root %s is not accessible: %s", root, strerror(errno));
        return buf;
    }
    if (fstat(fd, &by_fd) < 0) {
        snprintf(buf, len, "root %s: fstat: %s", root, strerror(errno));
        return buf;
    }
    if (by_path.st_dev != by_fd.st_dev || by_path.st_ino != by_fd.st_ino) {
        snprintf(buf, len,
                 "root %s is no longer the directory storaged opened (unmounted or "
                 "replaced?); restart storaged",
                 root);
        return buf;
    }
    if (marker_check(fd, NULL, buf, len) < 0)
        return buf;
    if (fstatvfs(fd, &vfs) < 0) {
        snprintf(buf, len, "root %s: statvfs: %s", root, strerror(errno));
        return buf;
    }
    if (vfs.f_flag & ST_RDONLY) {
        snprintf(buf, len, "root %s is on a read-only file system", root);
        return buf;
    }
    return NULL;
}

static enum MHD_Result health_get(struct sd_request *rq)
{
    char reason[512];

    if (health_problem(rq->store, reason, sizeof(reason)))
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, reason);
    return sd_reply_text(rq, MHD_HTTP_OK, "ok");
}

const struct sd_endpoint sd_health_endpoint = {
    .name = "health",
    .ops = {[SD_GET] = {.end = health_get}, [SD_HEAD] = {.end = health_get}},
};
