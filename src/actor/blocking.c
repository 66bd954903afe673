/* Blocking work on libuv's thread pool, with the result delivered as a
 * message. A job holds the system until its result is delivered. */
#include "actor.h"

#include "../io/loop.h"

#include <stdlib.h>

typedef struct job {
    io_task task;
    uv_work_t work;
    tr_system *sys;
    tr_addr to;
    tr_blocking_fn fn;
    void *arg;
    uint32_t done_type;
    tr_msg *result;
} job;

static void finish(job *j)
{
    tr_system *sys = j->sys;
    tr_msg *m = j->result ? j->result : tr_msg_new(j->done_type, NULL, 0);
    if (m) /* into the system lane: never dropped by a bound */
        actor_deliver(sys, NULL, TR_ADDR_NONE, j->to, m, true, 0);
    free(j);
    sched_release(&sys->sched);
}

static void work_on_pool(uv_work_t *w)
{
    job *j = w->data;
    j->result = j->fn(j->arg);
}

static void after_work(uv_work_t *w, int status)
{
    (void)status; /* cancelled at shutdown: the message goes nowhere anyway */
    finish(w->data);
}

static void queue_on_loop(io_task *task, uv_loop_t *loop)
{
    job *j = container_of(task, job, task);
    j->work.data = j;
    if (!loop || uv_queue_work(loop, &j->work, work_on_pool, after_work) != 0)
        finish(j);
}

int tr_run_blocking(tr_ctx *ctx, tr_blocking_fn fn, void *arg, uint32_t done_type)
{
    io_loop *io;
    if (!ctx || !fn || done_type >= TR_MSG_SYSTEM)
        return TR_EINVAL;
    if (actor_io(ctx->sys, &io) != 0)
        return TR_ENOMEM;
    job *j = calloc(1, sizeof *j);
    if (!j)
        return TR_ENOMEM;
    *j = (job){.task.run = queue_on_loop, .sys = ctx->sys, .to = ctx->self_addr, .fn = fn,
               .arg = arg, .done_type = done_type};
    sched_hold(&ctx->sys->sched);
    io_loop_submit(io, &j->task);
    return 0;
}
