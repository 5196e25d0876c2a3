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

/* A cluster is rw only with at least this many rw storages (SPEC §4). */
#define MODES_MIN_RW 3

/* Decides a storage transition. cluster_has_objects and force matter for the `*` cells; the
 * actor only for repair -> rw (repaird only). from == to is allowed (a no-op for the caller).
 * Returns 0 (reason set to "") if allowed; otherwise -EPERM and writes one line naming the
 * storage and the rule into reason, e.g. "storage3 is down and may lack objects written while
 * it was away; bring it back with `clusterctl repair storage3`". */
int modes_check_transition(const char *storage_name, enum storage_mode from, enum storage_mode to,
                           enum mode_actor actor, bool cluster_has_objects, bool force,
                           char *reason, size_t reason_len);
/* Whether an allowed change carries a risk that --force accepted: a `*` cell while the cluster
 * holds objects. If so returns true and writes one line saying what it risks into warning
 * (e.g. "storage3 may lack objects written before it joined ..."); else writes "". */
bool modes_force_risk(const char *storage_name, enum storage_mode from, enum storage_mode to,
                      bool cluster_has_objects, char *warning, size_t warning_len);

/* The effective mode of a cluster (SPEC §4): forced is the operator's forced mode
 * (CMODE_RW when not forced); members are the modes of its n storages. A forced mode only
 * lowers the derived one (forced down is down even with readable members). */
enum cluster_mode modes_cluster_effective(enum cluster_mode forced,
                                          const enum storage_mode *members, size_t n);

/* Whether a storage in mode m serves reads (rw, ro) / receives client writes (rw, spare; a
 * storage in repair receives only repaird's copy). */
bool storage_mode_readable(enum storage_mode m);
bool storage_mode_writable(enum storage_mode m);

#endif
