/* repaird/rebalance_move.h — moves one object to another cluster for the rebalance job: a
 * verified copy from the source, written under a fresh internal name to the destination, then
 * a compare-and-swap of the object's row; the old copies are deleted later (delete_files). */
#ifndef REPAIRD_REBALANCE_MOVE_H
#define REPAIRD_REBALANCE_MOVE_H

#include <stddef.h>
#include <stdint.h>

#include "blob_path.h"
#include "storage_list.h"

struct job;
struct throttle;

/* One object as the rebalance job selected it (the values the row switch compares against). */
struct rb_object {
    int64_t id;
    char internal_name[BLOB_NAME_MAX + 1];
    uint64_t size;
    char etag[33];
    char updated_at[64]; /* objects.updated_at as text: the move's cursor after this object */
};

/* One planned move (a rebalance_moves row) and what the run says about it. */
struct rb_target {
    int64_t move_id;
    int64_t rebalance_id;
    int64_t src_cluster_id, dst_cluster_id;
    uint64_t delete_delay_ms;      /* the old copies are deleted this long after the switch */
    struct throttle *run_throttle; /* the run's own --max-bytes-per-sec, or NULL */
};

/* The storages of both clusters, loaded once per batch of objects. */
struct rb_topology {
    struct storage_list src, dst;
    char dst_name[64];
    int dst_rw; /* 1 when the destination's effective mode is rw */
};

enum rb_outcome {
    RB_MOVED = 0,    /* the row names the destination now; progress recorded with it */
    RB_SKIPPED,      /* overwritten, deleted or moved by someone else meanwhile: left alone */
    RB_FAILED,       /* no good copy could be read: left where it was */
    RB_DEST_NOT_RW,  /* the destination is (or became) not rw: wait for it */
    RB_DEST_REFUSED, /* a destination storage refused or failed the copy: retry later */
    RB_CANCELLED,    /* repaird is stopping, or the job's lease was lost */
    RB_DB_ERROR,     /* PostgreSQL failed */
};

/* Loads the storages of both clusters and the destination's effective mode.
 * Returns 0 or -EIO / -ENOMEM. Release with rb_topology_release(). */
int rb_topology_load(struct job *job, const struct rb_target *t, struct rb_topology *ret);
void rb_topology_release(struct rb_topology *topo);

/* Moves o as described in the header. why (one line) says what happened for every outcome
 * but RB_MOVED. Nothing is left behind on failure: copies written under the new name are
 * removed by a guard delete_files job that the switch deletes on success. */
enum rb_outcome rb_move_object(struct job *job, const struct rb_target *t,
                               const struct rb_topology *topo, const struct rb_object *o, char *why,
                               size_t whylen);

/* Accounts n bytes against the run's own throttle (NULL: nothing), in slices that keep the
 * job's lease alive. Returns 0, -ECANCELED or -ESTALE. */
int rb_throttle_take(struct job *job, struct throttle *t, uint64_t n);

#endif
