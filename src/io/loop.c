/* The libuv loop thread and its task queue. */
#include "loop.h"

#include "../platform/pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

struct io_loop {
    uv_loop_t loop;
    uv_async_t wakeup;
    pthread_t thread;
    pthread_mutex_t lock; /* guards tasks and stopping */
    io_task *tasks, *tasks_tail;
    bool stopping;
    pool *pool;       /* the loop thread allocates messages from it, or NULL */
    pool_cache cache;
};

static io_task *take_all(io_loop *l, bool *stopping)
{
    pthread_mutex_lock(&l->lock);
    io_task *t = l->tasks;
    l->tasks = l->tasks_tail = NULL;
    *stopping = l->stopping;
    pthread_mutex_unlock(&l->lock);
    return t;
}

static void close_handle(uv_handle_t *h, void *arg)
{
    io_loop *l = arg;
    if (uv_is_closing(h))
        return;
    if (h == (uv_handle_t *)&l->wakeup)
        uv_close(h, NULL);
    else
        uv_close(h, ((io_closable *)h->data)->on_close);
}

/* Loop thread: run what was handed over; on stop, close every handle so the
 * loop ends once their close callbacks have run. */
static void on_wakeup(uv_async_t *async)
{
    io_loop *l = async->data;
    bool stopping;
    for (io_task *t = take_all(l, &stopping), *next; t; t = next) {
        next = t->next;
        t->run(t, &l->loop);
    }
    if (stopping)
        uv_walk(&l->loop, close_handle, l);
}

static void *loop_main(void *arg)
{
    io_loop *l = arg;
    /* Writes to a peer that has gone raise SIGPIPE in the writing thread;
     * blocked here, they fail with EPIPE instead of killing the process. */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    if (l->pool) /* messages made here (from other nodes) come from the pool, like a worker's */
        pool_bind_thread(l->pool, &l->cache);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    if (l->pool)
        pool_unbind_thread();
    return NULL;
}

int io_loop_new(struct pool *p, io_loop **out)
{
    io_loop *l = calloc(1, sizeof *l);
    if (!l)
        return -1;
    l->pool = p;
    if (uv_loop_init(&l->loop) != 0)
        goto fail_loop;
    if (uv_async_init(&l->loop, &l->wakeup, on_wakeup) != 0)
        goto fail_async;
    l->wakeup.data = l;
    pthread_mutex_init(&l->lock, NULL);
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        pthread_mutex_destroy(&l->lock);
        goto fail_async;
    }
    *out = l;
    return 0;
fail_async:
    uv_close((uv_handle_t *)&l->wakeup, NULL);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    uv_loop_close(&l->loop);
fail_loop:
    free(l);
    return -1;
}

void io_loop_free(io_loop *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->stopping = true;
    pthread_mutex_unlock(&l->lock);
    uv_async_send(&l->wakeup);
    pthread_join(l->thread, NULL);
    bool stopping;
    for (io_task *t = take_all(l, &stopping), *next; t; t = next) {
        next = t->next;
        t->run(t, NULL); /* submitted after the last wake-up: clean up only */
    }
    uv_loop_close(&l->loop);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

void io_loop_submit_wait(io_loop *l, io_waited *w)
{
    w->done = false;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    io_loop_submit(l, &w->task);
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

void io_waited_done(io_waited *w)
{
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void io_loop_submit(io_loop *l, io_task *task)
{
    task->next = NULL;
    pthread_mutex_lock(&l->lock);
    if (l->tasks_tail)
        l->tasks_tail->next = task;
    else
        l->tasks = task;
    l->tasks_tail = task;
    pthread_mutex_unlock(&l->lock);
    uv_async_send(&l->wakeup);
}
