/* common/buf.c — growable byte buffers with a hard maximum, and JSON string escaping. */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void buf_release(struct buf *b)
{
    free(b->ptr);
    buf_init(b, b->max);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

static int buf_reserve(struct buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > b->max || b->len > b->max - extra)
        return -E2BIG;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->ptr, cap);
    if (!p)
        return -ENOMEM;
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    int r = buf_reserve(b, len);

    if (r < 0)
        return r;
    if (len)
        memcpy(b->ptr + b->len, data, len);
    b->len += len;
    b->ptr[b->len] = '\0';
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, r;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    r = buf_reserve(b, (size_t) n);
    if (r < 0)
        return r;
    vsnprintf(b->ptr + b->len, (size_t) n + 1, fmt, ap);
    b->len += (size_t) n;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

int buf_json_str(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len;
    int r = buf_append(b, "\"", 1);

    for (const unsigned char *p = (const unsigned char *) s; r == 0 && *p; p++) {
        char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};

        if (*p == '"' || *p == '\\')
            r = buf_append(b, (char[]){'\\', (char) *p}, 2);
        else if (*p < 0x20 || *p == 0x7f)
            r = buf_append(b, esc, sizeof(esc));
        else
            r = buf_append(b, p, 1);
    }
    if (r == 0)
        r = buf_append(b, "\"", 1);
    if (r < 0) {
        b->len = start;
        if (b->ptr)
            b->ptr[start] = '\0';
    }
    return r;
}

char *buf_steal(struct buf *b)
{
    char *p = b->ptr;

    buf_init(b, b->max);
    return p;
}
