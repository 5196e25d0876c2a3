/* dispatcher/body_cache.c — a byte-bounded LRU cache of small object bodies under striped
 * locks; each stripe owns a hash chain table and an LRU list and 1/STRIPES of the budget. */
#include "body_cache.h"

#include "digest.h"
#include "hash.h"
#include "names.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BC_STRIPES 16
#define BC_BUCKETS 1024 /* hash chains per stripe */

struct bc_entry {
    struct bc_entry *next_hash;
    struct bc_entry *prev_lru, *next_lru;
    char name[NAMES_INTERNAL_LEN + 1];
    size_t len;
    char data[];
};

struct bc_stripe {
    pthread_mutex_t mu;
    struct bc_entry *buckets[BC_BUCKETS];
    struct bc_entry *lru_head, *lru_tail; /* head = most recently used */
    size_t bytes, budget;
};

struct body_cache {
    struct bc_stripe stripes[BC_STRIPES];
};

struct body_cache *body_cache_new(size_t budget)
{
    struct body_cache *bc = calloc(1, sizeof(*bc));

    if (!bc)
        return NULL;
    for (size_t i = 0; i < BC_STRIPES; i++) {
        pthread_mutex_init(&bc->stripes[i].mu, NULL);
        bc->stripes[i].budget = budget / BC_STRIPES;
    }
    return bc;
}

void body_cache_free(struct body_cache *bc)
{
    if (!bc)
        return;
    for (size_t i = 0; i < BC_STRIPES; i++) {
        struct bc_entry *e = bc->stripes[i].lru_head;

        while (e) {
            struct bc_entry *next = e->next_lru;

            free(e);
            e = next;
        }
        pthread_mutex_destroy(&bc->stripes[i].mu);
    }
    free(bc);
}

static void locate(struct body_cache *bc, const char *name, struct bc_stripe **ret_s, size_t *ret_b)
{
    uint64_t h = hash_murmur64(name, strlen(name));

    *ret_s = &bc->stripes[h % BC_STRIPES];
    *ret_b = (size_t) ((h / BC_STRIPES) % BC_BUCKETS);
}

static void lru_unlink(struct bc_stripe *s, struct bc_entry *e)
{
    if (e->prev_lru)
        e->prev_lru->next_lru = e->next_lru;
    else
        s->lru_head = e->next_lru;
    if (e->next_lru)
        e->next_lru->prev_lru = e->prev_lru;
    else
        s->lru_tail = e->prev_lru;
    e->prev_lru = e->next_lru = NULL;
}

static void lru_push(struct bc_stripe *s, struct bc_entry *e)
{
    e->prev_lru = NULL;
    e->next_lru = s->lru_head;
    if (s->lru_head)
        s->lru_head->prev_lru = e;
    s->lru_head = e;
    if (!s->lru_tail)
        s->lru_tail = e;
}

static struct bc_entry *find(struct bc_stripe *s, size_t b, const char *name)
{
    for (struct bc_entry *e = s->buckets[b]; e; e = e->next_hash) {
        if (strcmp(e->name, name) == 0)
            return e;
    }
    return NULL;
}

static void remove_entry(struct bc_stripe *s, struct bc_entry *e)
{
    uint64_t h = hash_murmur64(e->name, strlen(e->name));
    struct bc_entry **pp = &s->buckets[(h / BC_STRIPES) % BC_BUCKETS];

    while (*pp && *pp != e)
        pp = &(*pp)->next_hash;
    if (*pp)
        *pp = e->next_hash;
    lru_unlink(s, e);
    s->bytes -= e->len;
    free(e);
}

char *body_cache_get(struct body_cache *bc, const char *internal_name, uint64_t size, uint64_t off,
                     uint64_t len)
{
    struct bc_stripe *s;
    struct bc_entry *e;
    char *out = NULL;
    size_t b;

    if (size > BODY_CACHE_OBJECT_MAX || off + len > size)
        return NULL;
    locate(bc, internal_name, &s, &b);
    pthread_mutex_lock(&s->mu);
    e = find(s, b, internal_name);
    if (e && e->len == size) {
        out = malloc(len ? len : 1);
        if (out) {
            memcpy(out, e->data + off, len);
            lru_unlink(s, e);
            lru_push(s, e);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

bool body_cache_put(struct body_cache *bc, const char *internal_name, const char *etag_hex,
                    const char *data, size_t len)
{
    uint8_t digest[16];
    char hex[33];
    struct md5_ctx *md5;
    struct bc_stripe *s;
    struct bc_entry *e;
    size_t b;

    if (len > BODY_CACHE_OBJECT_MAX || strlen(internal_name) != NAMES_INTERNAL_LEN)
        return true;
    md5 = md5_new();
    if (!md5)
        return true;
    md5_update(md5, data, len);
    md5_final(md5, digest);
    md5_free(md5);
    hex_encode(digest, 16, hex);
    if (strcmp(hex, etag_hex) != 0)
        return false;
    e = malloc(sizeof(*e) + len);
    if (!e)
        return true;
    memcpy(e->name, internal_name, NAMES_INTERNAL_LEN + 1);
    e->len = len;
    memcpy(e->data, data, len);
    locate(bc, internal_name, &s, &b);
    pthread_mutex_lock(&s->mu);
    if (find(s, b, internal_name) || len > s->budget) {
        pthread_mutex_unlock(&s->mu);
        free(e);
        return true;
    }
    while (s->bytes + len > s->budget && s->lru_tail)
        remove_entry(s, s->lru_tail);
    e->next_hash = s->buckets[b];
    s->buckets[b] = e;
    lru_push(s, e);
    s->bytes += len;
    pthread_mutex_unlock(&s->mu);
    return true;
}
