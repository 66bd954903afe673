/* Spawning, sending, running and ending actors. */
#include "actor.h"

#include "../node/node.h"

#include <stdlib.h>
#include <string.h>

#define SENDS_PER_MESSAGE 16

tr_addr actor_addr(tr_system *sys, actor *a)
{
    uint64_t life = atomic_load_explicit(&a->life, memory_order_relaxed);
    return addr_make(sys->node_id, (uint32_t)(life >> 32), a->index);
}

/* ---- state memory ------------------------------------------------------ */

static void *state_alloc(tr_system *sys, size_t size)
{
    if (size == 0)
        return NULL;
    int cls = pool_class_of(size);
    void *p = cls >= 0 ? pool_alloc(sys->pool, cls) : malloc(size);
    if (p)
        memset(p, 0, size);
    return p;
}

static void state_free(tr_system *sys, void *state, size_t size)
{
    if (!state)
        return;
    int cls = pool_class_of(size);
    if (cls >= 0)
        pool_release(sys->pool, cls, state);
    else
        free(state);
}

/* ---- counting ---------------------------------------------------------- */

static void count(sched_worker *w, unsigned counter, _Atomic uint64_t *outside)
{
    if (w)
        sched_count(w, counter, 1);
    else /* relaxed: a statistic */
        atomic_fetch_add_explicit(outside, 1, memory_order_relaxed);
}

static void dead_letter(tr_system *sys, msg_link *link)
{
    /* relaxed: a statistic. */
    atomic_fetch_add_explicit(&sys->dead_letters, 1, memory_order_relaxed);
    msg_link_release(link);
}

/* ---- scheduling -------------------------------------------------------- */

/* Queues a for a turn: on the calling worker when there is one, else through
 * the inject queue. The caller has just set a->scheduled. */
static void schedule(tr_system *sys, actor *a, sched_worker *w)
{
    if (w && w->sched == &sys->sched)
        sched_push(w, &a->run_node);
    else
        sched_inject(&sys->sched, &a->run_node);
}

static bool is_incarnation(uint64_t life, tr_addr to)
{
    return !(life & LIFE_CLOSED) && ((life >> 32) & ADDR_GEN_MASK) == addr_gen(to);
}

/* The live actor named by `to`, or NULL if it has ended. With a worker the
 * slot stays safe until the turn ends (see limbo); without (w NULL), the
 * actor is pinned and the caller unpins it after the push. */
static actor *find(tr_system *sys, sched_worker *w, tr_addr to)
{
    if (addr_node(to) != sys->node_id)
        return NULL;
    actor *a = table_lookup(&sys->table, addr_index(to));
    if (!a)
        return NULL;
    if (w) {
        /* acquire: pairs with the release of the address's publication, so
         * the mailbox is initialised before we push. */
        return is_incarnation(atomic_load_explicit(&a->life, memory_order_acquire), to) ? a : NULL;
    }
    uint64_t life = atomic_fetch_add_explicit(&a->life, 1, memory_order_acquire);
    if (!is_incarnation(life, to)) {
        /* release: keeps the unpin after our look, for the actor that waits. */
        atomic_fetch_sub_explicit(&a->life, 1, memory_order_release);
        return NULL;
    }
    return a;
}

static void unpin(actor *a)
{
    /* release: our push happens before the ending actor drains the mailbox. */
    atomic_fetch_sub_explicit(&a->life, 1, memory_order_release);
}

/* A bounded mailbox's gate: counts the message in, or says it must go
 * (refused or dropped-newest; drop-oldest always admits and trims later). */
static bool admit(tr_system *sys, actor *a)
{
    /* relaxed: a count; the push below is what publishes the message. */
    uint32_t before = atomic_fetch_add_explicit(&a->queued, 1, memory_order_relaxed);
    if (before < a->bound || a->overflow == TR_OVERFLOW_DROP_OLDEST)
        return true;
    atomic_fetch_sub_explicit(&a->queued, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sys->overflowed, 1, memory_order_relaxed);
    return false;
}

/* The runner's side of a bound: counts a popped message out, and says
 * whether it is one of the oldest beyond the bound (drop-oldest only: under
 * the other policies senders that lose the race for the last place push the
 * count over the bound for an instant, and that must not drop anything). */
