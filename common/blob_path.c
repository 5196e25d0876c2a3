/* common/blob_path.c — validates internal blob names and maps them to ROOT/aa/bb/<name>,
 * refusing anything that could name a path outside the fan-out directories. */
#include "blob_path.h"

#include "hash.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static bool blob_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

const char *blob_name_invalid(const char *name, size_t len)
{
    if (len == 0)
        return "blob name is empty";
    if (len > BLOB_NAME_MAX)
        return "blob name is longer than 128 characters";
    if (name[0] == '.')
        return "blob name may not start with '.'";
    for (size_t i = 0; i < len; i++) {
        if (!blob_name_char(name[i]))
            return "blob name may only hold A-Z a-z 0-9 _ - .";
    }
    return NULL;
}

void blob_fanout(const char *name, size_t len, char out[BLOB_FANOUT_LEN])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h = hash_murmur64(name, len);
    unsigned a = (unsigned) (h >> 56) & 0xff, b = (unsigned) (h >> 48) & 0xff;

    out[0] = hex[a >> 4];
    out[1] = hex[a & 15];
    out[2] = '/';
    out[3] = hex[b >> 4];
    out[4] = hex[b & 15];
    out[5] = '\0';
}

int blob_rel_path(const char *name, size_t len, char out[BLOB_REL_MAX])
{
    if (!blob_name_valid(name, len))
        return -EINVAL;
    blob_fanout(name, len, out);
    out[5] = '/';
    memcpy(out + BLOB_FANOUT_LEN, name, len);
    out[BLOB_FANOUT_LEN + len] = '\0';
    return 0;
}

int blob_path(const char *root, const char *name, size_t len, struct buf *ret)
{
    char rel[BLOB_REL_MAX];
    size_t root_len = strlen(root);
    int r;

    r = blob_rel_path(name, len, rel);
    if (r < 0)
        return r;
    while (root_len > 1 && root[root_len - 1] == '/')
        root_len--;
    r = buf_append(ret, root, root_len);
    if (r == 0 && !(root_len == 1 && root[0] == '/'))
        r = buf_append(ret, "/", 1);
    if (r == 0)
        r = buf_puts(ret, rel);
    return r;
}

bool blob_rel_path_valid(const char *rel, size_t len)
{
    char fanout[BLOB_FANOUT_LEN];

    if (len <= BLOB_FANOUT_LEN || rel[2] != '/' || rel[5] != '/')
        return false;
    if (!blob_name_valid(rel + BLOB_FANOUT_LEN, len - BLOB_FANOUT_LEN))
        return false;
    blob_fanout(rel + BLOB_FANOUT_LEN, len - BLOB_FANOUT_LEN, fanout);
    return memcmp(rel, fanout, 5) == 0;
}
