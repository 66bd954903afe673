/* The io loop: one thread running a libuv loop, for timers, blocking work
 * (libuv's thread pool) and, later, streams and child processes.
 *
 * libuv's loop is not thread-safe, so other threads hand it tasks: a task is
 * queued under a mutex and the loop is woken with uv_async_send, which merges
 * repeated wake-ups into one callback; the callback drains the whole queue.
 * An idle loop sleeps in epoll and costs no CPU. */
#ifndef TR_IO_LOOP_H
#define TR_IO_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

typedef struct io_loop io_loop;
typedef struct io_task io_task;

/* Runs on the loop thread with its loop; loop is NULL when the io loop is
 * being freed before the task ran (the task must only clean up then). */
typedef void (*io_task_fn)(io_task *task, uv_loop_t *loop);

/* Embedded in what a task needs; owned by the submitter until run. */
struct io_task {
    io_task *next;
    io_task_fn run;
};

/* Every handle opened on the loop sets handle->data to a struct whose first
 * member is an io_closable: when the loop stops with the handle still open,
 * it is closed with on_close, which frees what the handle belongs to. */
typedef struct io_closable {
    uv_close_cb on_close;
} io_closable;

struct pool;

/* Starts a loop thread, which allocates from p (may be NULL) as a worker
 * does, with a cache of its own. Returns 0, or -1 when it could not
 * (memory, libuv, or the thread). */
int io_loop_new(struct pool *p, io_loop **out);

/* Stops the loop: tasks still queued run with loop NULL, every open handle
 * is closed (its close callback runs), the thread is joined. Accepts NULL.
 * Not from the loop thread. */
void io_loop_free(io_loop *l);

/* Queues task to run on the loop thread. Any thread. */
void io_loop_submit(io_loop *l, io_task *task);

/* A task a thread outside the loop waits for: the task (on the loop, when
 * it runs or later) calls io_waited_done once it is over. */
typedef struct io_waited {
    io_task task;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} io_waited;

/* Submits w (w->task.run set by the caller) and blocks until
 * io_waited_done(w). Not from the loop thread. */
void io_loop_submit_wait(io_loop *l, io_waited *w);
void io_waited_done(io_waited *w);

#endif
