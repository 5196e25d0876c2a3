/* dispatcher/cluster_pick.h — placement: which clusters a write tries, in which order
 * (rendezvous hashing over effective-rw clusters, SPEC §5), which storages of a cluster take
 * the copies, and in which order a read tries the copies. */
#ifndef STF_DISP_CLUSTER_PICK_H
#define STF_DISP_CLUSTER_PICK_H

#include <stdbool.h>
#include <stddef.h>

#include "topology.h"

/* Clusters whose effective mode is rw, by descending MurmurHash3_x64_128(key ‖ cluster id)
 * (key = "bucket/object"). Writes at most max pointers into ret; returns how many. */
size_t cluster_pick_write(const struct topo *s, const char *key, size_t key_len,
                          const struct topo_cluster **ret, size_t max);

/* The storages of cluster c that receive a write: every writable one (rw and spare, as
 * storage_mode_writable says). ret_spare[i] tells whether ret[i] is a spare. */
size_t cluster_write_targets(const struct topo *s, const struct topo_cluster *c,
                             const struct topo_storage **ret, bool *ret_spare, size_t max);

/* The readable storages of cluster c in the stable read order for internal_name: descending
 * MurmurHash3(internal_name ‖ storage id), skipping what storage_mode_readable refuses. */
size_t cluster_pick_read(const struct topo *s, const struct topo_cluster *c,
                         const char *internal_name, const struct topo_storage **ret, size_t max);

#endif
