/* bench/thrasher.c — the thrasher load pattern: N keys, each PUT, then GET (checked byte for
 * byte), then DELETE of a small value, by C concurrent clients over keep-alive connections. */

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THRASH_MAX_KEYS     10000000u
#define THRASH_MAX_CLIENTS  1024u
#define THRASH_MAX_VALUE    4096u
#define THRASH_MAX_URL      2048u

enum thrash_op { OP_PUT, OP_GET, OP_DELETE, OP_COUNT };

static const char *const op_names[OP_COUNT] = { "PUT", "GET", "DELETE" };
static const long op_expect[OP_COUNT] = { 201, 200, 204 };

struct thrash {
    const char *base_url;       /* ends with '/' */
    const char *tag;            /* makes the key names of one run unique */
    unsigned keys;
    unsigned clients;
    size_t value_size;
    atomic_uint next_key;
    atomic_uint errors[OP_COUNT];
    atomic_uint first_error_reported;
    double *latency[OP_COUNT];  /* seconds, indexed by key; each key has one writer */
};

struct body_sink {
    char data[THRASH_MAX_VALUE];
    size_t len;
    bool overflow;
};

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static size_t sink_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body_sink *sink = userdata;
    size_t n = size * nmemb;

    if (n > sizeof(sink->data) - sink->len) {
        sink->overflow = true;
        return n;
    }
    memcpy(sink->data + sink->len, ptr, n);
    sink->len += n;
    return n;
}

/* The value stored under key i: "v<i>-" padded with a fixed pattern to value_size bytes. */
static void value_for(unsigned i, char *buf, size_t size)
{
    int n = snprintf(buf, size + 1, "v%u-", i);
    size_t k;

    for (k = n < 0 ? 0 : (size_t) n; k < size; k++)
        buf[k] = (char) ('a' + k % 26);
}

static void report_error(struct thrash *t, enum thrash_op op, const char *url, long status,
                         CURLcode cc, const char *what)
{
    if (atomic_fetch_add(&t->first_error_reported, 1) < 5)
        fprintf(stderr, "thrasher: %s %s: %s (status %ld, curl: %s)\n", op_names[op], url, what,
                status, curl_easy_strerror(cc));
}

/* Runs one request on the thread's handle; returns 0 when the status (and, for GET, the body)
 * is what a working store answers, -EIO otherwise. */
static int do_op(struct thrash *t, CURL *h, enum thrash_op op, const char *url,
                 const char *value)
{
    struct body_sink sink = { .len = 0, .overflow = false };
    struct curl_slist *hdrs = NULL;
    long status = 0;
    CURLcode cc;
    int r = -EIO;

    curl_easy_reset(h);         /* keeps the live connection */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (op == OP_PUT) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, value);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long) t->value_size);
    } else if (op == OP_DELETE) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    if (!hdrs) {
        report_error(t, op, url, 0, CURLE_OUT_OF_MEMORY, "out of memory");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    cc = curl_easy_perform(h);
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK || status != op_expect[op]) {
        report_error(t, op, url, status, cc, "unexpected answer");
        goto out;
    }
    if (op == OP_GET && (sink.overflow || sink.len != t->value_size ||
                         memcmp(sink.data, value, t->value_size) != 0)) {
        report_error(t, op, url, status, cc, "body differs from the value stored");
        goto out;
    }
    r = 0;
out:
    curl_slist_free_all(hdrs);
    return r;
}

static void *client_main(void *arg)
{
    struct thrash *t = arg;
    char value[THRASH_MAX_VALUE + 1];
    char url[THRASH_MAX_URL];
    CURL *h = curl_easy_init();
    unsigned i;
    int op;

    if (!h) {
        fprintf(stderr, "thrasher: curl_easy_init failed\n");
        atomic_fetch_add(&t->errors[OP_PUT], 1);
        return NULL;
    }
    while ((i = atomic_fetch_add(&t->next_key, 1)) < t->keys) {
        snprintf(url, sizeof(url), "%s%s-%u", t->base_url, t->tag, i);
        value_for(i, value, t->value_size);
        for (op = 0; op < OP_COUNT; op++) {
            double start = now_seconds();
            if (do_op(t, h, (enum thrash_op) op, url, value) < 0) {
                atomic_fetch_add(&t->errors[op], 1);
                t->latency[op][i] = -1;
                break;      /* the next steps of this key would fail for the same reason */
            }
            t->latency[op][i] = now_seconds() - start;
        }
        for (op++; op < OP_COUNT; op++)
            t->latency[op][i] = -1;
    }
    curl_easy_cleanup(h);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}

