/* dispatcher/upstream_get.h — one object read from its copies in order: a libcurl GET into a
 * bounded ring that the client's response drains; on a connection error, a 5xx, a 404 or a
 * short body it moves to the next copy and resumes at the byte where the last one stopped. */
#ifndef STF_DISP_UPSTREAM_GET_H
#define STF_DISP_UPSTREAM_GET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct MHD_Connection;
struct up_loop;

#define GET_RING_MAX (256 * 1024) /* bodies up to this are answered from one buffer */

enum get_state { GET_RUNNING = 0, GET_DONE, GET_FAILED };

struct get_op;

/* urls: the copies in read order (copied); rid: the request id for logs and X-Request-Id. Reads
 * bytes [off, off + len) of the object (len > 0); send_range: ask with a Range header even on the
 * first copy (a client range). */
struct get_op *get_op_new(const char *const *urls, size_t n, uint64_t off, uint64_t len,
                          bool send_range, const char *rid);
void get_op_ref(struct get_op *op);
void get_op_unref(struct get_op *op);
void get_op_start(struct get_op *op, struct up_loop *loop);

/* If the op is not ready for a response yet (running, and not holding its first bytes of a body
 * larger than the ring), suspends conn and resumes it when it is; returns true then. */
bool get_op_suspend_until_ready(struct get_op *op, struct MHD_Connection *conn);
enum get_state get_op_state(struct get_op *op);
/* How many copies failed, and how many of those answered 404. */
void get_op_failures(struct get_op *op, unsigned *ret_failed, unsigned *ret_not_found);

/* After GET_DONE with the whole body in the ring: hands the buffer over (caller free()s). */
char *get_op_take_body(struct get_op *op, size_t *ret_len);
/* Response content reader: copies up to max bytes; returns 0 after suspending conn when nothing
 * is there yet (the op resumes it), -1 at the end, -2 when the read failed for good. Takes a
 * reference for the response: release it with get_op_unref in the response's free callback. */
ssize_t get_op_read(struct get_op *op, struct MHD_Connection *conn, char *buf, size_t max);
/* The client went away: stop the transfer. */
void get_op_abort(struct get_op *op);

#endif
