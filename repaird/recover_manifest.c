/* repaird/recover_manifest.c — fetches a storage's manifest into a spool file (checking the end
 * line that proves it complete) and parses its entries back one at a time. */
#include "recover_manifest.h"

#include "http_client.h"
#include "log.h"
#include "throttle.h"
#include "transfer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MANIFEST_TIMEOUT_MS (6u * 3600 * 1000) /* listing a huge disk takes a while */
#define MANIFEST_LINE_MAX 512
#define MANIFEST_URL_MAX 1024

struct manifest_sink {
    int fd;
    struct throttle *t;
    manifest_tick_fn tick;
    void *tick_arg;
    uint64_t bytes;
    char tail[MANIFEST_LINE_MAX]; /* the last line received, to find the end line */
    size_t tail_len;
    bool tail_overflow;
};

static int manifest_sink_write(void *arg, const void *data, size_t len)
{
    struct manifest_sink *s = arg;
    const char *p = data;
    size_t left = len;
    int r;

    r = throttle_take(s->t, len);
    if (r == 0 && s->tick)
        r = s->tick(s->tick_arg);
    if (r < 0)
        return r;
    while (left > 0) {
        ssize_t n = write(s->fd, p, left);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        left -= (size_t) n;
    }
    s->bytes += len;
    /* keep what follows the last newline (plus that newline's line when it ends the piece) */
    for (size_t i = 0; i < len; i++) {
        char c = ((const char *) data)[i];

        if (s->tail_len > 0 && s->tail[s->tail_len - 1] == '\n') {
            s->tail_len = 0;
            s->tail_overflow = false;
        }
        if (s->tail_len < sizeof(s->tail) - 1)
            s->tail[s->tail_len++] = c;
        else
            s->tail_overflow = true;
    }
    return 0;
}

/* "# end files=N bytes=B\n" */
static int manifest_parse_end(const struct manifest_sink *s, uint64_t *files, uint64_t *bytes)
{
    char line[MANIFEST_LINE_MAX], tail[8];

    if (s->tail_overflow || s->tail_len == 0 || s->tail[s->tail_len - 1] != '\n')
        return -EPROTO;
    memcpy(line, s->tail, s->tail_len);
    line[s->tail_len] = '\0';
    if (sscanf(line, "# end files=%" SCNu64 " bytes=%" SCNu64 "%7s", files, bytes, tail) != 2)
        return -EPROTO;
    return 0;
}

int manifest_fetch(const char *uri, const char *after, struct throttle *t, manifest_tick_fn tick,
                   void *tick_arg, struct manifest_file *ret, char *err, size_t errlen)
{
    struct manifest_sink s = {.fd = -1, .t = t, .tick = tick, .tick_arg = tick_arg};
    struct http_req req = {.method = HTTP_GET, .timeout_ms = MANIFEST_TIMEOUT_MS};
    char url[MANIFEST_URL_MAX];
    int r;

    memset(ret, 0, sizeof(*ret));
    if (snprintf(url, sizeof(url), "%s/_rsync/manifest%s%s", uri, after && *after ? "?after=" : "",
                 after && *after ? after : "") >= (int) sizeof(url)) {
        snprintf(err, errlen, "manifest url too long");
        return -ENAMETOOLONG;
    }
    s.fd = xfer_spool_open();
    if (s.fd < 0) {
        snprintf(err, errlen, "cannot create a spool file: %s", strerror(-s.fd));
        return s.fd;
    }
    req.url = url;
    req.resp.kind = HTTP_SINK_CB;
    req.resp.fn = manifest_sink_write;
    req.resp.arg = &s;
    r = http_perform(&req);
    if (r < 0) {
        snprintf(err, errlen, "GET %s: %s", url, req.errmsg);
        goto fail;
    }
    if (r != 200) {
        snprintf(err, errlen, "GET %s: HTTP %d %.120s", url, r, req.err_body);
        r = r == 404 ? -ENOENT : -EIO;
        goto fail;
    }
    r = manifest_parse_end(&s, &ret->files, &ret->bytes);
    if (r < 0) {
        snprintf(err, errlen, "GET %s: the manifest was cut short (no end line)", url);
        goto fail;
    }
    if (lseek(s.fd, 0, SEEK_SET) < 0 || !(ret->f = fdopen(s.fd, "r"))) {
        r = -errno;
        snprintf(err, errlen, "spool file: %s", strerror(errno));
        goto fail;
    }
    ret->wire_bytes = s.bytes;
    return 0;
fail:
    close(s.fd);
    memset(ret, 0, sizeof(*ret));
    return r;
}

int manifest_parse_line(const char *line, struct manifest_entry *e)
{
    const char *sp1 = strchr(line, ' '), *sp2, *dot;
    char *end;
    unsigned long long size, sec, nsec;
    size_t rel_len;

    if (!sp1)
        return -EPROTO;
    rel_len = (size_t) (sp1 - line);
    if (rel_len >= sizeof(e->rel) || !blob_rel_path_valid(line, rel_len))
        return -EPROTO;
    sp2 = strchr(sp1 + 1, ' ');
    if (!sp2 || sp1[1] < '0' || sp1[1] > '9')
        return -EPROTO;
    errno = 0;
    size = strtoull(sp1 + 1, &end, 10);
    if (errno || end != sp2 || sp2[1] < '0' || sp2[1] > '9')
        return -EPROTO;
    sec = strtoull(sp2 + 1, &end, 10);
    dot = end;
    if (errno || *dot != '.' || dot[1] < '0' || dot[1] > '9' || sec > INT64_MAX / 1000000000)
        return -EPROTO;
    nsec = strtoull(dot + 1, &end, 10);
    if (errno || *end != '\0' || end - dot != 10 || nsec > 999999999)
        return -EPROTO;
    memcpy(e->rel, line, rel_len);
    e->rel[rel_len] = '\0';
    e->size = size;
    e->mtime_ns = (int64_t) sec * 1000000000 + (int64_t) nsec;
    return 0;
}

int manifest_next(struct manifest_file *m, struct manifest_entry *e)
{
    char line[MANIFEST_LINE_MAX];
    size_t n;

    if (m->ended)
        return 0;
    if (!m->f || !fgets(line, sizeof(line), m->f))
        return -EPROTO; /* the end line is always there: running out before it is corrupt */
    n = strlen(line);
    if (n == 0 || line[n - 1] != '\n')
        return -EPROTO;
    line[n - 1] = '\0';
    if (line[0] == '#') {
        m->ended = true;
        return m->read == m->files ? 0 : -EPROTO;
    }
    if (manifest_parse_line(line, e) < 0)
        return -EPROTO;
    m->read++;
    return 1;
}

void manifest_close(struct manifest_file *m)
{
    if (m->f)
        fclose(m->f);
    memset(m, 0, sizeof(*m));
}