static bool beyond_bound(tr_system *sys, actor *a)
{
    /* seq_cst: before the look at the flag when the mailbox is empty (see
     * remote_room). */
    uint32_t before = atomic_fetch_sub(&a->queued, 1);
    if (before <= a->bound || a->overflow != TR_OVERFLOW_DROP_OLDEST)
        return false;
    atomic_fetch_add_explicit(&sys->overflowed, 1, memory_order_relaxed);
    return true;
}

/* The send path, inlined into tr_send; actor_deliver is its callable form. */
static inline __attribute__((always_inline)) int deliver(tr_system *sys, sched_worker *w,
                                                         tr_addr from, tr_addr to, tr_msg *msg,
                                                         bool system_lane, uint64_t ref,
                                                         tr_ctx *sender)
{
    if (!msg)
        return TR_EINVAL;
    if (atomic_load_explicit(&sys->closing, memory_order_relaxed)) {
        tr_msg_unref(msg);
        return TR_ESTOPPED;
    }
    if (addr_node(to) != sys->node_id) /* another process */
        return actor_remote_send(sys, from, to, msg, system_lane, ref);
    msg_link *link = ref ? msg_link_with_ref(msg, from, ref) : msg_link_for_send(msg, from);
    if (!link) {
        tr_msg_unref(msg);
        return TR_ENOMEM;
    }
    /* Outside threads and system-lane sends pin the target (see find): a
     * dying actor waits for them, so a monitor or link request is never left
     * behind in a drained mailbox. Workers' user sends do not need to. */
    bool pinned = !w || system_lane;
    actor *a = find(sys, pinned ? NULL : w, to);
    if (!a) {
        dead_letter(sys, link);
        return TR_EDEAD;
    }
    if (a->bound && !system_lane && !admit(sys, a)) {
        msg_link_release(link);
        if (pinned)
            unpin(a);
        return a->overflow == TR_OVERFLOW_REFUSE ? TR_EFULL : 0;
    }
    mailbox_push(system_lane ? &a->system : &a->mailbox, &link->node);
    /* relaxed: a hint; mute.c decides under sequentially consistent reads. */
    if (sender && !sender->mute_on &&
        (atomic_load_explicit(&a->pressure, memory_order_relaxed) & ~PRESSURE_HOLDS) ==
            PRESSURE_OVERLOADED)
        sender->mute_on = a;
    /* seq_cst load after the seq_cst push: if the runner has just cleared
     * `scheduled`, either we see 0 here or it sees our message. An ended
     * actor keeps it at 1 until recycled, so it is never scheduled again. */
    if (atomic_load(&a->scheduled) == 0 && atomic_exchange(&a->scheduled, 1) == 0)
        schedule(sys, a, w);
    if (pinned)
        unpin(a);
    return 0;
}

int actor_deliver(tr_system *sys, sched_worker *w, tr_addr from, tr_addr to, tr_msg *msg,
                  bool system_lane, uint64_t ref)
{
    return deliver(sys, w, from, to, msg, system_lane, ref, NULL);
}

/* Bytes from other nodes an unbounded mailbox may hold (since it was last
 * found empty) before their connections stop reading for it; a message
 * counts its payload and this much more. */
#define REMOTE_QUEUED_MAX (1u << 20)
#define REMOTE_MSG_COST 64u

/* Whether n more messages from another node, of `bytes` in all, put a too
 * far behind (a bounded mailbox: queued, with them counted in or not,
 * past half its bound); if so, a is flagged overloaded, before they are
 * pushed, so that its runner sees the flag when it drains them (see
 * actor_hold). */
static bool remote_behind(actor *a, unsigned n, uint64_t bytes)
{
    bool behind;
    if (a->bound) {
        behind = 2 * ((uint64_t)atomic_load_explicit(&a->queued, memory_order_relaxed) + n) > a->bound;
    } else {
        uint64_t add = bytes + (uint64_t)n * REMOTE_MSG_COST;
        uint32_t step = add < REMOTE_QUEUED_MAX ? (uint32_t)add : REMOTE_QUEUED_MAX;
        /* relaxed: an estimate (the runner's reset may drop a step). */
        behind = atomic_fetch_add_explicit(&a->queued, step, memory_order_relaxed) >=
                 REMOTE_QUEUED_MAX - step;
    }
    if (behind)
        atomic_fetch_or(&a->pressure, PRESSURE_OVERLOADED);
    return behind;
}

