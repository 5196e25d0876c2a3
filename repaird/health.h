/* repaird/health.h — the health-check thread: every [repaird] health_interval it checks every
 * rw, ro and spare storage and marks one down after down_after failed checks in a row. */
#ifndef REPAIRD_HEALTH_H
#define REPAIRD_HEALTH_H

struct cfg;
struct health;

/* Starts the thread (cfg borrowed until health_join). Returns 0 and sets *ret, or -errno. */
int health_start(const struct cfg *cfg, struct health **ret);

/* After stopflag_raise(): waits for the thread and frees h. NULL-safe. */
void health_join(struct health *h);

#endif
