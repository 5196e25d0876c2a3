/* common/mode_change.h — applies storage/cluster mode changes and removals: one transaction
 * under row locks, decided by modes.h, recorded in mode_history, announced on "stf:modes". */
#ifndef STF_MODE_CHANGE_H
#define STF_MODE_CHANGE_H

#include "modes.h"

#include <stdbool.h>
#include <stdint.h>

struct db;
struct kv;

/* Redis pub/sub channel announcing topology changes; messages are "storage <id>",
 * "cluster <id>" (dispatchers reload on any message, and every second anyway). */
#define MODES_CHANNEL "stf:modes"

/* How long a change waits for the row locks another change holds before giving up. */
#define MODE_CHANGE_LOCK_TIMEOUT "10s"

/* Who asks: recorded in mode_history. actor NULL = the OS user running this process
 * (the sudo user when run as root through sudo); program e.g. "clusterctl", "repaird". */
struct mode_who {
    const char *actor;
    const char *program;
};

enum mode_change_outcome {
    MODE_CHANGED = 0, /* committed; a history row was written */
    MODE_UNCHANGED,   /* already in the asked mode; nothing written */
    MODE_REFUSED,     /* the state machine (or a removal rule) said no; nothing written */
    MODE_NOT_FOUND,   /* no such storage / cluster */
    MODE_FAILED,      /* database error (or the in-transaction hook failed); rolled back */
};

struct mode_change_result {
    enum mode_change_outcome outcome;
    int64_t storage_id; /* 0 for a cluster change */
    int64_t cluster_id;
    char storage_name[64];
    char cluster_name[64];
    enum storage_mode from, to;               /* storage changes */
    enum cluster_mode forced_from, forced_to; /* cluster changes (CMODE_RW = not forced) */
    enum cluster_mode effective_before, effective_after; /* of the cluster concerned */
    bool cluster_has_objects;
    bool published; /* the Redis notice went out */
    /* One line: the refusal reason, "storage3 is already rw", or the database error;
     * "" after a change. */
    char message[512];
    /* One line of what a forced change risks (`*` cells, forced removal), or "". */
    char warning[512];
};

/* A change of one storage's mode. */
struct mode_storage_request {
    const char *storage_name; /* the storage by name, or NULL to use storage_id */
    int64_t storage_id;
    enum storage_mode to;
    enum mode_actor actor;
    bool force;
    /* Bit mask of the modes (1u << SMODE_x) the storage must be in now, 0 = any: lets repaird
     * act only on the state it saw (e.g. repair -> rw only while still in repair). */
    unsigned only_from;
    const char *reason; /* NULL = "" */
    struct mode_who who;
    /* Called inside the transaction after the storage row and the history row were written,
     * before COMMIT (may be NULL), e.g. to record the recover_storage job of
     * `clusterctl repair`. A negative return rolls everything back (outcome MODE_FAILED;
     * the hook may write res->message first). */
    int (*in_tx)(struct db *db, struct mode_change_result *res, void *arg);
    void *in_tx_arg;
};

#define MODE_FROM(m) (1u << (m))

/* Applies req. Locks the cluster row, then all its storage rows (ordered by id), so
 * concurrent changes of one cluster run one after the other; checks the transition with
 * modes_check_transition (cluster_has_objects = objects exist in that cluster); updates the
 * row, inserts the history row, commits, publishes "storage <id>" on kv (NULL: skip).
 * Fills *res in every case. Returns 0 (MODE_CHANGED or MODE_UNCHANGED), -EPERM (refused),
 * -ENOENT (no such storage), -EINVAL (bad request), -EIO (database). */
int mode_change_storage(struct db *db, struct kv *kv, const struct mode_storage_request *req,
                        struct mode_change_result *res);

/* Sets a cluster's forced mode: CMODE_RO / CMODE_DOWN force it lower, CMODE_RW lifts the
 * force (clusters.forced_mode NULL). Recorded with target_kind 'cluster' (NULL recorded as
 * "rw"). Same locking, return values and result as mode_change_storage. */
int mode_change_cluster(struct db *db, struct kv *kv, const char *cluster_name,
                        enum cluster_mode forced, const char *reason, const struct mode_who *who,
                        struct mode_change_result *res);

/* repaird: the end of a recovery. success: repair -> rw; else repair -> down. Acts only while
 * the storage is still in repair (an operator may have aborted it meanwhile: then -EPERM). */
int mode_change_repair_finished(struct db *db, struct kv *kv, int64_t storage_id, bool success,
                                const char *detail, struct mode_change_result *res);

/* repaird's health checks: rw, ro or spare -> down after failed checks (a storage already
 * down is MODE_UNCHANGED; one in repair is left alone with -EPERM: its recovery decides). */
int mode_change_health_down(struct db *db, struct kv *kv, int64_t storage_id, const char *detail,
                            struct mode_change_result *res);

/* `clusterctl repair`: down or spare -> repair, running in_tx (e.g. recording the
 * recover_storage job) in the same transaction. */
int mode_change_begin_repair(struct db *db, struct kv *kv, const char *storage_name,
                             const char *reason, const struct mode_who *who,
                             int (*in_tx)(struct db *, struct mode_change_result *, void *),
                             void *in_tx_arg, struct mode_change_result *res);

/* Removes a storage from its cluster (the row; its disk is not touched). Refused while it is
 * in repair, and while its cluster holds objects unless force (warning says what is lost).
 * Recorded in mode_history with to_mode "removed". Same returns as mode_change_storage. */
int mode_change_remove_storage(struct db *db, struct kv *kv, const char *storage_name, bool force,
                               const char *reason, const struct mode_who *who,
                               struct mode_change_result *res);

/* Removes an empty cluster: refused while it has storages, objects (also in deleted buckets),
 * or pending/running jobs naming it. Recorded with to_mode "removed". */
int mode_change_remove_cluster(struct db *db, struct kv *kv, const char *cluster_name,
                               const char *reason, const struct mode_who *who,
                               struct mode_change_result *res);

/* The longest reason mode_history keeps (bytes); longer ones are cut, control characters
 * become spaces. */
#define MODE_REASON_MAX 500

/* For CLIs: why reason is not acceptable as given ("reason is longer than 500 bytes",
 * "reason must be one line of printable text"), or NULL when it is. */
const char *mode_reason_invalid(const char *reason);

/* The OS user to record: $SUDO_USER when run as root through sudo, else the login name of
 * the real uid, else "uid:N". Points to static storage. */
const char *mode_who_os_user(void);

#endif
