/* dispatcher/spool.c — an append-only upload body shared by one writer and many readers: the
 * first bytes in memory, the whole body in an unlinked temp file beyond that; the published
 * size (release/acquire) says what readers may see. */
#include "spool.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct spool {
    char *mem;
    size_t mem_cap; /* bytes [0, mem_cap) live in mem once written */
    int fd;         /* -1 until the body outgrows mem; then holds every byte from 0 */
    _Atomic uint64_t size;
    _Atomic bool complete;
};

struct spool *spool_new(uint64_t expected)
{
    struct spool *sp = calloc(1, sizeof(*sp));

    if (!sp)
        return NULL;
    sp->fd = -1;
    if (expected == SPOOL_UNKNOWN)
        sp->mem_cap = SPOOL_MEM_CHUNKED;
    else if (expected <= SPOOL_MEM_MAX)
        sp->mem_cap = (size_t) expected;
    if (sp->mem_cap) {
        sp->mem = malloc(sp->mem_cap);
        if (!sp->mem) {
            free(sp);
            return NULL;
        }
    }
    return sp;
}

void spool_free(struct spool *sp)
{
    if (!sp)
        return;
    if (sp->fd >= 0)
        close(sp->fd);
    free(sp->mem);
    free(sp);
}

static int open_tmp(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    if (!dir || !*dir)
        dir = "/var/tmp";
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* file systems without O_TMPFILE */
    snprintf(path, sizeof(path), "%s/stf-spool.XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

static int write_all(int fd, const char *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t) off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t) n;
        off += (uint64_t) n;
    }
    return 0;
}

int spool_write(struct spool *sp, const void *data, size_t len)
{
    uint64_t size = atomic_load_explicit(&sp->size, memory_order_relaxed);
    const char *p = data;
    int r;

    if (size < sp->mem_cap) {
        size_t n = sp->mem_cap - (size_t) size;

        if (n > len)
            n = len;
        memcpy(sp->mem + size, p, n);
        p += n;
        len -= n;
        size += n;
        atomic_store_explicit(&sp->size, size, memory_order_release);
    }
    if (len == 0)
        return 0;
    if (sp->fd < 0) {
        int fd = open_tmp();

        if (fd < 0) {
            log_error("event=spool_open_failed error=\"%s\"", strerror(-fd));
            return fd;
        }
        r = write_all(fd, sp->mem, (size_t) size, 0);
        if (r < 0) {
            close(fd);
            return r;
        }
        sp->fd = fd; /* published to readers by the size store below */
    }
    r = write_all(sp->fd, p, len, size);
    if (r < 0)
        return r;
    atomic_store_explicit(&sp->size, size + len, memory_order_release);
    return 0;
}

void spool_finish(struct spool *sp)
{
    atomic_store_explicit(&sp->complete, true, memory_order_release);
}

uint64_t spool_size(const struct spool *sp)
{
    return atomic_load_explicit(&sp->size, memory_order_acquire);
}

bool spool_complete(const struct spool *sp)
{
    return atomic_load_explicit(&sp->complete, memory_order_acquire);
}

ssize_t spool_read(struct spool *sp, uint64_t off, void *buf, size_t len)
{
    uint64_t size = atomic_load_explicit(&sp->size, memory_order_acquire);
    size_t n;

    if (off >= size)
        return 0;
    n = size - off < len ? (size_t) (size - off) : len;
    if (off < sp->mem_cap) {
        if (n > sp->mem_cap - off)
            n = sp->mem_cap - (size_t) off;
        memcpy(buf, sp->mem + off, n);
        return (ssize_t) n;
    }
    for (;;) {
        ssize_t r = pread(sp->fd, buf, n, (off_t) off);

        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}
