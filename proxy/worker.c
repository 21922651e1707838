/*
 * The worker: slow consumers of exchanges (the live view's decoding, analysis and rendering)
 * run on one thread of their own, so they do not hold up the relay. The loop writes what must
 * be written at once (on_exchange: the capture record) and then queues the exchange; the
 * worker takes them in order and hands each to on_exchange_worker.
 *
 *   loop thread                         |  worker thread
 *   rec finish -> on_exchange (borrows) |
 *             -> et__worker_push -------+--> queue (ring, FIFO) --> on_exchange_worker (owns)
 *   over the high mark: paused = 1,     |                        \-> idle: on_exchange_worker(NULL)
 *   no new requests are read            |  drained below the low mark: uv_async_send(resume)
 *   on_resume: paused = 0, reads again <----------------------------/
 *
 * The queue is bounded softly: while paused, exchanges already under way still finish and are
 * queued (at most one per connection), so nothing is dropped and the loop never waits.
 */
#include "proxy_int.h"

#include <stdlib.h>
#include <string.h>

#define HIGH_N 1024
#define HIGH_BYTES ((size_t)64 << 20)
#define LOW_N 256
#define LOW_BYTES ((size_t)16 << 20)
#define INITIAL_CAP 2048

static void worker_main(void *arg)
{
    struct et_proxy *p = arg;
    struct et__worker *w = &p->worker;
    int told_idle = 1;

    uv_mutex_lock(&w->mu);
    for (;;) {
        if (w->n == 0) {
            if (!told_idle) {
                told_idle = 1;
                uv_mutex_unlock(&w->mu);
                p->o.on_exchange_worker(NULL, p->o.worker_ud);
                uv_mutex_lock(&w->mu);
                continue;
            }
            if (w->stop)
                break;
            uv_cond_wait(&w->cv, &w->mu);
            continue;
        }
        struct et__wq_item it = w->q[w->head];
        w->head = (w->head + 1) % w->cap;
        w->n--;
        w->bytes -= it.bytes;
        if (w->paused && w->async_open && w->n <= LOW_N && w->bytes <= LOW_BYTES)
            uv_async_send(&w->resume);
        uv_mutex_unlock(&w->mu);
        p->o.on_exchange_worker(it.x, p->o.worker_ud);
        told_idle = 0;
        uv_mutex_lock(&w->mu);
    }
    uv_mutex_unlock(&w->mu);
}

/* Loop thread: the worker caught up; connections read new requests again. */
static void on_resume(uv_async_t *a)
{
    struct et_proxy *p = a->data;
    struct et__worker *w = &p->worker;
    uv_mutex_lock(&w->mu);
    int was = w->paused;
    if (w->n <= LOW_N && w->bytes <= LOW_BYTES)
        w->paused = 0;
    int now = w->paused;
    uv_mutex_unlock(&w->mu);
    if (was && !now)
        for (struct et__conn *c = p->conns; c != NULL; c = c->next)
            et__conn_update_io(c);
}

int et__worker_start(struct et_proxy *p)
{
    struct et__worker *w = &p->worker;
    if (p->o.on_exchange_worker == NULL)
        return 0;
    w->q = et_calloc(INITIAL_CAP, sizeof(*w->q));
    if (w->q == NULL)
        return ET_ENOMEM;
    w->cap = INITIAL_CAP;
    if (uv_mutex_init(&w->mu) != 0)
        goto fail_q;
    if (uv_cond_init(&w->cv) != 0)
        goto fail_mu;
    if (uv_async_init(&p->loop, &w->resume, on_resume) != 0)
        goto fail_cv;
    w->resume.data = p;
    w->async_open = 1;
    if (uv_thread_create(&w->thread, worker_main, p) != 0) {
        w->async_open = 0;
        uv_close((uv_handle_t *)&w->resume, NULL);
        goto fail_cv;
    }
    w->started = 1;
    return 0;
fail_cv:
    uv_cond_destroy(&w->cv);
fail_mu:
    uv_mutex_destroy(&w->mu);
fail_q:
    et_free(w->q);
    w->q = NULL;
    return ET_EIO;
}

void et__worker_push(struct et_proxy *p, struct et_exchange *x)
{
    struct et__worker *w = &p->worker;
    size_t bytes = et_arena_used(x->arena) + sizeof(*x);
    uv_mutex_lock(&w->mu);
    if (w->n == w->cap) {
        /* Past the soft bound (paused, exchanges under way still finish): grow the ring. */
        struct et__wq_item *nq = et_calloc(w->cap * 2, sizeof(*nq));
        if (nq == NULL) {
            uv_mutex_unlock(&w->mu);
            et_exchange_free(x); /* out of memory: the capture record is written already */
            return;
        }
        for (size_t i = 0; i < w->n; i++)
            nq[i] = w->q[(w->head + i) % w->cap];
        et_free(w->q);
        w->q = nq;
        w->head = 0;
        w->cap *= 2;
    }
    w->q[(w->head + w->n) % w->cap] = (struct et__wq_item){x, bytes};
    w->n++;
    w->bytes += bytes;
    if (!w->paused && (w->n >= HIGH_N || w->bytes >= HIGH_BYTES)) {
        w->paused = 1;
        p->st.worker_pauses++;
    }
    uv_cond_signal(&w->cv);
    uv_mutex_unlock(&w->mu);
}

void et__worker_close(struct et_proxy *p)
{
    struct et__worker *w = &p->worker;
    if (!w->started || !w->async_open)
        return;
    uv_mutex_lock(&w->mu);
    w->async_open = 0; /* the worker must not signal a closing handle */
    uv_mutex_unlock(&w->mu);
    uv_close((uv_handle_t *)&w->resume, NULL);
}

void et__worker_stop(struct et_proxy *p)
{
    struct et__worker *w = &p->worker;
    if (!w->started)
        return;
    uv_mutex_lock(&w->mu);
    w->stop = 1;
    uv_cond_signal(&w->cv);
    uv_mutex_unlock(&w->mu);
    uv_thread_join(&w->thread);
    w->started = 0;
    w->stop = 0;
}

void et__worker_free(struct et_proxy *p)
{
    struct et__worker *w = &p->worker;
    if (w->q == NULL)
        return;
    et__worker_stop(p);
    /* Nothing is left: the worker drains the queue before it stops. */
    uv_cond_destroy(&w->cv);
    uv_mutex_destroy(&w->mu);
    et_free(w->q);
    w->q = NULL;
}
