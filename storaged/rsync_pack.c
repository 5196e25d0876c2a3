/* storaged/rsync_pack.c — the decoder of the pack stream (format in rsync_pack.h). */
#include "rsync_pack.h"

#include "rsync_endpoints.h"

#include <errno.h>
#include <string.h>

void pack_decoder_init(struct pack_decoder *d, const struct pack_cbs *cb, void *arg)
{
    memset(d, 0, sizeof(*d));
    d->cb = cb;
    d->arg = arg;
}

bool pack_decoder_ended(const struct pack_decoder *d)
{
    return d->state == PACK_ENDED;
}

static bool name_ok(const char *name)
{
    return blob_name_invalid(name, strlen(name)) == NULL;
}

/* "+ NAME SIZE SEC.NSEC" */
static int pack_begin_line(struct pack_decoder *d, char *args)
{
    char *size = strchr(args, ' '), *mtime;
    struct timespec ts;
    uint64_t n;

    if (!size)
        return -EPROTO;
    *size++ = '\0';
    mtime = strchr(size, ' ');
    if (!mtime)
        return -EPROTO;
    *mtime++ = '\0';
    if (!name_ok(args) || rsync_parse_u64(size, UINT64_MAX, &n) < 0 ||
        rsync_parse_mtime(mtime, &ts) < 0)
        return -EPROTO;
    d->left = n;
    d->state = n > 0 ? PACK_DATA : PACK_TRAILER;
    return d->cb->begin(d->arg, args, n, &ts);
}

/* One complete line (without its newline) in d->line. */
static int pack_line(struct pack_decoder *d)
{
    char *l = d->line;
    uint8_t md5[16];

    if (d->state == PACK_TRAILER) {
        if (l[0] != '.' || l[1] != ' ')
            return -EPROTO;
        d->state = PACK_LINE;
        if (strcmp(l + 2, "-") == 0)
            return d->cb->end(d->arg, "");
        if (rsync_parse_md5_hex(l + 2, md5) < 0)
            return -EPROTO;
        return d->cb->end(d->arg, l + 2);
    }
    if (l[0] == '+' && l[1] == ' ')
        return pack_begin_line(d, l + 2);
    if (l[0] == '-' && l[1] == ' ') {
        if (!name_ok(l + 2))
            return -EPROTO;
        return d->cb->missing(d->arg, l + 2);
    }
    if (strncmp(l, "# end", 5) == 0) {
        d->state = PACK_ENDED;
        return 0;
    }
    return -EPROTO;
}

/* Takes line bytes up to a newline. Returns the bytes used, or -errno. */
static int pack_take_line(struct pack_decoder *d, const char *data, size_t len)
{
    const char *nl = memchr(data, '\n', len);
    size_t k = nl ? (size_t) (nl - data) : len;

    if (k >= sizeof(d->line) - d->line_len)
        return -EPROTO;
    memcpy(d->line + d->line_len, data, k);
    d->line_len += k;
    if (!nl)
        return (int) k;
    d->line[d->line_len] = '\0';
    d->line_len = 0;
    {
        int r = pack_line(d);

        if (r < 0)
            return r;
    }
    return (int) k + 1;
}

int pack_decoder_feed(struct pack_decoder *d, const char *data, size_t len)
{
    int r = 0;

    while (len > 0) {
        if (d->state == PACK_FAILED || d->state == PACK_ENDED) {
            r = -EPROTO;
            break;
        }
        if (d->state == PACK_DATA) {
            size_t k = d->left < len ? (size_t) d->left : len;

            r = d->cb->data(d->arg, data, k);
            if (r < 0)
                break;
            d->left -= k;
            data += k;
            len -= k;
            if (d->left == 0)
                d->state = PACK_TRAILER;
            continue;
        }
        r = pack_take_line(d, data, len < 65536 ? len : 65536);
        if (r < 0)
            break;
        data += r;
        len -= (size_t) r;
        r = 0;
    }
    if (r < 0)
        d->state = PACK_FAILED;
    return r;
}
