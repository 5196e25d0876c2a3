/* dispatcher/upstream_put.h — one client upload fanned out to every writable storage of a
 * cluster in parallel, from the spool as the body arrives; cluster by cluster until one
 * stores it completely (every rw copy 201 with the body's MD5), removing the copies of a
 * failed attempt. The MHD side feeds the spool and waits; the engine (upstream.h) does the rest. */
#ifndef STF_DISP_UPSTREAM_PUT_H
#define STF_DISP_UPSTREAM_PUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

struct MHD_Connection;
struct janitor;
struct spool;
struct topo_storage;
struct up_loop;

enum put_state {
    PUT_RUNNING = 0,
    PUT_STORED,  /* every rw storage of one cluster holds a verified copy */
    PUT_FAILED,  /* no cluster could take it (503) */
    PUT_ABORTED, /* the client went away or the MHD side gave up */
};

struct put_op;

/* Takes ownership of sp (freed with the op's last reference); the MHD side keeps writing into
 * it while it holds its own reference, the op's transfers only read it. expected: the
 * Content-Length, or -1 for a chunked body. content_md5: the client's header (base64) to pass
 * on to storaged, or NULL. rid: the request id, sent to storaged as X-Request-Id and logged. */
struct put_op *put_op_new(struct spool *sp, int64_t expected, const char *content_md5,
                          struct janitor *j, const char *rid);
void put_op_unref(struct put_op *op);

/* Adds a cluster to try (in order), with its write targets (rw and spare). Before start. */
int put_op_add_cluster(struct put_op *op, int64_t cluster_id, const struct topo_storage *const *t,
                       const bool *spare, size_t n);
/* The cluster id of attempt i (0 when there is none) and its internal name, fresh for every
 * attempt and fixed when the cluster is added (so it can be recorded before start). */
int64_t put_op_attempt_name(struct put_op *op, size_t i,
                            char ret_internal_name[NAMES_INTERNAL_LEN + 1]);
/* Starts the first attempt on loop. */
void put_op_start(struct put_op *op, struct up_loop *loop);

/* MHD thread: more bytes are in the spool. */
void put_op_data(struct put_op *op);
/* MHD thread: the body is complete and its MD5 is md5_hex; call before spool_finish() is
 * followed by put_op_data(). */
void put_op_set_md5(struct put_op *op, const char *md5_hex);

enum put_state put_op_state(struct put_op *op);
/* If the op is still running, suspends conn (MHD_suspend_connection) and resumes it when the op
 * ends; returns true then. Returns false (nothing suspended) when it already ended. */
bool put_op_suspend_until_done(struct put_op *op, struct MHD_Connection *conn);

/* After PUT_STORED: where it went. ret_failed_spares counts spares that missed the copy
 * (they need a repair once the row exists). */
void put_op_result(struct put_op *op, int64_t *ret_cluster_id,
                   char ret_internal_name[NAMES_INTERNAL_LEN + 1], size_t *ret_failed_spares,
                   unsigned *ret_attempt);

/* The request ends without committing (client gone, commit refused, ...): a running op stops
 * and cleans up; a stored op has its copies removed. Idempotent. */
void put_op_abort(struct put_op *op);
/* The row was committed: nothing may be removed any more. */
void put_op_committed(struct put_op *op);

#endif
