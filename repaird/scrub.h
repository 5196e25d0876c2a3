/* repaird/scrub.h — the background scrub: one thread re-reads every stored copy at
 * [repaird] scrub_bytes_per_sec (and within max_bytes_per_sec), checks it against the object's
 * size and MD5, and queues a repair_object job for an object with a missing or corrupt copy.
 * One repaird scrubs at a time (a lease on the scrub_state row); the position in the pass is
 * kept there, so a restarted repaird goes on where the last one stopped. */
#ifndef REPAIRD_SCRUB_H
#define REPAIRD_SCRUB_H

#include <stddef.h>
#include <stdint.h>

struct cfg;
struct scrub;
struct throttle;

/* Tuning from the environment (documented in docs/verify-and-scrub.md):
 * STF_REPAIRD_SCRUB_START  how long after start-up the scrub begins (default 1m), so that a
 *                          restarted repaird first catches up with its jobs;
 * STF_REPAIRD_SCRUB_PASS   the shortest time from the start of one pass to the start of the
 *                          next (default 24h): a small store is not re-read all day. */
struct scrub_opts {
    uint64_t start_delay_ms;
    uint64_t pass_min_ms;
};

/* Reads the variables above. Returns 0, or -EINVAL with one line in err. */
int scrub_opts_load(struct scrub_opts *o, char *err, size_t errlen);

/* Starts the thread unless cfg->repaird.scrub_bytes_per_sec is 0 (then *ret is NULL and the
 * start is logged as off). cfg, shared (the max_bytes_per_sec throttle) and owner (this
 * process's lease holder id) are borrowed until scrub_join(). Returns 0 or -errno. */
int scrub_start(const struct cfg *cfg, const struct scrub_opts *o, struct throttle *shared,
                const char *owner, struct scrub **ret);

/* After stopflag_raise(): waits for the thread and frees s. NULL-safe. */
void scrub_join(struct scrub *s);

#endif