/* Counts up to n more user messages into a's bounded mailbox: as many as
 * it has room for (with must, all n). Returns how many. */
static unsigned reserve(actor *a, unsigned n, bool must)
{
    uint32_t q = atomic_load(&a->queued);
    unsigned k;
    do
        k = must ? n : q >= a->bound ? 0 : a->bound - q < n ? a->bound - q : n;
    while (k && !atomic_compare_exchange_weak(&a->queued, &q, q + k));
    return k;
}

/* How many of n messages from another node a bounded mailbox that refuses
 * when full takes (all, with must): the rest wait in their connection,
 * which holds until a drains, instead of being refused (their senders
 * could not be told). With no room, a is flagged overloaded and then
 * looked at again: its runner counts messages out (seq_cst) before it
 * reads the flag with its mailbox empty, so either it sees the flag, and
 * a hold made now ends when it drains, or this sees the room it made. */
static unsigned remote_room(actor *a, unsigned n, bool must)
{
    unsigned k = reserve(a, n, must);
    if (k < n) {
        atomic_fetch_or(&a->pressure, PRESSURE_OVERLOADED);
        k += reserve(a, n - k, false);
    }
    return k;
}

bool actor_deliver_many(tr_system *sys, sched_worker *w, tr_addr to, const node_item *items,
                        unsigned n, bool must, unsigned *taken)
{
    *taken = n;
    actor *a = NULL;
    if (!atomic_load_explicit(&sys->closing, memory_order_relaxed) && addr_node(to) == sys->node_id)
        a = find(sys, NULL, to); /* pinned */
    bool refusing = a && a->bound && a->overflow == TR_OVERFLOW_REFUSE;
    if (!a || (a->bound && !refusing)) { /* dead, stopping, or dropping: one at a time */
        bool behind = a && remote_behind(a, n, 0);
        for (unsigned i = 0; i < n; i++)
            actor_deliver(sys, NULL, items[i].from, to, items[i].msg, false, items[i].ref);
        if (a)
            unpin(a);
        return behind;
    }
    bool behind = false;
    if (refusing) {
        *taken = remote_room(a, n, must);
        behind = *taken < n || remote_behind(a, 0, 0); /* (counted in already) */
        n = *taken;
    }
    uint64_t bytes = 0;
    msg_link *first = NULL, *last = NULL;
    for (unsigned i = 0; i < n; i++) {
        tr_msg *m = items[i].msg;
        bytes += m->len;
        msg_link *link = items[i].ref ? msg_link_with_ref(m, items[i].from, items[i].ref)
                                      : msg_link_for_send(m, items[i].from);
        if (!link) { /* out of memory: that one is lost, as a send would fail */
            tr_msg_unref(m);
            if (refusing) /* and gives back the place reserved for it */
                atomic_fetch_sub(&a->queued, 1);
            continue;
        }
        if (last) /* relaxed: the chain is ours until it is pushed */
            atomic_store_explicit(&last->node.next, &link->node, memory_order_relaxed);
        else
            first = link;
        last = link;
    }
    if (!refusing)
        behind = remote_behind(a, n, bytes); /* before the push: see remote_behind */
    if (first) {
        mailbox_push_chain(&a->mailbox, &first->node, &last->node);
        /* seq_cst, as in deliver: a Dekker pair with the runner's flag. */
        if (atomic_load(&a->scheduled) == 0 && atomic_exchange(&a->scheduled, 1) == 0)
            schedule(sys, a, w);
    }
    unpin(a);
    return behind;
}

bool actor_hold(tr_system *sys, tr_addr to)
{
    actor *a = find(sys, NULL, to); /* pinned: it cannot end and release before we set the flag */
    if (!a)
        return false;
    /* A CAS, against mute.c's parking on a node's backlog: an actor that a
     * connection waits for is never parked, and a parked one never waited
     * for, so no cycle of waits forms across nodes. */
    uint8_t p = atomic_load(&a->pressure);
    bool held = false;
    while ((p & PRESSURE_OVERLOADED) && !(p & PRESSURE_MUTED) &&
           !(held = atomic_compare_exchange_weak(&a->pressure, &p, p | PRESSURE_HOLDS)))
        ;
    unpin(a);
    return held;
}