/* Sorts the non-negative latencies of one op in place; returns how many there are. */
static size_t sort_latencies(double *lat, size_t n)
{
    size_t k = 0, i;

    for (i = 0; i < n; i++)
        if (lat[i] >= 0)
            lat[k++] = lat[i];
    qsort(lat, k, sizeof(*lat), cmp_double);
    return k;
}

static double percentile(const double *sorted, size_t n, double p)
{
    size_t idx;

    if (n == 0)
        return 0;
    idx = (size_t) (p / 100.0 * (double) (n - 1) + 0.5);
    return sorted[idx < n ? idx : n - 1];
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: thrasher [--keys N] [--clients C] [--value-size B] [--tag T] BASE_URL\n"
            "  Each of N keys (default 10000) is PUT, then GET (compared), then DELETEd, by C\n"
            "  concurrent clients (default 16); the value is B bytes (default 20). Keys are\n"
            "  BASE_URL<T>-<i>; BASE_URL ends with '/', e.g. http://127.0.0.1:8080/bucket/.\n"
            "  Expects 201, 200, 204. Prints a table and a RESULT line; exit 1 on any error.\n");
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *ret)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return -EINVAL;
    *ret = (unsigned) v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "keys", required_argument, NULL, 'n' },
        { "clients", required_argument, NULL, 'c' },
        { "value-size", required_argument, NULL, 's' },
        { "tag", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct thrash t = { .keys = 10000, .clients = 16, .value_size = 20 };
    pthread_t threads[THRASH_MAX_CLIENTS];
    unsigned started = 0, value_size = 20, errors = 0, i;
    char tag[64];
    double start, elapsed;
    int opt, op, rc = 1;

    snprintf(tag, sizeof(tag), "thrash%ld-%d", (long) time(NULL), (int) getpid());
    t.tag = tag;
    while ((opt = getopt_long(argc, argv, "n:c:s:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n':
            if (parse_uint(optarg, 1, THRASH_MAX_KEYS, &t.keys) < 0)
                goto bad_usage;
            break;
        case 'c':
            if (parse_uint(optarg, 1, THRASH_MAX_CLIENTS, &t.clients) < 0)
                goto bad_usage;
            break;
        case 's':
            if (parse_uint(optarg, 1, THRASH_MAX_VALUE, &value_size) < 0)
                goto bad_usage;
            break;
        case 't':
            t.tag = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            goto bad_usage;
        }
    }
    if (optind != argc - 1 || strlen(argv[optind]) + strlen(t.tag) + 16 > THRASH_MAX_URL ||
        argv[optind][strlen(argv[optind]) - 1] != '/')
        goto bad_usage;
    t.base_url = argv[optind];
    t.value_size = value_size;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "thrasher: curl_global_init failed\n");
        return 1;
    }
    for (op = 0; op < OP_COUNT; op++) {
        t.latency[op] = calloc(t.keys, sizeof(double));
        if (!t.latency[op]) {
            fprintf(stderr, "thrasher: out of memory\n");
            goto out;
        }
    }
    start = now_seconds();
    for (started = 0; started < t.clients; started++) {
        if (pthread_create(&threads[started], NULL, client_main, &t) != 0) {
            fprintf(stderr, "thrasher: cannot start client thread %u\n", started);
            break;
        }
    }
    for (i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    elapsed = now_seconds() - start;
    if (started != t.clients)
        goto out;

    printf("thrasher: %u keys, %u clients, %zu-byte values, %s%s-*\n", t.keys, t.clients,
           t.value_size, t.base_url, t.tag);
    printf("| op | done | errors | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|\n");
    for (op = 0; op < OP_COUNT; op++) {
        size_t n = sort_latencies(t.latency[op], t.keys);
        unsigned e = atomic_load(&t.errors[op]);

        errors += e;
        printf("| %s | %zu | %u | %.2f | %.2f | %.2f |\n", op_names[op], n, e,
               percentile(t.latency[op], n, 50) * 1e3, percentile(t.latency[op], n, 99) * 1e3,
               n ? t.latency[op][n - 1] * 1e3 : 0.0);
    }
    printf("%.1f s, %.0f keys/s, %.0f requests/s\n", elapsed, t.keys / elapsed,
           3.0 * t.keys / elapsed);
    printf("RESULT keys=%u clients=%u seconds=%.3f keys_per_s=%.0f errors=%u\n", t.keys,
           t.clients, elapsed, t.keys / elapsed, errors);
    rc = errors ? 1 : 0;
out:
    for (op = 0; op < OP_COUNT; op++)
        free(t.latency[op]);
    curl_global_cleanup();
    return rc;

bad_usage:
    usage(stderr);
    return 2;
}
