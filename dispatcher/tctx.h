/* dispatcher/tctx.h — per-thread service handles: each thread that talks to PostgreSQL or
 * Redis gets its own connection (libpq and hiredis handles are not shared between threads). */
#ifndef STF_DISP_TCTX_H
#define STF_DISP_TCTX_H

struct db;
struct kv;

/* Sets the urls used by every later tctx_db()/tctx_kv() (copied). Call once before threads. */
int tctx_init(const char *db_url, const char *redis_url);
void tctx_release(void);

/* The calling thread's PostgreSQL connection, opened on first use; NULL while PostgreSQL is
 * unreachable (retried on the next call, at most once a second). Owned by the thread: freed
 * when it exits, or by tctx_thread_free(). */
struct db *tctx_db(void);
/* The calling thread's Redis handle (it connects lazily). NULL while Redis is away: after a
 * failed command each thread probes Redis again at most once a second, or at once when another
 * thread has found Redis working since (so no write skips an invalidation while others read). */
struct kv *tctx_kv(void);
/* Frees the calling thread's handles now. */
void tctx_thread_free(void);

#endif