bool actor_holding(tr_system *sys, tr_addr to)
{
    actor *a = find(sys, NULL, to);
    if (!a)
        return false;
    bool holding = atomic_load(&a->pressure) & PRESSURE_HOLDS;
    unpin(a);
    return holding;
}

/* True (and msg released) when a user tries to send a runtime message type. */
static bool reserved_type(tr_msg *msg)
{
    if (!msg || msg->type < TR_MSG_SYSTEM)
        return false;
    tr_msg_unref(msg);
    return true;
}

int tr_send(tr_ctx *ctx, tr_addr to, tr_msg *msg)
{
    if (!ctx || reserved_type(msg)) {
        if (!ctx)
            tr_msg_unref(msg);
        return TR_EINVAL;
    }
    ctx->sent++;
    return deliver(ctx->sys, ctx->worker, ctx->self_addr, to, msg, false, 0, ctx);
}

int tr_system_send(tr_system *sys, tr_addr to, tr_msg *msg)
{
    if (!sys || reserved_type(msg)) {
        if (!sys)
            tr_msg_unref(msg);
        return TR_EINVAL;
    }
    /* Held while under way, so the system cannot be judged quiescent between
     * our push and the actor's scheduling. */
    sched_hold(&sys->sched);
    int rc = actor_deliver(sys, NULL, TR_ADDR_NONE, to, msg, false, 0);
    sched_release(&sys->sched);
    return rc;
}

tr_reply_token tr_defer_reply(const tr_ctx *ctx)
{
    return (tr_reply_token){ctx->sender, ctx->request_ref};
}

int tr_reply_with(tr_ctx *ctx, tr_reply_token token, tr_msg *msg)
{
    if (!ctx || tr_addr_is_none(token.to)) {
        tr_msg_unref(msg);
        return TR_EINVAL;
    }
    if (!token.ref)
        return tr_send(ctx, token.to, msg);
    if (reserved_type(msg))
        return TR_EINVAL;
    /* The answer to an ask: in the asker's system lane, with the ask's ref. */
    ctx->sent++;
    return actor_deliver(ctx->sys, ctx->worker, ctx->self_addr, token.to, msg, true, token.ref);
}

int tr_reply(tr_ctx *ctx, tr_msg *msg)
{
    if (!ctx) {
        tr_msg_unref(msg);
        return TR_EINVAL;
    }
    return tr_reply_with(ctx, tr_defer_reply(ctx), msg);
}

uint64_t tr_reply_to(const tr_ctx *ctx) { return ctx ? ctx->reply_to : 0; }

/* ---- spawning ---------------------------------------------------------- */

/* Spawns; when parent is given, the new actor is linked with it before it
 * can run, so not even a failing init can slip past the link. */
static int spawn(tr_system *sys, sched_worker *w, const tr_behavior *beh, tr_msg *arg,
                 tr_addr *out, tr_ctx *parent, const tr_spawn_opts *opts)
{
    int err = TR_EINVAL;
    if (!sys || !beh || !beh->receive || beh->state_size > UINT32_MAX ||
        (opts && (unsigned)opts->overflow > TR_OVERFLOW_DROP_OLDEST))
        goto fail;
    err = TR_ESTOPPED;
    if (atomic_load_explicit(&sys->closing, memory_order_relaxed))
        goto fail;
    actor *a = table_acquire(&sys->table, &err);
    if (!a)
        goto fail;
    a->behavior = beh;
    a->state_size = (uint32_t)beh->state_size;
    a->state = state_alloc(sys, beh->state_size);
    if (beh->state_size && !a->state) {
        atomic_fetch_or(&a->life, LIFE_CLOSED);
        table_release(&sys->table, a);
        err = TR_ENOMEM;
        goto fail;
    }
    a->init_arg = arg;
    a->started = false;
    atomic_store_explicit(&a->pressure, 0, memory_order_relaxed);
    a->ext = NULL;
    a->bound = opts ? opts->mailbox_bound : 0;
    a->overflow = opts ? (uint8_t)opts->overflow : 0;
    atomic_store_explicit(&a->queued, 0, memory_order_relaxed);
    tr_addr addr = actor_addr(sys, a);
    if (parent && (err = watch_link_new(parent, a, addr)) != 0) {
        state_free(sys, a->state, a->state_size);
        atomic_fetch_or(&a->life, LIFE_CLOSED);
        table_release(&sys->table, a);
        goto fail;
    }
    count(w, COUNT_SPAWNED, &sys->outside_spawned);
    if (out)
        *out = addr;
    /* An actor with an init to run takes its first turn at once; one without
     * waits, costing nothing, until its first message. */
    bool run_now = beh->init || arg;
    atomic_store(&a->scheduled, run_now ? 1u : 0u);
    if (run_now)
        schedule(sys, a, w);
    return 0;
fail:
    tr_msg_unref(arg);
    return err;
}

