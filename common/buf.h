/* common/buf.h — growable byte buffers with a hard maximum (as curl's dynbuf).
 * A buf always keeps a NUL after its data, so buf.ptr can be used as a C string. */
#ifndef STF_BUF_H
#define STF_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *ptr;  /* owned; NULL until the first append */
    size_t len; /* bytes used, not counting the trailing NUL */
    size_t cap;
    size_t max; /* appends beyond this fail with -E2BIG */
};

/* Initialises an empty buffer that may grow to max bytes. */
void buf_init(struct buf *b, size_t max);
/* Frees the memory; the buffer is empty and reusable afterwards. */
void buf_release(struct buf *b);
/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);

/* Appends; return 0, -ENOMEM, or -E2BIG when the maximum would be passed (buffer unchanged). */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s as a JSON string literal, quotes included. */
int buf_json_str(struct buf *b, const char *s);

/* Hands the data to the caller (free() it); the buffer is empty afterwards. */
char *buf_steal(struct buf *b);

#endif
