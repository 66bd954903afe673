/* Timers: messages delivered later, or periodically, by the io loop.
 *
 * A timer is a record shared by the thread that sets or cancels it and the
 * loop thread that runs its uv_timer. Its `state` decides, with one
 * compare-and-swap, whether it fires or is cancelled: a one-shot timer's
 * message is delivered exactly when the loop wins, never after a successful
 * cancel. The record is found by id in a registry (under a mutex) and freed
 * when its last owner lets go: the loop (after the handle closed) and a
 * cancel request still on its way to the loop. While it exists, a timer
 * holds the system, so tr_system_run does not return under it. */
#include "actor.h"

#include "../io/loop.h"

#include <stdlib.h>
#include <string.h>

enum { TIMER_PENDING, TIMER_FIRED, TIMER_CANCELLED };

#define REGISTRY_BUCKETS 1024

typedef struct timer {
    io_closable closable; /* first: the loop closes an open handle with it */
    uv_timer_t handle;
    io_task start, cancel;
    tr_system *sys;
    tr_addr from, to;
    tr_msg *msg;
    uint64_t delay_ms, period_ms;
    uint64_t due_ns; /* CLOCK_MONOTONIC: not before this, the first time */
    tr_timer id;
    _Atomic int state;
    _Atomic int refs; /* the loop's, and a cancel request's */
    bool started;     /* handle initialised; loop thread only */
    bool due;         /* loop thread: due_ns has passed (it fired once) */
    struct timer *next_in_bucket;
} timer;

struct timer_registry {
    pthread_mutex_t lock;
    timer *buckets[REGISTRY_BUCKETS];
};

/* ---- the io loop and the registry, made on first use ------------------- */

int actor_io(tr_system *sys, io_loop **out)
{
    pthread_mutex_lock(&sys->io_lock);
    int rc = 0;
    if (!sys->io) {
        sys->timers = calloc(1, sizeof *sys->timers);
        if (!sys->timers || io_loop_new(sys->pool, &sys->io) != 0) {
            free(sys->timers);
            sys->timers = NULL;
            sys->io = NULL;
            rc = TR_ENOMEM;
        } else {
            pthread_mutex_init(&sys->timers->lock, NULL);
        }
    }
    *out = sys->io;
    pthread_mutex_unlock(&sys->io_lock);
    return rc;
}

void actor_io_free(tr_system *sys)
{
    io_loop_free(sys->io); /* closes every timer: they let go of their holds */
    sys->io = NULL;
    if (sys->timers) {
        pthread_mutex_destroy(&sys->timers->lock);
        free(sys->timers);
        sys->timers = NULL;
    }
}

static timer **bucket_of(struct timer_registry *r, tr_timer id)
{
    return &r->buckets[id % REGISTRY_BUCKETS];
}

static void registry_add(struct timer_registry *r, timer *t)
{
    pthread_mutex_lock(&r->lock);
    timer **b = bucket_of(r, t->id);
    t->next_in_bucket = *b;
    *b = t;
    pthread_mutex_unlock(&r->lock);
}

