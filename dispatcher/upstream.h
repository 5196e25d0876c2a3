/* dispatcher/upstream.h — the engine that moves bytes between the dispatcher and storaged:
 * a few threads, each running one libcurl multi handle (with its own keep-alive connection
 * cache), on which transfer tasks (upstream_put.c, upstream_get.c) run without blocking the
 * HTTP server's threads. Other threads hand work in with up_submit/up_kick. */
#ifndef STF_DISP_UPSTREAM_H
#define STF_DISP_UPSTREAM_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

struct up_loop;
struct up_task;

/* What a task does; every callback runs on its loop's thread. */
struct up_task_ops {
    void (*start)(struct up_task *t);                         /* after up_submit */
    void (*kick)(struct up_task *t);                          /* after up_kick (coalesced) */
    void (*done)(struct up_task *t, void *xfer, CURLcode rc); /* a transfer of t finished */
    void (*tick)(struct up_task *t, int64_t now_ms);          /* about every 100 ms while active */
    void (*abort)(struct up_task *t);   /* the loop stops: end everything now */
    void (*destroy)(struct up_task *t); /* the last reference went away */
};

/* Embedded at the start of every task. Reference-counted: whoever keeps a pointer holds a
 * reference; the loop holds one from up_submit until up_task_end, and one per pending kick. */
struct up_task {
    const struct up_task_ops *ops;
    struct up_loop *loop;
    int refs;
    bool kick_pending;          /* protected by the loop's lock */
    bool active;                /* on the loop's active list (loop thread only) */
    struct up_task *next_queue; /* submit/kick queues (loop lock) */
    struct up_task *next_kick;
    struct up_task *prev_active, *next_active;
};

/* Every easy handle a task adds carries (CURLOPT_PRIVATE) a pointer to a struct whose first
 * member is this, so the loop can route completions. */
struct up_xfer {
    struct up_task *task;
};

struct upstream;

/* Starts n loops (threads). Returns NULL on failure. */
struct upstream *upstream_new(unsigned n);
/* Stops the loops: tasks still active after grace_ms are aborted. Frees (NULL-safe). */
void upstream_free(struct upstream *u, unsigned grace_ms);
/* Aborts every active task now (their waiting requests are resumed and fail); the loops
 * keep running for new work. */
void upstream_abort_all(struct upstream *u);
/* A loop for a new task (round robin). */
struct up_loop *upstream_pick(struct upstream *u);

void up_task_init(struct up_task *t, const struct up_task_ops *ops); /* refs = 1 */
void up_task_ref(struct up_task *t);
void up_task_unref(struct up_task *t);

/* Any thread: runs t->ops->start on loop's thread (takes a reference for the loop). */
void up_submit(struct up_loop *loop, struct up_task *t);
/* Any thread: runs t->ops->kick on the task's loop soon (several kicks may merge). */
void up_kick(struct up_task *t);

/* Loop thread only. */
int up_add(struct up_task *t, CURL *easy);     /* 0 or -EIO */
void up_remove(struct up_task *t, CURL *easy); /* removes and cleans up the handle */
void up_task_end(struct up_task *t);           /* no more ticks; drops the loop's reference */

#endif
