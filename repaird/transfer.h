/* repaird/transfer.h — moving object bytes between storages for repairs: a GET that hashes
 * (and optionally spools) the body, a PUT from a spool file with Content-MD5, both streamed
 * in chunks through the shared throttle, never holding an object in memory. */
#ifndef REPAIRD_TRANSFER_H
#define REPAIRD_TRANSFER_H

#include <stdint.h>

struct throttle;

/* Called for every chunk moved; a negative return (-ECANCELED, -ESTALE) aborts the transfer. */
typedef int (*xfer_tick_fn)(void *arg);

struct xfer_opts {
    struct throttle *throttle; /* NULL = unlimited */
    unsigned sharers;          /* transfers that may share the throttle at once (timeouts) */
    xfer_tick_fn tick;         /* may be NULL */
    void *tick_arg;
};

struct xfer_result {
    long status;            /* HTTP status, 0 when none arrived */
    int err;                /* 0, or -errno of the transport / the tick / the spool file */
    uint64_t bytes;         /* body bytes moved */
    int64_t content_length; /* of the response (HEAD/GET), -1 when absent */
    char md5[33];           /* lower-case hex MD5 of the bytes received (fetch) */
    char etag[130];         /* the ETag answered, quotes removed */
    char errmsg[200];       /* one line when err != 0 or the status is not 2xx */
};

/* HEAD url. Returns the status (> 0) or -errno; fills res. */
int xfer_head(const struct xfer_opts *o, const char *url, struct xfer_result *res);

/* GET url, hashing the body and writing it to fd (from offset 0) when fd >= 0. A body longer
 * than max_bytes is aborted with -EFBIG. Returns the status (> 0) or -errno; fills res. */
int xfer_fetch(const struct xfer_opts *o, const char *url, uint64_t max_bytes, int fd,
               struct xfer_result *res);

/* PUT size bytes of fd (from offset 0) to url with Content-MD5 of md5hex. Returns the status
 * (> 0) or -errno; fills res (etag = what the storage computed). */
int xfer_store(const struct xfer_opts *o, const char *url, int fd, uint64_t size,
               const char *md5hex, struct xfer_result *res);

/* An unnamed temporary file (O_TMPFILE in $TMPDIR, else /var/tmp) for one copy; the caller
 * closes it. Returns the fd or -errno. */
int xfer_spool_open(void);

#endif
