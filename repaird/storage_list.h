/* repaird/storage_list.h — the storages repaird works on (all of them, or one cluster's), as
 * read from PostgreSQL at the start of a job or a health round. */
#ifndef REPAIRD_STORAGE_LIST_H
#define REPAIRD_STORAGE_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "modes.h"

struct db;

#define STORAGE_URI_MAX 256

struct storage_info {
    int64_t id;
    int64_t cluster_id;
    char name[64];
    char uri[STORAGE_URI_MAX]; /* without a trailing '/' */
    enum storage_mode mode;
};

struct storage_list {
    struct storage_info *v; /* owned */
    size_t n;
};

/* Loads the storages of cluster_id, or of every cluster when cluster_id < 0, ordered by id.
 * Returns 0 (an empty list is fine), -EIO, or -ENOMEM. Release with storage_list_release(). */
int storage_list_load(struct db *db, int64_t cluster_id, struct storage_list *ret);
void storage_list_release(struct storage_list *l);

/* Writes "<uri>/<path>" into out. Returns 0 or -ENAMETOOLONG. */
int storage_url(const struct storage_info *s, const char *path, char *out, size_t outlen);

#endif
