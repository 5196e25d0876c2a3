/* dispatcher/meta.h — the metadata of one object as the dispatcher needs it to serve reads
 * (a row of `objects`), shared by the database layer, the cache and the handlers. */
#ifndef STF_DISP_META_H
#define STF_DISP_META_H

#include <stdint.h>

#include "names.h"

#define META_CONTENT_TYPE_MAX 255 /* longer Content-Type headers are refused with 400 */

struct obj_meta {
    int64_t id;
    int64_t bucket_id;
    int64_t cluster_id;
    uint64_t size;
    int64_t mtime; /* updated_at, unix seconds (Last-Modified) */
    char internal_name[NAMES_INTERNAL_LEN + 1];
    char etag[33]; /* MD5, lower-case hex, no quotes */
    char content_type[META_CONTENT_TYPE_MAX + 1];
};

#endif
