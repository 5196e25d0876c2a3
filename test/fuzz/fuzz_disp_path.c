/* test/fuzz/fuzz_disp_path.c — the dispatcher's request routing (dispatcher/router.c): the path
 * splits into a valid bucket and object that rebuild it exactly, or the request is refused. */
#include "fuzz.h"

#include "handlers.h"
#include "names.h"
#include "request.h"
#include "router.h"

#include <stdbool.h>

#define PATH_INPUT_MAX 4096

static bool is_get(enum req_method m)
{
    return m == RM_GET || m == RM_HEAD;
}

/* The handler SPEC §5 gives each method on a bucket or an object (NULL: 405). */
static req_handler want_handler(enum req_method m, bool object)
{
    static const req_handler bucket[] = {[RM_GET] = listing_get,
                                         [RM_HEAD] = bucket_head,
                                         [RM_PUT] = bucket_put,
                                         [RM_DELETE] = bucket_delete,
                                         [RM_MOVE] = bucket_move};
    static const req_handler obj[] = {
        [RM_GET] = object_get,       [RM_HEAD] = object_get,  [RM_PUT] = object_put,
        [RM_DELETE] = object_delete, [RM_MOVE] = object_move, [RM_POST] = object_post};

    if (object)
        return m < sizeof(obj) / sizeof(obj[0]) ? obj[m] : NULL;
    return m < sizeof(bucket) / sizeof(bucket[0]) ? bucket[m] : NULL;
}

/* Whether url names a bucket ("/b", or "/b/" for a listing) or an object ("/b/o") that SPEC §5
 * allows, judged with the name checks alone. */
static bool shape_ok(const char *url, enum req_method m, bool *ret_object)
{
    const char *slash;
    size_t blen;

    *ret_object = false;
    if (url[0] != '/')
        return false;
    slash = strchr(url + 1, '/');
    blen = slash ? (size_t) (slash - url - 1) : strlen(url + 1);
    if (names_bucket_invalid(url + 1, blen))
        return false;
    if (!slash || (slash[1] == '\0' && is_get(m)))
        return true;
    *ret_object = true;
    return names_object_invalid(slash + 1, strlen(slash + 1)) == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct request req;
    char *url, rebuilt[PATH_INPUT_MAX + 2];
    bool object = false, ok;
    req_handler want;

    if (size < 1)
        return 0;
    memset(&req, 0, sizeof(req));
    req.m = (enum req_method)(data[0] % (RM_OTHER + 1));
    url = fuzz_strndup(data + 1, size - 1, PATH_INPUT_MAX);
    router_route(&req, url);
    FUZZ_ASSERT(req.handler != NULL, "'%s': no handler", url);

    if (strcmp(url, "/_health") == 0 || strcmp(url, "/_metrics") == 0) {
        want = !is_get(req.m) ? error_handler : url[2] == 'h' ? health_get : metrics_get;
        FUZZ_ASSERT(req.handler == want, "'%s' method %d", url, req.m);
        goto out;
    }
    ok = shape_ok(url, req.m, &object);
    if (req.handler == error_handler) {
        FUZZ_ASSERT(req.error_reason && req.error_reason[0] && !strchr(req.error_reason, '\n'),
                    "'%s': reason", url);
        FUZZ_ASSERT(req.error_status == 400 || req.error_status == 405 || req.error_status == 500,
                    "'%s': status %u", url, req.error_status);
        if (req.error_status == 400)
            FUZZ_ASSERT(!ok && req.object == NULL, "'%s' refused: %s", url, req.error_reason);
        if (req.error_status == 405)
            FUZZ_ASSERT(ok && want_handler(req.m, object) == NULL, "'%s' method %d: 405", url,
                        req.m);
        goto out;
    }
    /* routed: a valid bucket and, for an object, a valid name; together exactly the path */
    FUZZ_ASSERT(ok, "'%s' method %d routed", url, req.m);
    FUZZ_ASSERT(req.handler == want_handler(req.m, object), "'%s' method %d: wrong handler", url,
                req.m);
    FUZZ_ASSERT(names_bucket_invalid(req.bucket, strlen(req.bucket)) == NULL, "bucket '%s'",
                req.bucket);
    FUZZ_ASSERT((req.object != NULL) == object, "'%s': object %p", url, (void *) req.object);
    if (req.object) {
        size_t n = strlen(req.object);

        FUZZ_ASSERT(names_object_invalid(req.object, n) == NULL, "object '%s'", req.object);
        FUZZ_ASSERT(!fuzz_has_ctl(req.object, n) && !fuzz_has_dot_segment(req.object, n),
                    "object '%s'", req.object);
        snprintf(rebuilt, sizeof(rebuilt), "/%s/%s", req.bucket, req.object);
        FUZZ_ASSERT(strcmp(rebuilt, url) == 0, "'%s' split as '%s'", url, rebuilt);
    } else {
        snprintf(rebuilt, sizeof(rebuilt), "/%s", req.bucket);
        FUZZ_ASSERT(strncmp(rebuilt, url, strlen(rebuilt)) == 0 &&
                        (url[strlen(rebuilt)] == '\0' ||
                         (strcmp(url + strlen(rebuilt), "/") == 0 && is_get(req.m))),
                    "'%s' split as bucket '%s'", url, req.bucket);
    }
out:
    free(req.object);
    free(url);
    return 0;
}