int tr_spawn_opt(tr_ctx *ctx, const tr_behavior *beh, tr_msg *arg, const tr_spawn_opts *opts,
                 tr_addr *out)
{
    if (!ctx) {
        tr_msg_unref(arg);
        return TR_EINVAL;
    }
    return spawn(ctx->sys, ctx->worker, beh, arg, out, opts && opts->link ? ctx : NULL, opts);
}

int tr_spawn(tr_ctx *ctx, const tr_behavior *beh, tr_msg *arg, tr_addr *out)
{
    return tr_spawn_opt(ctx, beh, arg, NULL, out);
}

int tr_spawn_link(tr_ctx *ctx, const tr_behavior *beh, tr_msg *arg, tr_addr *out)
{
    return tr_spawn_opt(ctx, beh, arg, &(tr_spawn_opts){.link = true}, out);
}

int tr_system_spawn_opt(tr_system *sys, const tr_behavior *beh, tr_msg *arg,
                        const tr_spawn_opts *opts, tr_addr *out)
{
    if (!sys) {
        tr_msg_unref(arg);
        return TR_EINVAL;
    }
    sched_hold(&sys->sched);
    int rc = spawn(sys, NULL, beh, arg, out, NULL, opts);
    sched_release(&sys->sched);
    return rc;
}

int tr_system_spawn(tr_system *sys, const tr_behavior *beh, tr_msg *arg, tr_addr *out)
{
    return tr_system_spawn_opt(sys, beh, arg, NULL, out);
}

/* ---- the handler's context --------------------------------------------- */

tr_addr tr_self(const tr_ctx *ctx) { return ctx->self_addr; }
tr_addr tr_sender(const tr_ctx *ctx) { return ctx->sender; }
tr_system *tr_ctx_system(const tr_ctx *ctx) { return ctx->sys; }

int tr_become(tr_ctx *ctx, const tr_behavior *beh)
{
    if (!ctx || !beh || !beh->receive || beh->state_size > ctx->self->state_size)
        return TR_EINVAL;
    ctx->self->behavior = beh;
    return 0;
}

void tr_exit(tr_ctx *ctx, int reason)
{
    ctx->exiting = true;
    ctx->reason = reason;
}

/* ---- ending ------------------------------------------------------------ */

/* Turns what is queued into dead letters; a monitor or link request still
 * in the system lane is answered with a down or exit for `reason`. */
static void drain(tr_system *sys, sched_worker *w, actor *a, int reason)
{
    mailbox_node *node;
    tr_addr self = actor_addr(sys, a);
    while ((node = mailbox_pop(&a->system)))
        watch_answer_dead(sys, w, self, msg_link_of(node), reason);
    while ((node = mailbox_pop(&a->mailbox)))
        dead_letter(sys, msg_link_of(node));
}

/* Gives the slots of a list of ended actors back to the table. */
static void recycle(tr_system *sys, sched_worker *w, actor *list)
{
    while (list) {
        actor *a = list;
        list = a->next_free;
        drain(sys, w, a, TR_EXIT_NOPROC); /* pushes that raced the ending */
        atomic_store_explicit(&a->scheduled, 0, memory_order_relaxed);
        table_release(&sys->table, a);
    }
}

/* Moves the waiting batch out of limbo once every worker has been quiescent
 * since its snapshot, and starts a new batch. */
static void limbo_advance(tr_system *sys, sched_worker *w, limbo *l)
{
    if (l->waiting) {
        if (!sched_quiescent_passed(&sys->sched, l->snapshot))
            return;
        recycle(sys, w, l->waiting);
    }
    l->waiting = l->fresh;
    l->fresh = NULL;
    l->fresh_count = 0;
    sched_quiescent_snapshot(&sys->sched, l->snapshot);
}

