/* Backpressure for unbounded mailboxes: an overloaded receiver mutes the
 * actors that send to it, as Pony's runtime does.
 *
 * An actor whose turn ends with a full batch handled and messages left over
 * is overloaded. A worker-side sender that sent it a user message, and is
 * neither overloaded nor the receiver, is muted when its own turn ends: it
 * keeps its scheduling flag (so nothing reschedules it) and waits on the
 * receiver's muted list until the receiver empties its mailbox, which
 * releases the list. Nothing blocks: a muted actor is simply not run.
 *
 * Why it cannot deadlock: only an overloaded actor that is not muted itself
 * mutes a sender, and a muted actor mutes no one, so every waiting chain
 * ends at an actor that is running or runnable, and it drains. Two actors
 * flooding each other are both overloaded, and overloaded actors are never
 * muted, so they go on (memory then grows as without muting). Sends from
 * outside threads, and system messages, are never slowed.
 *
 * The same parking serves flow control between nodes: an actor whose turn
 * sent to a node while more than NODE_BACKLOG_MAX bytes for it waited on
 * our side (the other process reads slower than we send) is parked until
 * they have gone.
 *
 * And the other way: a connection that delivers to an overloaded actor
 * stops reading (node.c's hold) until that actor drains, so the bytes wait
 * in the ring or the socket, then on the sending side, whose actors are
 * parked as above: a slow actor slows its remote senders instead of
 * filling its mailbox. No cycle forms across nodes: an actor that a
 * connection waits for is never parked (PRESSURE_HOLDS and PRESSURE_MUTED
 * are set by CAS, each only without the other), and it drains. */
#include "actor.h"

#include "../node/node.h"

static void resume(tr_system *sys, sched_worker *w, actor *x)
{
    /* x still holds its scheduling flag from when it was muted. */
    atomic_fetch_and(&x->pressure, (uint8_t)~PRESSURE_MUTED);
    if (w && w->sched == &sys->sched)
        sched_push(w, &x->run_node);
    else
        sched_inject(&sys->sched, &x->run_node);
}

void mute_release(tr_system *sys, sched_worker *w, actor *a)
{
    /* seq_cst: after the caller cleared PRESSURE_OVERLOADED; a muter that
     * pushed before this takes is resumed here, one after sees the flag
     * clear and releases the list itself. */
    actor *x = atomic_exchange(&a->muted, NULL);
    while (x) {
        actor *next = x->next_free; /* read before x may run and end */
        resume(sys, w, x);
        x = next;
    }
    /* seq_cst, likewise: a connection that set the flag before this reads
     * again (node_resume); one after saw OVERLOADED clear and did not hold. */
    if (atomic_fetch_and(&a->pressure, (uint8_t)~PRESSURE_HOLDS) & PRESSURE_HOLDS) {
        node *n = atomic_load_explicit(&sys->node, memory_order_acquire);
        if (n && !atomic_load(&sys->closing)) /* else the loop is gone, with every hold */
            node_resume(n);
    }
}

void mute_resume(tr_system *sys, actor *a) { resume(sys, NULL, a); }

/* Parks a until the backlog for the node its turn sent too much to drains.
 * No cycle can form: the backlog drains as the other process reads, which
 * waits for no actor; if that process stops reading, its connection is
 * cut off (heartbeats) and the waiters go on. */
static bool mute_on_node(tr_ctx *ctx, actor *a)
{
    node *n = atomic_load_explicit(&ctx->sys->node, memory_order_acquire);
    /* A CAS, against actor_hold: a connection waiting for a is never parked
     * behind a (else two nodes could each wait for the other's reading). */
    uint8_t p = atomic_load(&a->pressure);
    do
        if (p & PRESSURE_HOLDS)
            return false;
    while (!atomic_compare_exchange_weak(&a->pressure, &p, p | PRESSURE_MUTED));
    if (n && node_wait_drained(n, ctx->mute_on_node, a))
        return true; /* a may be resumed and run elsewhere from here on */
    atomic_fetch_and(&a->pressure, (uint8_t)~PRESSURE_MUTED);
    return false;
}

bool mute_after_turn(tr_ctx *ctx, actor *a)
{
    if (ctx->mute_on_node && mute_on_node(ctx, a))
        return true;
    actor *t = ctx->mute_on;
    if (!t || t == a || (atomic_load(&a->pressure) & PRESSURE_OVERLOADED))
        return false;
    /* t cannot be recycled before this turn ends (see limbo in actor.h). */
    if ((atomic_load(&t->pressure) & ~PRESSURE_HOLDS) != PRESSURE_OVERLOADED ||
        (atomic_load(&t->life) & LIFE_CLOSED))
        return false;
    /* A CAS: a node's reader may flag a overloaded meanwhile (actor.c's
     * remote_behind) and a connection then wait for it (actor_hold). */
    uint8_t p = atomic_load(&a->pressure);
    do
        if (p & (PRESSURE_OVERLOADED | PRESSURE_HOLDS))
            return false;
    while (!atomic_compare_exchange_weak(&a->pressure, &p, p | PRESSURE_MUTED));
    actor *head = atomic_load(&t->muted);
    do
        a->next_free = head;
    while (!atomic_compare_exchange_weak(&t->muted, &head, a));
    /* t may have drained and released its list just before our push. */
    if (!(atomic_load(&t->pressure) & PRESSURE_OVERLOADED))
        mute_release(ctx->sys, ctx->worker, t);
    return true;
}
