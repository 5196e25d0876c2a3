/* dispatcher/put_guard.h — crash insurance for uploads: before any byte of a PUT reaches a
 * storage, one delete_files job per cluster the PUT may try (with that attempt's fresh internal
 * name) is recorded, due only after a delay. The commit transaction removes the guard of the
 * committed copy (so a guard that already started makes the commit fail instead); a PUT that
 * ends without a commit makes its guards due at once. A dispatcher killed in between leaves
 * guards that remove its copies once due: no file is left that no record names. */
#ifndef STF_DISP_PUT_GUARD_H
#define STF_DISP_PUT_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "names.h"

struct db;

#define PUT_GUARD_DELAY_DEFAULT_MS (24ull * 3600 * 1000)

/* Reads the delay of new guards: $STF_DISPATCHER_PUT_GUARD (a duration, at least 1s), else a
 * day (longer than any upload may take: a guard due before its upload committed fails the PUT).
 * Returns 0, or -EINVAL with a one-line reason in err. At start-up, before any thread. */
int put_guard_init(char *err, size_t errlen);

/* The delay read by put_guard_init(). */
uint64_t put_guard_delay_ms(void);

/* Records n guards (cluster_ids[i], names[i]) due in delay_ms; ret_ids[i] gets each job id.
 * Returns 0 or -EIO. */
int put_guard_insert(struct db *db, size_t n, const int64_t *cluster_ids,
                     const char (*names)[NAMES_INTERNAL_LEN + 1], uint64_t delay_ms,
                     int64_t *ret_ids);

/* Inside the commit transaction of attempt cur: removes the guards of attempt cur and of the
 * attempts never tried (cur+1 ..), makes those of the failed attempts (.. cur-1) due within
 * 10 s (their copies are being removed; the grace lets a storaged finish an upload in
 * progress). Returns 0, -ESTALE when the guard of attempt cur is no longer pending (it may be
 * deleting the copies: the commit must not happen), or -EIO. */
int put_guard_settle(struct db *db, const int64_t *ids, size_t n, size_t cur);

/* A PUT ended without a commit: its guards are due within 10 s (best effort; else at their
 * delay). */
void put_guard_fire(struct db *db, const int64_t *ids, size_t n);

#endif
