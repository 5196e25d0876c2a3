/* test/fuzz/fuzz_blob_path.c — storaged's path mapping (common/blob_path.c): an accepted name
 * maps to exactly ROOT/aa/bb/<name>, under ROOT, with no '.'/'..' segment and no control byte. */
#include "fuzz.h"

#include "blob_path.h"

#include <errno.h>
#include <stdbool.h>

static const char *const roots[] = {
    "/", "/srv/stf/disk1", "/srv/stf/disk1/", "/srv/stf/disk1///", "relative/root", "//srv"};
#define NROOTS (sizeof(roots) / sizeof(roots[0]))

static bool ref_name_valid(const char *s, size_t n)
{
    if (n < 1 || n > 128 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0' ||
            !strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.", s[i]))
            return false;
    }
    return true;
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* "aa/bb/<name>": lower-case hex fan-out, then the name, nothing else. */
static void check_rel(const char *rel, size_t len, const char *name, size_t n)
{
    char fan[BLOB_FANOUT_LEN];

    FUZZ_ASSERT(len == BLOB_FANOUT_LEN + n, "rel '%s' length %zu for a %zu-byte name", rel, len, n);
    FUZZ_ASSERT(is_lower_hex(rel[0]) && is_lower_hex(rel[1]) && rel[2] == '/' &&
                    is_lower_hex(rel[3]) && is_lower_hex(rel[4]) && rel[5] == '/',
                "rel '%s': fan-out", rel);
    FUZZ_ASSERT(memcmp(rel + BLOB_FANOUT_LEN, name, n) == 0, "rel '%s': name", rel);
    FUZZ_ASSERT(memchr(rel + BLOB_FANOUT_LEN, '/', n) == NULL, "rel '%s': a '/' in the name", rel);
    FUZZ_ASSERT(!fuzz_has_dot_segment(rel, len) && !fuzz_has_ctl(rel, len) &&
                    memchr(rel, '\0', len) == NULL,
                "rel '%s': '.'/'..' segment or control byte", rel);
    blob_fanout(name, n, fan);
    FUZZ_ASSERT(memcmp(rel, fan, 5) == 0, "rel '%s' vs fan-out '%s'", rel, fan);
}

static void check_path(const char *root, const char *path, size_t plen, const char *rel)
{
    size_t rlen = strlen(root);
    char want[512];

    while (rlen > 1 && root[rlen - 1] == '/')
        rlen--;
    snprintf(want, sizeof(want), "%.*s%s%s", (int) rlen, root,
             rlen == 1 && root[0] == '/' ? "" : "/", rel);
    FUZZ_ASSERT(strlen(path) == plen && strcmp(path, want) == 0, "root '%s': '%s', want '%s'", root,
                path, want);
    /* under ROOT: the root, one '/', then three non-empty plain segments */
    FUZZ_ASSERT(strncmp(path, root, rlen) == 0, "'%s' not under '%s'", path, root);
    if (!(rlen == 1 && root[0] == '/'))
        FUZZ_ASSERT(path[rlen] == '/', "'%s' not under '%s'", path, root);
    FUZZ_ASSERT(!fuzz_has_dot_segment(path, plen) && !fuzz_has_ctl(path, plen),
                "'%s': '.'/'..' segment or control byte", path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *name = (const char *) data + 1, *root, *why;
    char rel[BLOB_REL_MAX], saved;
    struct buf b;
    size_t n;
    bool ok;
    int r;

    /* any bytes: a path found on disk or sent by a peer */
    if (blob_rel_path_valid((const char *) data, size)) {
        FUZZ_ASSERT(size > BLOB_FANOUT_LEN, "short rel accepted");
        check_rel((const char *) data, size, (const char *) data + BLOB_FANOUT_LEN,
                  size - BLOB_FANOUT_LEN);
        FUZZ_ASSERT(ref_name_valid((const char *) data + BLOB_FANOUT_LEN, size - BLOB_FANOUT_LEN),
                    "rel accepted with an invalid name");
    }
    if (size < 1)
        return 0;
    root = roots[data[0] % NROOTS];
    n = size - 1;

    why = blob_name_invalid(name, n);
    ok = ref_name_valid(name, n);
    FUZZ_ASSERT((why == NULL) == ok, "name of %zu bytes: impl %s, reference %s", n,
                why ? why : "valid", ok ? "valid" : "invalid");
    FUZZ_ASSERT(why == NULL || (why[0] && !strchr(why, '\n')), "reason '%s'", why);

    r = blob_rel_path(name, n, rel);
    FUZZ_ASSERT(ok ? r == 0 : r == -EINVAL, "blob_rel_path: %d", r);
    if (ok) {
        check_rel(rel, strlen(rel), name, n);
        FUZZ_ASSERT(blob_rel_path_valid(rel, strlen(rel)), "'%s' refused", rel);
        /* a wrong fan-out directory is refused */
        saved = rel[4];
        rel[4] = saved == '0' ? '1' : '0';
        FUZZ_ASSERT(!blob_rel_path_valid(rel, strlen(rel)), "'%s' accepted", rel);
        rel[4] = saved;
    }

    buf_init(&b, 4096);
    r = blob_path(root, name, n, &b);
    FUZZ_ASSERT(ok ? r == 0 : r == -EINVAL, "blob_path: %d", r);
    if (ok)
        check_path(root, b.ptr, b.len, rel);
    else
        FUZZ_ASSERT(b.len == 0, "refused name left %zu bytes", b.len);
    buf_release(&b);
    return 0;
}