static void retire(tr_system *sys, sched_worker *w, actor *a)
{
    if (!w) { /* shutdown: no worker runs, nothing can race */
        a->next_free = NULL;
        recycle(sys, NULL, a);
        return;
    }
    limbo *l = &sys->limbo[w->index];
    a->next_free = l->fresh;
    l->fresh = a;
    if (++l->fresh_count >= LIMBO_BATCH)
        limbo_advance(sys, w, l);
}

void actor_limbo_flush(tr_system *sys)
{
    for (unsigned i = 0; i < sys->sched.nworkers; i++) {
        limbo *l = &sys->limbo[i];
        recycle(sys, NULL, l->waiting);
        recycle(sys, NULL, l->fresh);
        l->waiting = l->fresh = NULL;
        l->fresh_count = 0;
    }
}

/* Ends a: terminate, close the address, turn what is queued into dead
 * letters, free the state, and retire the slot. The runner's thread. */
static void actor_end(tr_ctx *ctx, actor *a, int reason)
{
    tr_system *sys = ctx->sys;
    ctx->sender = TR_ADDR_NONE;
    if (a->started && a->behavior->terminate)
        a->behavior->terminate(ctx, a->state, reason);
    atomic_fetch_or(&a->life, LIFE_CLOSED);
    /* acquire: each sender's push happens before its unpin. */
    while (atomic_load_explicit(&a->life, memory_order_acquire) & LIFE_PINS)
        cpu_relax();
    drain(sys, ctx->worker, a, reason);
    if (a->started) { /* whoever waits on us goes on */
        atomic_fetch_and(&a->pressure, PRESSURE_HOLDS); /* which mute_release clears */
        mute_release(sys, ctx->worker, a);
    }
    watch_fire(ctx, a, reason);
    watch_free(ctx, a);
    tr_msg_unref(a->init_arg);
    a->init_arg = NULL;
    state_free(sys, a->state, a->state_size);
    a->state = NULL;
    count(ctx->worker, COUNT_EXITED, &sys->outside_exited);
    retire(sys, ctx->worker, a);
}

/* ---- running ----------------------------------------------------------- */

static bool start(tr_ctx *ctx, actor *a)
{
    a->started = true;
    tr_msg *arg = a->init_arg;
    a->init_arg = NULL;
    int rc = a->behavior->init ? a->behavior->init(ctx, a->state, arg) : 0;
    tr_msg_unref(arg);
    if (rc != 0 && !ctx->exiting)
        tr_exit(ctx, rc);
    return !ctx->exiting;
}

/* Handles everything in the system lane, ahead of user messages. Returns
 * false when the actor is to end. */
static bool run_system_lane(tr_ctx *ctx, actor *a)
{
    mailbox_node *mn;
    while (!ctx->exiting && (mn = mailbox_pop(&a->system))) {
        msg_link *link = msg_link_of(mn);
        uint64_t ref = msg_link_ref(link);
        bool to_user;
        if (ref) /* the answer to one of our asks (or spawn requests) */
            to_user = ask_take_reply(ctx, a, link);
        else if (link->msg->type >= TR_MSG_SYSTEM)
            to_user = watch_handle(ctx, a, link);
        else /* a timer's message */
            to_user = true;
        if (to_user) {
            ctx->sender = link->from;
            ctx->request_ref = 0;
            ctx->reply_to = ref;
            a->behavior->receive(ctx, a->state, link->msg);
            ctx->reply_to = 0;
        }
        msg_link_release(link);
    }
    return !ctx->exiting;
}

static bool lanes_empty(actor *a) { return mailbox_empty(&a->system) && mailbox_empty(&a->mailbox); }

