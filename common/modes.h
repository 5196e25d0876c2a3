/* common/modes.h — the storage/cluster mode state machine of SPEC §4, in exactly one place:
 * allowed storage transitions, the derived (effective) cluster mode, and why a change is refused.
 * Pure logic; mode_change.h applies changes to PostgreSQL. */
#ifndef STF_MODES_H
#define STF_MODES_H

#include <stdbool.h>
#include <stddef.h>

enum storage_mode { SMODE_RW = 0, SMODE_RO, SMODE_DOWN, SMODE_SPARE, SMODE_REPAIR, SMODE__COUNT };
enum cluster_mode { CMODE_RW = 0, CMODE_RO, CMODE_DOWN, CMODE__COUNT };

/* Who asks for a change: repair -> rw is allowed to repaird only. */
enum mode_actor { ACTOR_OPERATOR = 0, ACTOR_REPAIRD };

/* Names as stored in PostgreSQL and shown to users ("rw", "ro", "down", "spare", "repair"). */
const char *storage_mode_name(enum storage_mode m);
const char *cluster_mode_name(enum cluster_mode m);
/* Return 0 and set *ret, or -EINVAL for an unknown name. */
int storage_mode_parse(const char *s, enum storage_mode *ret);
int cluster_mode_parse(const char *s, enum cluster_mode *ret);

/* Decides a storage transition. cluster_has_objects and force matter for the `*` cells.
 * Returns 0 if allowed; otherwise -EPERM and writes one line saying why into reason
 * (e.g. "storage3 is down: run `clusterctl repair storage3` to bring it back"). */
int modes_check_transition(const char *storage_name, enum storage_mode from, enum storage_mode to,
                           enum mode_actor actor, bool cluster_has_objects, bool force,
                           char *reason, size_t reason_len);

/* The effective mode of a cluster (SPEC §4): forced is the operator's forced mode
 * (CMODE_RW when not forced); members are the modes of its n storages. */
enum cluster_mode modes_cluster_effective(enum cluster_mode forced, const enum storage_mode *members,
                                          size_t n);

/* Whether a storage in mode m serves reads (rw, ro) / receives writes (rw, spare, repair? no:
 * rw and spare only; repair receives the copy from repaird, not client writes). */
bool storage_mode_readable(enum storage_mode m);
bool storage_mode_writable(enum storage_mode m);

#endif
