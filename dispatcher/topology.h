/* dispatcher/topology.h — the cluster/storage map with effective modes: an immutable,
 * reference-counted snapshot, reloaded from PostgreSQL every second and at once on request
 * (a message on the Redis channel "stf:modes", see notify.h). */
#ifndef STF_DISP_TOPOLOGY_H
#define STF_DISP_TOPOLOGY_H

#include "modes.h"

#include <stddef.h>
#include <stdint.h>

struct topo_storage {
    int64_t id;
    int64_t cluster_id;
    char *name;
    char *uri; /* without a trailing '/' */
    enum storage_mode mode;
};

struct topo_cluster {
    int64_t id;
    char *name;
    enum cluster_mode effective; /* from modes_cluster_effective(), never decided here */
    size_t first, n;             /* its storages: topo.storages[first .. first + n) */
};

struct topo {
    struct topo_cluster *clusters; /* sorted by id */
    size_t nclusters;
    struct topo_storage *storages; /* grouped by cluster, sorted by id inside */
    size_t nstorages;
    uint64_t generation; /* increases with every reload that changed something */
    int refs;            /* managed by topology_get/topology_put */
};

struct topology;

/* Creates the holder and starts its reload thread (PostgreSQL url copied). The first load is
 * tried at once; while it fails, topology_get() returns NULL. Returns NULL on ENOMEM. */
struct topology *topology_new(const char *db_url);
/* Stops the thread and frees everything (NULL-safe). Snapshots still held stay valid. */
void topology_free(struct topology *t);

/* The current snapshot with a reference (release with topology_put), or NULL when none was
 * ever loaded. */
struct topo *topology_get(struct topology *t);
void topology_put(struct topo *snap);

/* Asks the reload thread to reload now (any thread; does not block). */
void topology_reload_soon(struct topology *t);
/* Reloads synchronously on the calling thread's own connection (used at start-up and by
 * tests). Returns 0 or -EIO. */
int topology_reload_now(struct topology *t);
/* Seconds since the last successful reload (for /_health), or -1 if never. */
int64_t topology_age_seconds(struct topology *t);

const struct topo_cluster *topo_cluster_find(const struct topo *snap, int64_t id);

#endif
