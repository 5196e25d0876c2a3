/* repaird/rsync_pull.c — a batch of fetches done by the target itself (POST /_rsync/pull):
 * the request's list, its curl handle on the engine's multi handle, the answer read back into
 * one result per file. */
#include "rsync_pull.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RPULL_LIST_MAX (256u << 10)
#define RPULL_ANSWER_MAX ((size_t) RPULL_FILES_MAX * (BLOB_NAME_MAX + 200) + 16)
#define RPULL_BASE_TIMEOUT_MS 120000ull
#define RPULL_SLOWEST_RATE (1ull << 20) /* bytes/s assumed for the timeout without a limit */

int rpull_init(struct rpull *p)
{
    memset(p, 0, sizeof(*p));
    buf_init(&p->list, RPULL_LIST_MAX);
    buf_init(&p->answer, RPULL_ANSWER_MAX);
    p->items = calloc(RPULL_FILES_MAX, sizeof(*p->items));
    p->h = curl_easy_init();
    if (!p->items || !p->h) {
        rpull_release(p);
        return -ENOMEM;
    }
    return 0;
}

void rpull_release(struct rpull *p)
{
    if (p->h)
        curl_easy_cleanup(p->h);
    curl_slist_free_all(p->hdrs);
    buf_release(&p->list);
    buf_release(&p->answer);
    free(p->items);
    memset(p, 0, sizeof(*p));
}

int rpull_add(struct rpull *p, const struct rcopy_item *it)
{
    int r;

    if (p->n == RPULL_FILES_MAX)
        return -E2BIG;
    r = buf_printf(&p->list, "%s %" PRIu64 " %s\n", it->name, it->size,
                   it->expect_md5[0] ? it->expect_md5 : "-");
    if (r < 0)
        return r;
    p->items[p->n++] = *it;
    p->bytes += it->size;
    return 0;
}

static size_t rpull_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct rpull *p = arg;
    size_t n = size * nmemb;

    return buf_append(&p->answer, data, n) < 0 ? 0 : n;
}

int rpull_start(struct rpull *p, CURLM *multi, const char *dst_uri, const char *src_uri,
                uint64_t rate)
{
    char line[128];
    uint64_t timeout_ms = RPULL_BASE_TIMEOUT_MS;
    struct curl_slist *n;
    int len;

    len = snprintf(p->url, sizeof(p->url), "%s/_rsync/pull", dst_uri);
    if (len <= 0 || (size_t) len >= sizeof(p->url))
        return -ENAMETOOLONG;
    timeout_ms += p->bytes * 2000 / (rate ? rate : RPULL_SLOWEST_RATE);
    curl_slist_free_all(p->hdrs);
    p->hdrs = curl_slist_append(NULL, "Expect:");
    snprintf(line, sizeof(line), "X-STF-Source: %.100s", src_uri);
    n = p->hdrs ? curl_slist_append(p->hdrs, line) : NULL;
    if (n && rate) {
        snprintf(line, sizeof(line), "X-STF-Max-Bytes-Per-Sec: %" PRIu64, rate);
        n = curl_slist_append(n, line);
    }
    if (!n)
        return -ENOMEM;
    buf_reset(&p->answer);
    rcopy_easy_base(p->h, p->url, p->errbuf);
    curl_easy_setopt(p->h, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
    curl_easy_setopt(p->h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(p->h, CURLOPT_HTTPHEADER, p->hdrs);
    curl_easy_setopt(p->h, CURLOPT_POSTFIELDS, p->list.ptr);
    curl_easy_setopt(p->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) p->list.len);
    curl_easy_setopt(p->h, CURLOPT_WRITEFUNCTION, rpull_write);
    curl_easy_setopt(p->h, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(p->h, CURLOPT_PRIVATE, p);
    if (curl_multi_add_handle(multi, p->h) != CURLM_OK)
        return -ENOMEM;
    p->running = true;
    return 0;
}

/* One answer line "NAME STATUS BYTES REASON" into res. Returns 0, or -EPROTO. */
static int rpull_line(char *line, const struct rcopy_item *it, struct rcopy_result *res)
{
    char name[BLOB_NAME_MAX + 2];
    unsigned status;
    uint64_t bytes;
    int off = 0;

    if (sscanf(line, "%129s %u %" SCNu64 " %n", name, &status, &bytes, &off) != 3 || off == 0 ||
        strcmp(name, it->name) != 0)
        return -EPROTO;
    if (status == 201) {
        res->wire_bytes = res->literal = bytes;
        return 0;
    }
    res->err = status == 404 ? -ENOENT : status == 422 ? -EBADMSG : -EIO;
    snprintf(res->errmsg, sizeof(res->errmsg), "pull of %.129s: %u %.100s", it->name, status,
             line + off);
    return 0;
}

/* Every file failed the same way. */
static void rpull_fail_all(struct rpull *p, int err, const char *msg, rcopy_done_fn done, void *arg)
{
    for (unsigned i = 0; i < p->n; i++) {
        struct rcopy_result res = {.err = err};

        snprintf(res.errmsg, sizeof(res.errmsg), "%.250s", msg);
        done(arg, &p->items[i], &res);
    }
}

static void rpull_report(struct rpull *p, rcopy_done_fn done, void *arg)
{
    char *pos = p->answer.ptr;

    for (unsigned i = 0; i < p->n; i++) {
        struct rcopy_result res = {0};
        char *nl = pos ? strchr(pos, '\n') : NULL;

        if (nl)
            *nl = '\0';
        if (!nl || rpull_line(pos, &p->items[i], &res) < 0) {
            res.err = -EIO;
            snprintf(res.errmsg, sizeof(res.errmsg), "POST %.80s: no answer for %.129s", p->url,
                     p->items[i].name);
        }
        done(arg, &p->items[i], &res);
        pos = nl ? nl + 1 : NULL;
    }
}

void rpull_finish(struct rpull *p, CURLcode code, int err, rcopy_done_fn done, void *arg)
{
    char msg[400];
    long status = 0;

    p->running = false;
    if (err) {
        rpull_fail_all(p, err, "stopped", done, arg);
    } else if (code != CURLE_OK) {
        snprintf(msg, sizeof(msg), "POST %.100s: %.200s", p->url,
                 p->errbuf[0] ? p->errbuf : curl_easy_strerror(code));
        rpull_fail_all(p, rcopy_curl_errno((int) code), msg, done, arg);
    } else if (curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &status), status != 200) {
        snprintf(msg, sizeof(msg), "POST %.100s: HTTP %ld %.120s", p->url, status,
                 p->answer.ptr ? p->answer.ptr : "");
        rpull_fail_all(p, -EIO, msg, done, arg);
    } else {
        rpull_report(p, done, arg);
    }
    p->n = 0;
    p->bytes = 0;
    buf_reset(&p->list);
    buf_reset(&p->answer);
}
