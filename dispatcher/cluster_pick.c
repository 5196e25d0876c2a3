/* dispatcher/cluster_pick.c — rendezvous ranking of clusters for writes and of storages for
 * reads; modes are judged by common/modes.c only. */
#include "cluster_pick.h"

#include "hash.h"
#include "modes.h"

#include <stdint.h>
#include <string.h>

/* Inserts (item, score) into the descending arrays of length *n (capacity max). Ties are
 * broken by the order of arrival (ascending id, as the snapshot is sorted). */
static void rank_insert(const void **items, uint64_t *scores, size_t *n, size_t max,
                        const void *item, uint64_t score)
{
    size_t i = *n;

    if (i == max) {
        if (max == 0 || scores[max - 1] >= score)
            return;
        i = max - 1;
    } else {
        (*n)++;
    }
    while (i > 0 && scores[i - 1] < score) {
        items[i] = items[i - 1];
        scores[i] = scores[i - 1];
        i--;
    }
    items[i] = item;
    scores[i] = score;
}

size_t cluster_pick_write(const struct topo *s, const char *key, size_t key_len,
                          const struct topo_cluster **ret, size_t max)
{
    uint64_t scores[max ? max : 1];
    size_t n = 0;

    for (size_t i = 0; i < s->nclusters; i++) {
        const struct topo_cluster *c = &s->clusters[i];

        if (c->effective != CMODE_RW)
            continue;
        rank_insert((const void **) ret, scores, &n, max, c, hash_rendezvous(key, key_len, c->id));
    }
    return n;
}

size_t cluster_write_targets(const struct topo *s, const struct topo_cluster *c,
                             const struct topo_storage **ret, bool *ret_spare, size_t max)
{
    size_t n = 0;

    /* rw members first, then spares, so the copies that decide the outcome start first */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = c->first; i < c->first + c->n && n < max; i++) {
            const struct topo_storage *st = &s->storages[i];
            bool spare = st->mode == SMODE_SPARE;

            if (!storage_mode_writable(st->mode) || spare != (pass == 1))
                continue;
            ret[n] = st;
            ret_spare[n] = spare;
            n++;
        }
    }
    return n;
}

size_t cluster_pick_read(const struct topo *s, const struct topo_cluster *c,
                         const char *internal_name, const struct topo_storage **ret, size_t max)
{
    uint64_t scores[max ? max : 1];
    size_t n = 0, len = strlen(internal_name);

    for (size_t i = c->first; i < c->first + c->n; i++) {
        const struct topo_storage *st = &s->storages[i];

        if (!storage_mode_readable(st->mode))
            continue;
        rank_insert((const void **) ret, scores, &n, max, st,
                    hash_rendezvous(internal_name, len, st->id));
    }
    return n;
}
