/* repaird/workers.h — the job threads: [repaird] workers threads that read job ids from the
 * stream (or PostgreSQL while Redis is away), claim, run the kind and record the outcome, plus
 * one sweeper thread running jq_sweep every sweep interval. */
#ifndef REPAIRD_WORKERS_H
#define REPAIRD_WORKERS_H

struct cfg;
struct jq_shared;
struct throttle;
struct workers;

/* Starts the threads; each opens its own PostgreSQL and Redis connections (retrying while
 * PostgreSQL is away). cfg, sh and t are borrowed until workers_join() returns.
 * Returns 0 and sets *ret, or -errno (nothing left running). */
int workers_start(const struct cfg *cfg, struct jq_shared *sh, struct throttle *t,
                  struct workers **ret);

/* After stopflag_raise(): waits for every thread (a running job finishes or releases its
 * lease) and frees w. NULL-safe. */
void workers_join(struct workers *w);

#endif
