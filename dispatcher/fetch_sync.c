/* dispatcher/fetch_sync.c — synchronous small reads on a per-thread libcurl handle with short
 * timeouts, failover across copies, and a table of storages to avoid while they are slow. */
#include "fetch_sync.h"

#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SYNC_CONNECT_TIMEOUT_MS 300L
#define SYNC_TIMEOUT_MS 1000L /* a small body that takes longer: the copy counts as slow */
#define SLOW_PENALTY_MS 10000 /* how long a slow storage is left to the async path */
#define SLOW_SLOTS 1024
/* Idle keep-alive connections a thread's handle keeps: one per storage a read may go to.
 * libcurl's default (5) is below the storages of two clusters of three, so reads evicted each
 * other's connections and every few GETs paid a connect (and storaged an accept). */
#define SYNC_MAX_CONNECTS 256L

static _Atomic int64_t slow_until[SLOW_SLOTS];
static pthread_key_t handle_key;
static pthread_once_t handle_once = PTHREAD_ONCE_INIT;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t slot(int64_t id)
{
    return (size_t) ((uint64_t) id % SLOW_SLOTS);
}

bool fetch_sync_avoid(int64_t storage_id)
{
    return atomic_load_explicit(&slow_until[slot(storage_id)], memory_order_relaxed) > now_ms();
}

static void handle_free(void *h)
{
    curl_easy_cleanup(h);
}

static void key_init(void)
{
    pthread_key_create(&handle_key, handle_free);
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg);

/* The thread's handle, with the options every fast read shares set once (the per-read ones
 * are URL, Range header and sink; no curl_easy_reset per read). */
static CURL *handle(void)
{
    CURL *h;

    pthread_once(&handle_once, key_init);
    h = pthread_getspecific(handle_key);
    if (!h) {
        h = curl_easy_init();
        if (h && pthread_setspecific(handle_key, h) != 0) {
            curl_easy_cleanup(h);
            return NULL;
        }
        if (!h)
            return NULL;
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, SYNC_CONNECT_TIMEOUT_MS);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, SYNC_TIMEOUT_MS);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_MAXCONNECTS, SYNC_MAX_CONNECTS);
        curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    }
    return h;
}

void fetch_sync_thread_free(void)
{
    CURL *h;

    pthread_once(&handle_once, key_init);
    h = pthread_getspecific(handle_key);
    if (h) {
        pthread_setspecific(handle_key, NULL);
        curl_easy_cleanup(h);
    }
}

struct sink {
    CURL *h;
    char *buf;
    uint64_t len, got;
    long want_status;
    bool bad;
};

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *s = arg;
    size_t n = size * nmemb;
    long code = 0;

    if (s->got == 0) {
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
        if (code != s->want_status) {
            s->bad = true;
            return 0;
        }
    }
    if (n > s->len - s->got) {
        s->bad = true;
        return 0;
    }
    memcpy(s->buf + s->got, data, n);
    s->got += n;
    return n;
}

int fetch_sync(const char *rid, const char *const *urls, const int64_t *ids, size_t n, uint64_t off,
               uint64_t len, bool ranged, char *buf, size_t *ret_next, unsigned *ret_failed,
               unsigned *ret_not_found)
{
    CURL *h = handle();
    struct curl_slist *hdrs = NULL;
    char range[80], ridh[96];

    *ret_failed = *ret_not_found = 0;
    if (!h)
        return -EAGAIN;
    snprintf(ridh, sizeof(ridh), "X-Request-Id: %s", rid);
    hdrs = curl_slist_append(NULL, ridh);
    if (hdrs && ranged) {
        snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
        hdrs = curl_slist_append(hdrs, range);
    }
    if (!hdrs)
        return -EAGAIN;
    for (size_t i = 0; i < n; i++) {
        struct sink s = {h, buf, len, 0, ranged ? 206 : 200, false};
        CURLcode rc;
        long code = 0;

        if (fetch_sync_avoid(ids[i])) {
            *ret_next = i;
            curl_slist_free_all(hdrs);
            return -EAGAIN;
        }
        curl_easy_setopt(h, CURLOPT_URL, urls[i]);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL); /* hdrs is freed below */
        if (rc == CURLE_OK && !s.bad && s.got == len) {
            curl_slist_free_all(hdrs);
            *ret_next = i;
            return 0;
        }
        (*ret_failed)++;
        if (code == 404)
            (*ret_not_found)++;
        log_info("event=read_copy_failed rid=%s url=%s status=%ld error=\"%s\"", rid, urls[i], code,
                 s.bad ? "unexpected answer" : curl_easy_strerror(rc));
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            /* slow, not dead: leave it to the asynchronous path for a while, and let that
             * path try the next copies of this read */
            atomic_store_explicit(&slow_until[slot(ids[i])], now_ms() + SLOW_PENALTY_MS,
                                  memory_order_relaxed);
            *ret_next = i + 1;
            curl_slist_free_all(hdrs);
            return -EAGAIN;
        }
    }
    curl_slist_free_all(hdrs);
    *ret_next = n;
    return -ENOENT;
}