/* Runs a's turn; with gather, ends the node batch begun for it. */
static void run_turn(tr_system *sys, actor *a, sched_worker *w, bool gather)
{
    tr_ctx ctx = {.sys = sys, .self = a, .self_addr = actor_addr(sys, a), .worker = w};
    unsigned handled = 0;
    if ((a->started || start(&ctx, a)) && run_system_lane(&ctx, a)) {
        /* A turn ends after `batch` messages, or sooner when the handlers
         * send a lot (SENDS_PER_MESSAGE sends cost one message): a fan-out
         * actor yields while what it sent is still in cache, and cannot run
         * far ahead of its receivers. */
        for (; handled + ctx.sent / SENDS_PER_MESSAGE < sys->batch; handled++) {
            mailbox_node *mn = mailbox_pop(&a->mailbox);
            if (!mn)
                break;
            msg_link *link = msg_link_of(mn);
            if (a->bound && beyond_bound(sys, a)) {
                msg_link_release(link);
                continue;
            }
            ctx.sender = link->from;
            ctx.request_ref = msg_link_ref(link);
            if (a->ext) /* a message arrived in time: cancel a receive timeout */
                watch_before_message(&ctx, a);
            a->behavior->receive(&ctx, a->state, link->msg);
            msg_link_release(link);
            if (ctx.exiting || (gather && node_batch_congested())) {
                handled++; /* ending, or sending more than a node takes */
                break;
            }
        }
        sched_count(w, COUNT_DELIVERED, handled);
    }
    if (ctx.exiting) {
        actor_end(&ctx, a, ctx.reason);
        if (gather)
            node_batch_end(); /* the ending's downs and exits too */
        return;
    }
    if (gather)
        ctx.mute_on_node = node_batch_end();
    if (!lanes_empty(a)) {
        if (handled >= sys->batch) /* a full batch and still more: overloaded */
            atomic_fetch_or(&a->pressure, PRESSURE_OVERLOADED);
        if (!mute_after_turn(&ctx, a))
            sched_requeue(w, &a->run_node); /* more waiting: after the others */
        return;
    }
    if (!a->bound && atomic_load_explicit(&a->queued, memory_order_relaxed))
        atomic_store_explicit(&a->queued, 0, memory_order_relaxed); /* nothing from afar waits */
    /* seq_cst: after the counting out (see remote_room). */
    if (atomic_load(&a->pressure) & (PRESSURE_OVERLOADED | PRESSURE_HOLDS)) {
        atomic_fetch_and(&a->pressure, (uint8_t)~PRESSURE_OVERLOADED); /* drained */
        mute_release(sys, w, a);
    }
    if (mute_after_turn(&ctx, a))
        return; /* parked, holding its flag, until the receiver drains */
    /* seq_cst store, then a seq_cst read of the producers' end: a sender
     * that pushed before we cleared the flag is seen here; one after sees 0
     * and schedules the actor itself (maybe elsewhere: from here on we only
     * touch what senders touch). */
    atomic_store(&a->scheduled, 0);
    if ((mailbox_pushed_since_empty(&a->mailbox) || mailbox_pushed_since_empty(&a->system)) &&
        atomic_exchange(&a->scheduled, 1) == 0)
        sched_push(w, &a->run_node);
}

void actor_run(sched_node *node, sched_worker *w, void *arg)
{
    tr_system *sys = arg;
    actor *a = container_of(node, actor, run_node);
    /* relaxed: set once, before any connection; a stale NULL only skips batching. */
    bool gather = atomic_load_explicit(&sys->node, memory_order_relaxed) != NULL;
    if (gather)
        node_batch_begin(); /* what the turn sends to other nodes goes out together */
    run_turn(sys, a, w, gather);
}

/* ---- shutdown ---------------------------------------------------------- */

static void shutdown_one(actor *a, void *arg)
{
    tr_system *sys = arg;
    uint64_t life = atomic_load_explicit(&a->life, memory_order_relaxed);
    if ((life & LIFE_CLOSED) || ((life >> 32) & ADDR_GEN_MASK) == 0)
        return; /* ended, or never used */
    tr_ctx ctx = {.sys = sys, .self = a, .self_addr = actor_addr(sys, a), .worker = NULL};
    actor_end(&ctx, a, TR_EXIT_SHUTDOWN);
}

void actor_shutdown_all(tr_system *sys) { table_for_each(&sys->table, shutdown_one, sys); }

bool actor_poll(sched_worker *w, void *arg, bool leave, bool parking)
{
    tr_system *sys = arg;
    /* acquire: the node is initialised before it is published. */
    node *n = atomic_load_explicit(&sys->node, memory_order_acquire);
    if (!n)
        return false;
    if (leave) {
        node_poll_leave(n, w, parking);
        return false;
    }
    return node_poll(n, w);
}