static void registry_remove(struct timer_registry *r, timer *t)
{
    pthread_mutex_lock(&r->lock);
    for (timer **p = bucket_of(r, t->id); *p; p = &(*p)->next_in_bucket) {
        if (*p == t) {
            *p = t->next_in_bucket;
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
}

/* ---- lifetime ---------------------------------------------------------- */

static void timer_unref(timer *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    tr_system *sys = t->sys;
    tr_msg_unref(t->msg);
    free(t);
    sched_release(&sys->sched);
}

/* Loop thread: the handle is closed; the timer leaves the registry. */
static void on_closed(uv_handle_t *h)
{
    timer *t = h->data;
    registry_remove(t->sys->timers, t);
    timer_unref(t);
}

static void close_timer(timer *t)
{
    if (t->started && !uv_is_closing((uv_handle_t *)&t->handle))
        uv_close((uv_handle_t *)&t->handle, on_closed);
}

/* ---- the loop side ------------------------------------------------------ */

static void on_fire(uv_timer_t *h);

/* Loop thread: false, and the timer set again for the rest, when it fires
 * before it is due. libuv counts whole milliseconds of a coarse clock, up
 * to 1.04 ms behind CLOCK_MONOTONIC here, so a timer could fire about that
 * much early: once, under load, a 50 ms timer's tick came before 50 ms. */
static bool due_now(timer *t)
{
    if (t->due)
        return true;
    uint64_t now = platform_now_ns();
    if (now < t->due_ns) {
        uv_timer_start(&t->handle, on_fire, (t->due_ns - now + 999999) / 1000000, t->period_ms);
        return false;
    }
    t->due = true;
    return true;
}

static void on_fire(uv_timer_t *h)
{
    timer *t = h->data;
    if (!due_now(t))
        return;
    if (t->period_ms == 0) {
        int pending = TIMER_PENDING;
        if (atomic_compare_exchange_strong(&t->state, &pending, TIMER_FIRED)) {
            tr_msg *m = t->msg;
            t->msg = NULL;
            actor_deliver(t->sys, NULL, t->from, t->to, m, true, 0);
        }
        close_timer(t);
        return;
    }
    if (atomic_load(&t->state) == TIMER_PENDING &&
        actor_deliver(t->sys, NULL, t->from, t->to, tr_msg_ref(t->msg), true, 0) == 0)
        return;
    /* cancelled, or nobody to deliver to any more: stop for good */
    int pending = TIMER_PENDING;
    atomic_compare_exchange_strong(&t->state, &pending, TIMER_CANCELLED);
    close_timer(t);
}

static void start_on_loop(io_task *task, uv_loop_t *loop)
{
    timer *t = container_of(task, timer, start);
    if (!loop || atomic_load(&t->state) != TIMER_PENDING ||
        uv_timer_init(loop, &t->handle) != 0) {
        registry_remove(t->sys->timers, t); /* never started: nothing to close */
        timer_unref(t);
        return;
    }
    t->handle.data = t;
    t->started = true;
    uv_timer_start(&t->handle, on_fire, t->delay_ms, t->period_ms);
}

static void cancel_on_loop(io_task *task, uv_loop_t *loop)
{
    timer *t = container_of(task, timer, cancel);
    if (loop)
        close_timer(t); /* if not started yet, start_on_loop sees the state */
    timer_unref(t);
}

/* ---- setting and cancelling --------------------------------------------- */

/* Sets a timer; takes msg. Users' timers may not carry runtime types. */
static int set_timer(tr_system *sys, tr_addr from, tr_addr to, tr_msg *msg, uint64_t delay_ms,
                     uint64_t period_ms, tr_timer *out, bool internal)
{
    io_loop *io;
    timer *t = NULL;
    int rc = TR_EINVAL;
    if (!sys || !msg || (!internal && msg->type >= TR_MSG_SYSTEM))
        goto fail;
    if ((rc = actor_io(sys, &io)) != 0)
        goto fail;
    rc = TR_ENOMEM;
    if (!(t = calloc(1, sizeof *t)))
        goto fail;
    t->closable.on_close = on_closed;
    t->start.run = start_on_loop;
    t->cancel.run = cancel_on_loop;
    t->sys = sys;
    t->from = from;
    t->to = to;
    t->msg = msg;
    t->delay_ms = delay_ms;
    t->period_ms = period_ms;
    uint64_t now = platform_now_ns();
    t->due_ns = delay_ms < (UINT64_MAX - now) / 1000000 ? now + delay_ms * 1000000 : UINT64_MAX;
    /* relaxed: only uniqueness matters. */
    t->id = atomic_fetch_add_explicit(&sys->next_ref, 1, memory_order_relaxed) + 1;
    atomic_init(&t->state, TIMER_PENDING);
    atomic_init(&t->refs, 1);
    if (out)
        *out = t->id;
    sched_hold(&sys->sched); /* released when the record is freed */
    registry_add(sys->timers, t);
    io_loop_submit(io, &t->start);
    return 0;
fail:
    tr_msg_unref(msg);
    return rc;
}

int tr_timer_cancel(tr_system *sys, tr_timer id)
{
    if (!sys || !sys->timers || id == 0)
        return TR_ENOENT;
    int rc = TR_ENOENT;
    pthread_mutex_lock(&sys->timers->lock);
    for (timer *t = *bucket_of(sys->timers, id); t; t = t->next_in_bucket) {
        if (t->id != id)
            continue;
        int pending = TIMER_PENDING;
        if (atomic_compare_exchange_strong(&t->state, &pending, TIMER_CANCELLED)) {
            atomic_fetch_add(&t->refs, 1); /* the cancel request's */
            io_loop_submit(sys->io, &t->cancel);
            rc = 0;
        }
        break;
    }
    pthread_mutex_unlock(&sys->timers->lock);
    return rc;
}

int tr_send_after(tr_ctx *ctx, tr_addr to, tr_msg *msg, uint64_t delay_ms, tr_timer *timer)
{
    if (!ctx) {
        tr_msg_unref(msg);
        return TR_EINVAL;
    }
    return set_timer(ctx->sys, ctx->self_addr, to, msg, delay_ms, 0, timer, false);
}

int tr_send_every(tr_ctx *ctx, tr_addr to, tr_msg *msg, uint64_t period_ms, tr_timer *timer)
{
    if (!ctx || period_ms == 0) {
        tr_msg_unref(msg);
        return TR_EINVAL;
    }
    return set_timer(ctx->sys, ctx->self_addr, to, msg, period_ms, period_ms, timer, false);
}

int tr_system_send_after(tr_system *sys, tr_addr to, tr_msg *msg, uint64_t delay_ms,
                         tr_timer *timer)
{
    return set_timer(sys, TR_ADDR_NONE, to, msg, delay_ms, 0, timer, false);
}

/* Internal timers (receive timeouts, ask deadlines) may carry runtime types. */
int actor_timer_internal(tr_ctx *ctx, tr_msg *msg, uint64_t delay_ms, tr_timer *timer)
{
    return set_timer(ctx->sys, ctx->self_addr, ctx->self_addr, msg, delay_ms, 0, timer, true);
}
