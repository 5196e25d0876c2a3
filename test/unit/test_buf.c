/* test/unit/test_buf.c — growable buffers: limits, printf, JSON escaping, steal. */
#include "buf.h"
#include "check.h"

#include <errno.h>
#include <stdlib.h>

int main(void)
{
    struct buf b;
    char *s;

    buf_init(&b, 8);
    CHECK(buf_puts(&b, "abcd") == 0 && b.len == 4, "append within max");
    CHECK(buf_puts(&b, "efghi") == -E2BIG && b.len == 4, "append past max refused, unchanged");
    CHECK(buf_puts(&b, "efgh") == 0 && b.len == 8, "append up to max");
    CHECK_STR(b.ptr, "abcdefgh", "content NUL-terminated");
    buf_release(&b);

    buf_init(&b, 1 << 20);
    CHECK(buf_printf(&b, "%d-%s", 42, "x") == 0, "printf");
    CHECK_STR(b.ptr, "42-x", "printf content");
    buf_reset(&b);
    CHECK(buf_json_str(&b, "a\"b\\c\n\x01") == 0, "json escape");
    CHECK_STR(b.ptr, "\"a\\\"b\\\\c\\u000a\\u0001\"", "json escaped text");
    s = buf_steal(&b);
    CHECK(s && b.ptr == NULL && b.len == 0, "steal empties the buffer");
    free(s);

    buf_init(&b, 4);
    CHECK(buf_json_str(&b, "toolong") == -E2BIG && b.len == 0, "json escape rolls back on E2BIG");
    buf_release(&b);
    return check_done();
}
