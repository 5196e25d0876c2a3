/* repaird/narrow_recovery.h — the narrow logical recovery that follows a whole-disk copy: only
 * the objects of one cluster created, replaced or deleted since the copy began. Live objects
 * the target lacks are copied (verified against objects.etag); files of deleted or replaced
 * objects are removed from it. Resumable: progress is a step and a last-seen id. */
#ifndef REPAIRD_NARROW_RECOVERY_H
#define REPAIRD_NARROW_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "storage_list.h"

struct job;
struct throttle;

/* Changes are looked for from this long before the copy began, so that a write or delete whose
 * transaction started just before (its timestamps are its transaction's start) is not missed. */
#define NARROW_MARGIN "5 minutes"

enum narrow_step { NARROW_OBJECTS = 0, NARROW_DELETES, NARROW_DONE };

struct narrow_progress {
    enum narrow_step step;
    /* done up to: step OBJECTS (updated_at, id) of objects, "" = from the start; step DELETES
     * jobs.id (0 = not started) */
    char after_ts[64];
    int64_t after_id;
    uint64_t checked; /* live objects looked at */
    uint64_t copied;  /* ... that the target lacked and received */
    uint64_t deleted; /* files of deleted or replaced objects removed from the target */
    uint64_t lost;    /* live objects no readable peer holds a good copy of */
    uint64_t bytes;   /* bytes moved */
};

struct narrow_ctx {
    struct job *job;
    int64_t cluster_id;
    const char *since; /* timestamptz text: when the copy began */
    const struct storage_info *target;
    const struct storage_info *peers; /* readable storages of the cluster, preferred first */
    size_t npeers;
    struct throttle *throttle;
    unsigned lanes;
    /* Persists p (called after every batch). Returns 0 or -errno (-ESTALE: lease lost). */
    int (*save)(void *arg, const struct narrow_progress *p);
    void *save_arg;
};

const char *narrow_step_name(enum narrow_step s);
int narrow_step_parse(const char *s, enum narrow_step *ret);

/* Runs (or resumes, from *p) to NARROW_DONE. Returns 0, or -errno with one line in err:
 * -EIO (database or storage errors: try again later), -ECANCELED/-ESTALE (stop). */
int narrow_recover(const struct narrow_ctx *ctx, struct narrow_progress *p, char *err,
                   size_t errlen);

#endif
