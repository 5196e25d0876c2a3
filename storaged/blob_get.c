/* storaged/blob_get.c — GET and HEAD /<name>: open + fstat, then small bodies from a buffer
 * and larger ones by sendfile, with Range (one range; several are answered 200 with the
 * whole file), Last-Modified and If-Modified-Since. */
#include "blob_store.h"
#include "handlers.h"
#include "http_date.h"
#include "range.h"
#include "response.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *header(struct sd_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* Bodies up to this size are read into memory and sent with the headers in one sendmsg (one
 * TCP segment) instead of a header write plus sendfile: the hot path of small objects. */
#define SD_SMALL_GET_MAX (64 * 1024)

/* Reads len bytes at off into a buffer response (MHD frees it). Closes fd. NULL on error. */
static struct MHD_Response *small_body_response(int fd, uint64_t off, uint64_t len)
{
    struct MHD_Response *resp = NULL;
    char *buf = malloc(len);
    size_t got = 0;

    while (buf && got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t) (off + got));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    close(fd);
    if (buf && got == len)
        resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(buf);
    return resp;
}

/* 304 when the client's copy (If-Modified-Since, "equal or later") is current. */
static bool not_modified(struct sd_request *rq, time_t mtime)
{
    const char *ims = header(rq, MHD_HTTP_HEADER_IF_MODIFIED_SINCE);
    time_t t;

    return ims && http_date_parse(ims, &t) == 0 && mtime <= t;
}

static enum MHD_Result reply_not_modified(struct sd_request *rq, const char *last_modified)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, last_modified);
    return sd_reply(rq, MHD_HTTP_NOT_MODIFIED, resp);
}

static enum MHD_Result reply_unsatisfiable(struct sd_request *rq, uint64_t size)
{
    struct MHD_Response *resp;
    char cr[48];

    snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
    resp = MHD_create_response_from_buffer(22, "range not satisfiable\n", MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    }
    return sd_reply(rq, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
}

enum MHD_Result blob_get_end(struct sd_request *rq)
{
    char last_modified[HTTP_DATE_LEN], cr[80];
    const char *range, *if_range;
    struct MHD_Response *resp;
    struct stat st;
    uint64_t size, off = 0, len;
    unsigned status = MHD_HTTP_OK;
    int fd = -1, r;

    r = blob_store_open_read(rq->store, rq->name, rq->name_len, &fd, &st);
    if (r == -ENOENT)
        return sd_reply_text(rq, MHD_HTTP_NOT_FOUND, "no such blob");
    if (r < 0)
        return sd_reply_errno(rq, r, "open");
    size = (uint64_t) st.st_size;
    len = size;
    http_date_format(st.st_mtime, last_modified);
    if (not_modified(rq, st.st_mtime)) {
        close(fd);
        return reply_not_modified(rq, last_modified);
    }
    range = header(rq, MHD_HTTP_HEADER_RANGE);
    if_range = range ? header(rq, MHD_HTTP_HEADER_IF_RANGE) : NULL;
    if (if_range && strcmp(if_range, last_modified) != 0)
        range = NULL; /* the client's partial copy is of another version: send it all */
    switch (range_parse(range, size, &off, &len)) {
    case RANGE_UNSATISFIABLE:
        close(fd);
        return reply_unsatisfiable(rq, size);
    case RANGE_OK:
        status = MHD_HTTP_PARTIAL_CONTENT;
        snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off, off + len - 1,
                 size);
        break;
    case RANGE_NONE:
        off = 0;
        len = size;
        break;
    }
    if (len == 0) {
        close(fd);
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    } else if (len <= SD_SMALL_GET_MAX && rq->method == SD_GET) {
        resp = small_body_response(fd, off, len); /* closes fd */
    } else {
        /* MHD owns fd from here on (sendfile, or pread for HEAD never happens). */
        resp = MHD_create_response_from_fd_at_offset64(len, fd, off);
        if (!resp)
            close(fd);
    }
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, last_modified);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
        if (status == MHD_HTTP_PARTIAL_CONTENT)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    return sd_reply(rq, status, resp);
}
