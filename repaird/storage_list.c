/* repaird/storage_list.c — reads storage rows (id, cluster, name, uri, mode) for jobs and
 * health checks, and builds their URLs. */
#include "storage_list.h"

#include "db.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int storage_list_load(struct db *db, int64_t cluster_id, struct storage_list *ret)
{
    char ids[24];
    const char *params[] = {ids};
    PGresult *res;
    int n, r = 0;

    ret->v = NULL;
    ret->n = 0;
    snprintf(ids, sizeof(ids), "%" PRId64, cluster_id);
    res = db_exec(db,
                  "SELECT id, cluster_id, name, uri, mode FROM storages "
                  "WHERE $1::bigint < 0 OR cluster_id = $1::bigint ORDER BY id",
                  1, params);
    if (!res)
        return -EIO;
    n = PQntuples(res);
    if (n > 0) {
        ret->v = calloc((size_t) n, sizeof(*ret->v));
        if (!ret->v) {
            r = -ENOMEM;
            goto out;
        }
    }
    for (int i = 0; i < n; i++) {
        struct storage_info *s = &ret->v[ret->n];
        size_t ulen;

        s->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        s->cluster_id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        snprintf(s->name, sizeof(s->name), "%s", PQgetvalue(res, i, 2));
        snprintf(s->uri, sizeof(s->uri), "%s", PQgetvalue(res, i, 3));
        ulen = strlen(s->uri);
        while (ulen > 0 && s->uri[ulen - 1] == '/')
            s->uri[--ulen] = '\0';
        if (storage_mode_parse(PQgetvalue(res, i, 4), &s->mode) < 0)
            continue; /* the schema forbids it; skip rather than guess */
        ret->n++;
    }
out:
    PQclear(res);
    if (r < 0)
        storage_list_release(ret);
    return r;
}

void storage_list_release(struct storage_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int storage_url(const struct storage_info *s, const char *path, char *out, size_t outlen)
{
    int r = snprintf(out, outlen, "%s/%s", s->uri, path);

    return r > 0 && (size_t) r < outlen ? 0 : -ENAMETOOLONG;
}
