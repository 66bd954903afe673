/* Ask and reply.
 *
 * The asker keeps each ask in its bookkeeping with a deadline timer. The
 * request carries the ask's reference in its envelope; tr_reply sends the
 * answer back into the asker's system lane with the same reference. Whichever
 * of reply and deadline the asker handles first removes the ask, so exactly
 * one outcome is delivered; the other finds nothing and is dropped (a late
 * reply is counted). */
#include "actor.h"
#include "ext.h"

#include <string.h>


static int64_t find_ask(const ask_list *l, uint64_t ref)
{
    for (uint32_t i = 0; i < l->count; i++)
        if (l->items[i].ref == ref)
            return i;
    return -1;
}

/* Removes the ask with ref into *out; false when there is none. */
static bool take_ask(actor_ext *x, uint64_t ref, pending_ask *out)
{
    int64_t i = x ? find_ask(&x->asks, ref) : -1;
    if (i < 0)
        return false;
    *out = x->asks.items[i];
    x->asks.items[i] = x->asks.items[--x->asks.count];
    return true;
}

static int add_ask(actor_ext *x, pending_ask ask)
{
    ask_list *l = &x->asks;
    pending_ask *items = ext_room_for_one(l->items, l->count, &l->capacity, sizeof *items);
    if (!items)
        return TR_ENOMEM;
    l->items = items;
    l->items[l->count++] = ask;
    return 0;
}

int ask_start(tr_ctx *ctx, ask_send_fn send, void *data, uint16_t node, uint32_t down_type,
              uint64_t timeout_ms, tr_reply_fn fn, void *arg, uint64_t *ref_out)
{
    actor_ext *x = ext_of(ctx->self);
    if (!x)
        return TR_ENOMEM;
    if (node == ctx->sys->node_id)
        node = 0;
    int rc = node ? remote_watch(ctx, node) : 0; /* to hear if it goes down meanwhile */
    if (rc != 0)
        return rc;
    /* relaxed: only uniqueness matters. */
    uint64_t ref = atomic_fetch_add_explicit(&ctx->sys->next_ref, 1, memory_order_relaxed) + 1;
    tr_msg *deadline = tr_msg_new(SYS_ASK_TIMEOUT, &ref, sizeof ref);
    if (!deadline || add_ask(x, (pending_ask){ref, 0, fn, arg, node, down_type}) != 0) {
        tr_msg_unref(deadline);
        return TR_ENOMEM;
    }
    ctx->sent++;
    rc = send(ctx, ref, data);
    if (rc != 0) {
        pending_ask gone;
        take_ask(x, ref, &gone);
        tr_msg_unref(deadline);
        return rc;
    }
    /* The answer comes through our system lane, so the ask is still ours. */
    tr_timer timer = 0;
    if (actor_timer_internal(ctx, deadline, timeout_ms, &timer) == 0)
        x->asks.items[find_ask(&x->asks, ref)].timer = timer;
    if (ref_out)
        *ref_out = ref;
    return 0;
}

typedef struct request {
    tr_addr target;
    tr_msg *msg;
} request;

static int send_request(tr_ctx *ctx, uint64_t ref, void *data)
{
    request *r = data;
    tr_msg *msg = r->msg;
    r->msg = NULL; /* taken by the send, whatever it returns */
    return actor_deliver(ctx->sys, ctx->worker, ctx->self_addr, r->target, msg, false, ref);
}

static int ask(tr_ctx *ctx, tr_addr target, tr_msg *msg, uint64_t timeout_ms, tr_reply_fn fn,
               void *arg, uint64_t *ref_out)
{
    int rc = !ctx || !msg || msg->type >= TR_MSG_SYSTEM ? TR_EINVAL : 0;
    request r = {target, msg};
    if (rc == 0)
        rc = ask_start(ctx, send_request, &r, tr_addr_node(target), TR_MSG_ASK_TIMEOUT, timeout_ms,
                       fn, arg, ref_out);
    tr_msg_unref(r.msg); /* still ours if the send never ran */
    return rc;
}

int tr_ask(tr_ctx *ctx, tr_addr target, tr_msg *request, uint64_t timeout_ms, uint64_t *ref)
{
    return ask(ctx, target, request, timeout_ms, NULL, NULL, ref);
}

int tr_ask_then(tr_ctx *ctx, tr_addr target, tr_msg *request, uint64_t timeout_ms,
                tr_reply_fn fn, void *arg)
{
    if (!fn) {
        tr_msg_unref(request);
        return TR_EINVAL;
    }
    return ask(ctx, target, request, timeout_ms, fn, arg, NULL);
}

bool ask_take_reply(tr_ctx *ctx, actor *a, msg_link *link)
{
    pending_ask pending;
    if (!take_ask(a->ext, msg_link_ref(link), &pending)) {
        /* relaxed: a statistic. */
        atomic_fetch_add_explicit(&ctx->sys->late_replies, 1, memory_order_relaxed);
        return false;
    }
    if (pending.timer)
        tr_timer_cancel(ctx->sys, pending.timer);
    if (!pending.fn)
        return true; /* to receive, with tr_reply_to set */
    ctx->sender = link->from;
    ctx->request_ref = 0;
    ctx->reply_to = pending.ref;
    pending.fn(ctx, a->state, link->msg, 0, pending.arg);
    ctx->reply_to = 0;
    return false;
}

/* Ends an ask that got no answer: status to its continuation, or to
 * receive a TR_MSG_ASK_TIMEOUT (payload: the reference) or, for a spawn
 * request whose node went down, a TR_MSG_SPAWNED with that error. */
static void end_unanswered(tr_ctx *ctx, actor *a, const pending_ask *p, int status)
{
    ctx->sender = TR_ADDR_NONE;
    ctx->request_ref = 0;
    if (p->fn) {
        p->fn(ctx, a->state, NULL, status, p->arg);
        return;
    }
    tr_msg *m;
    if (status == TR_ENODE && p->down_type == TR_MSG_SPAWNED) {
        tr_spawned answer;
        memset(&answer, 0, sizeof answer);
        answer.actor = TR_ADDR_NONE;
        answer.error = TR_ENODE;
        m = tr_msg_new(TR_MSG_SPAWNED, &answer, sizeof answer);
        ctx->reply_to = p->ref;
    } else {
        m = tr_msg_new(TR_MSG_ASK_TIMEOUT, &p->ref, sizeof p->ref);
    }
    if (m) {
        a->behavior->receive(ctx, a->state, m);
        tr_msg_unref(m);
    }
    ctx->reply_to = 0;
}

void ask_timed_out(tr_ctx *ctx, actor *a, uint64_t ref)
{
    pending_ask pending;
    if (take_ask(a->ext, ref, &pending)) /* else the reply came first */
        end_unanswered(ctx, a, &pending, TR_ETIMEDOUT);
}

void ask_node_down(tr_ctx *ctx, actor *a, uint16_t node)
{
    for (;;) { /* searched again after each: a continuation may ask anew */
        actor_ext *x = a->ext;
        int64_t i = -1;
        for (uint32_t k = 0; x && k < x->asks.count && i < 0; k++)
            if (x->asks.items[k].node == node)
                i = k;
        if (i < 0 || ctx->exiting)
            return;
        pending_ask pending;
        take_ask(x, x->asks.items[i].ref, &pending);
        if (pending.timer)
            tr_timer_cancel(ctx->sys, pending.timer);
        end_unanswered(ctx, a, &pending, TR_ENODE);
    }
}
