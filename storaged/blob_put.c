/* storaged/blob_put.c — PUT /<name>: stream the body into a temp file while computing its MD5,
 * check the length and Content-MD5, then commit durably and answer 201 with the ETag. */
#include "blob_store.h"
#include "digest.h"
#include "handlers.h"
#include "http_framing.h"
#include "log.h"
#include "response.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUT_LEN_UNKNOWN UINT64_MAX /* chunked upload */

struct put_state {
    struct blob_tmp tmp;
    struct md5_ctx *md5;
    uint64_t expected; /* Content-Length, or PUT_LEN_UNKNOWN */
    uint64_t received;
    uint8_t want_md5[16];
    bool check_md5;
    int err; /* first write error; the rest of the body is then read and dropped */
};

static const char *header(struct sd_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

static void put_free(struct sd_request *rq, bool ok)
{
    struct put_state *st = rq->state;

    if (st->tmp.fd >= 0) {
        if (!ok)
            log_warn("event=upload_aborted name=%.*s received=%" PRIu64 " expected=%" PRId64,
                     (int) rq->name_len, rq->name, st->received,
                     st->expected == PUT_LEN_UNKNOWN ? (int64_t) -1 : (int64_t) st->expected);
        blob_tmp_discard(rq->store, &st->tmp);
    }
    md5_free(st->md5);
    free(st);
    rq->state = NULL;
}

/* Content-Length as sent (MHD has already refused a malformed one). */
static int parse_length(const char *s, uint64_t *ret)
{
    uint64_t v = 0;
    int n = 0;

    for (; *s >= '0' && *s <= '9'; s++) {
        if (++n > 19)
            return -ERANGE;
        v = v * 10 + (uint64_t) (*s - '0');
    }
    if (n == 0 || *s != '\0')
        return -EINVAL;
    *ret = v;
    return 0;
}

/* Refuses early an upload that cannot fit, rather than after streaming it. */
static int check_space(struct sd_request *rq, uint64_t need, uint64_t *ret_free)
{
    struct statvfs vfs;

    if (blob_store_statvfs(rq->store, &vfs) < 0)
        return 0; /* unknown: let the writes tell */
    *ret_free = (uint64_t) vfs.f_bavail * vfs.f_frsize;
    return need > *ret_free ? -ENOSPC : 0;
}

enum MHD_Result blob_put_begin(struct sd_request *rq)
{
    const char *te = header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *cl = header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *md5 = header(rq, "Content-MD5"), *bad_framing;
    uint64_t expected = PUT_LEN_UNKNOWN, free_bytes = 0;
    uint8_t want[16];
    struct put_state *st;
    unsigned status;
    int r;

    if ((bad_framing = http_framing_invalid(rq->conn, &status)))
        return sd_reply_text(rq, status, bad_framing);
    if (!te && !cl)
        return sd_reply_text(rq, MHD_HTTP_LENGTH_REQUIRED,
                             "Content-Length or chunked Transfer-Encoding required");
    if (!te && parse_length(cl, &expected) < 0)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST, "malformed Content-Length");
    if (md5 && md5_from_base64(md5, want) < 0)
        return sd_reply_text(rq, MHD_HTTP_BAD_REQUEST,
                             "malformed Content-MD5 (base64 of 16 bytes expected)");
    if (expected != PUT_LEN_UNKNOWN && check_space(rq, expected, &free_bytes) < 0)
        return sd_reply_textf(rq, MHD_HTTP_INSUFFICIENT_STORAGE,
                              "not enough space: %" PRIu64 " bytes sent, %" PRIu64 " free",
                              expected, free_bytes);
    st = calloc(1, sizeof(*st));
    if (!st)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    st->tmp.fd = -1;
    st->expected = expected;
    st->check_md5 = md5 != NULL;
    memcpy(st->want_md5, want, md5 ? sizeof(want) : 0);
    rq->state = st;
    rq->state_free = put_free;
    st->md5 = md5_new();
    if (!st->md5)
        return sd_reply_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    r = blob_tmp_create(rq->store, &st->tmp);
    if (r < 0)
        return sd_reply_errno(rq, r, "cannot create a temp file");
    return MHD_YES;
}

int blob_put_body(struct sd_request *rq, const char *data, size_t len)
{
    struct put_state *st = rq->state;
    int r;

    st->received += len;
    if (st->err)
        return 0;
    r = blob_tmp_write(&st->tmp, data, len);
    if (r < 0) {
        st->err = r;
        blob_tmp_discard(rq->store, &st->tmp); /* free the space at once */
        return 0;
    }
    md5_update(st->md5, data, len);
    return 0;
}

enum MHD_Result blob_put_end(struct sd_request *rq)
{
    struct put_state *st = rq->state;
    struct MHD_Response *resp;
    uint8_t got[16];
    char hex[33], etag[36];
    int r;

    if (st->err)
        return sd_reply_errno(rq, st->err, "write failed");
    if (st->expected != PUT_LEN_UNKNOWN && st->received != st->expected) {
        blob_tmp_discard(rq->store, &st->tmp);
        return sd_reply_textf(rq, MHD_HTTP_BAD_REQUEST,
                              "body has %" PRIu64 " bytes, Content-Length said %" PRIu64,
                              st->received, st->expected);
    }
    md5_final(st->md5, got);
    hex_encode(got, sizeof(got), hex);
    if (st->check_md5 && memcmp(got, st->want_md5, sizeof(got)) != 0) {
        blob_tmp_discard(rq->store, &st->tmp);
        return sd_reply_textf(rq, MHD_HTTP_BAD_REQUEST,
                              "Content-MD5 mismatch: the body's MD5 is %s", hex);
    }
    r = blob_tmp_commit(rq->store, &st->tmp, rq->name, rq->name_len);
    if (r < 0)
        return sd_reply_errno(rq, r, "cannot store the blob");
    snprintf(etag, sizeof(etag), "\"%s\"", hex);
    resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    return sd_reply(rq, MHD_HTTP_CREATED, resp);
}
