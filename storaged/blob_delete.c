/* storaged/blob_delete.c — DELETE /<name>: unlink the blob and fsync its directory;
 * 204, or 404 when there is no such blob. */
#include "blob_store.h"
#include "handlers.h"
#include "response.h"

#include <errno.h>

enum MHD_Result blob_delete_end(struct sd_request *rq)
{
    int r = blob_store_delete(rq->store, rq->name, rq->name_len);

    if (r == -ENOENT)
        return sd_reply_text(rq, MHD_HTTP_NOT_FOUND, "no such blob");
    if (r < 0)
        return sd_reply_errno(rq, r, "cannot delete the blob");
    return sd_reply_empty(rq, MHD_HTTP_NO_CONTENT);
}
