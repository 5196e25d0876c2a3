/* storaged/offload.c — the offload threads: a queue of suspended requests' work, workers that
 * run it and resume the connection, and a stop that leaves nothing suspended; see offload.h. */
#include "offload.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct sd_offload {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sd_offload_job *head, *tail;
    bool stopping; /* under mu: no new work, workers exit once the queue is empty */
    atomic_bool cancelled;
    pthread_t *threads;
    unsigned nthreads; /* started */
};

static struct sd_offload_job *offload_take(struct sd_offload *o)
{
    struct sd_offload_job *job;

    pthread_mutex_lock(&o->mu);
    while (!o->head && !o->stopping)
        pthread_cond_wait(&o->cv, &o->mu);
    job = o->head;
    if (job) {
        o->head = job->next;
        if (!o->head)
            o->tail = NULL;
    }
    pthread_mutex_unlock(&o->mu);
    return job;
}

static void *offload_worker(void *arg)
{
    struct sd_offload *o = arg;
    struct sd_offload_job *job;

    pthread_setname_np(pthread_self(), "sd-offload"); /* for top -H, perf */
    while ((job = offload_take(o))) {
        struct MHD_Connection *conn = job->conn;

        job->work(job->arg);
        /* The request may complete and free job as soon as this returns. */
        MHD_resume_connection(conn);
    }
    return NULL;
}

int sd_offload_new(unsigned threads, struct sd_offload **ret)
{
    struct sd_offload *o = calloc(1, sizeof(*o));
    int r;

    if (!o)
        return -ENOMEM;
    o->threads = calloc(threads ? threads : 1, sizeof(*o->threads));
    if (!o->threads) {
        free(o);
        return -ENOMEM;
    }
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    for (unsigned i = 0; i < threads; i++) {
        r = pthread_create(&o->threads[i], NULL, offload_worker, o);
        if (r != 0) {
            sd_offload_stop(o);
            return -r;
        }
        o->nthreads++;
    }
    *ret = o;
    return 0;
}

int sd_offload_submit(struct sd_offload *o, struct sd_offload_job *job, struct MHD_Connection *conn,
                      void (*work)(void *arg), void *arg)
{
    pthread_mutex_lock(&o->mu);
    if (o->stopping) {
        pthread_mutex_unlock(&o->mu);
        return -ESHUTDOWN;
    }
    job->next = NULL;
    job->conn = conn;
    job->work = work;
    job->arg = arg;
    /* Suspended before a worker can see it, so that its resume cannot come first. */
    MHD_suspend_connection(conn);
    if (o->tail)
        o->tail->next = job;
    else
        o->head = job;
    o->tail = job;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    return 0;
}

bool sd_offload_cancelled(const struct sd_offload *o)
{
    return atomic_load(&((struct sd_offload *) o)->cancelled);
}

void sd_offload_stop(struct sd_offload *o)
{
    if (!o)
        return;
    atomic_store(&o->cancelled, true);
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    for (unsigned i = 0; i < o->nthreads; i++)
        pthread_join(o->threads[i], NULL);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o->threads);
    free(o);
}
