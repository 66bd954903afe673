/* Links and monitors.
 *
 * Each side keeps its own lists, touched only by its own runner; the two
 * sides agree through system-lane messages. A monitor lives in the watcher's
 * `watching` list and the target's `watchers` list; the watcher delivers a
 * down only while the monitor is in its list, which makes it exactly once
 * even when a demonitor crosses a down on the way. */
#include "actor.h"
#include "ext.h"

#include <stdlib.h>
#include <string.h>

/* ---- lists ------------------------------------------------------------- */

void *ext_room_for_one(void *items, uint32_t count, uint32_t *capacity, size_t item_size)
{
    if (count < *capacity)
        return items;
    uint32_t grown = *capacity ? 2 * *capacity : 4;
    void *p = realloc(items, grown * item_size);
    if (p)
        *capacity = grown;
    return p;
}

int ext_list_add(watch_list *l, tr_addr actor, uint64_t ref)
{
    watch_entry *items = ext_room_for_one(l->items, l->count, &l->capacity, sizeof *items);
    if (!items)
        return TR_ENOMEM;
    l->items = items;
    l->items[l->count++] = (watch_entry){actor, ref};
    return 0;
}

/* Index of the entry matching actor (when ref is 0) or ref, or -1. */
int64_t ext_list_find(const watch_list *l, tr_addr actor, uint64_t ref)
{
    for (uint32_t i = 0; i < l->count; i++)
        if (ref ? l->items[i].ref == ref : tr_addr_eq(l->items[i].actor, actor))
            return i;
    return -1;
}

bool ext_list_remove(watch_list *l, tr_addr actor, uint64_t ref)
{
    int64_t i = ext_list_find(l, actor, ref);
    if (i < 0)
        return false;
    l->items[i] = l->items[--l->count]; /* order does not matter */
    return true;
}

actor_ext *ext_of(actor *a)
{
    if (!a->ext)
        a->ext = calloc(1, sizeof *a->ext);
    return a->ext;
}

void watch_free(tr_ctx *ctx, actor *a)
{
    actor_ext *x = a->ext;
    if (!x)
        return;
    if (x->name)
        names_release(ctx->sys, x->name, ctx->self_addr);
    if (x->remote_watch)
        remote_unwatch(ctx->sys, ctx->self_addr);
    for (uint32_t i = 0; i < x->asks.count; i++)
        if (x->asks.items[i].timer)
            tr_timer_cancel(ctx->sys, x->asks.items[i].timer);
    if (x->receive_timer)
        tr_timer_cancel(ctx->sys, x->receive_timer);
    free(x->links.items);
    free(x->watchers.items);
    free(x->watching.items);
    free(x->asks.items);
    free(x->name);
    free(x);
    a->ext = NULL;
}

/* ---- sending system messages -------------------------------------------- */

static int send_system(tr_system *sys, sched_worker *w, tr_addr from, tr_addr to, uint32_t type,
                       const void *payload, size_t len)
{
    tr_msg *m = tr_msg_new(type, payload, len);
    if (!m)
        return TR_ENOMEM;
    return actor_deliver(sys, w, from, to, m, true, 0);
}

static void send_down(tr_system *sys, sched_worker *w, tr_addr dead, tr_addr watcher,
                      uint64_t ref, int reason)
{
    tr_down d;
    memset(&d, 0, sizeof d); /* padding too: it may cross to another node */
    d.actor = dead;
    d.reason = reason;
    d.ref = ref;
    send_system(sys, w, dead, watcher, TR_MSG_DOWN, &d, sizeof d);
}

static void send_link_exit(tr_system *sys, sched_worker *w, tr_addr dead, tr_addr linked,
                           int reason)
{
    int32_t r = reason;
    send_system(sys, w, dead, linked, SYS_LINK_EXIT, &r, sizeof r);
}

/* ---- the API ----------------------------------------------------------- */

/* For an actor on another node: registers the running actor to hear when
 * that node goes down (0, TR_ENODE when it is down already, TR_ENOMEM). */
static int watch_remote(tr_ctx *ctx, tr_addr target)
{
    uint16_t node = addr_node(target);
    return node == ctx->sys->node_id ? 0 : remote_watch(ctx, node);
}

static int exit_reason_of(int rc) { return rc == TR_ENODE ? TR_EXIT_NODEDOWN : TR_EXIT_NOPROC; }

static bool is_node_addr(tr_addr a) { return addr_index(a) == 0 && addr_gen(a) == 0; }

int tr_monitor_node(tr_ctx *ctx, uint16_t node, uint64_t *ref)
{
    actor_ext *x = ctx && node ? ext_of(ctx->self) : NULL;
    if (!x)
        return ctx && node ? TR_ENOMEM : TR_EINVAL;
    /* relaxed: only uniqueness matters. */
    uint64_t r = atomic_fetch_add_explicit(&ctx->sys->next_ref, 1, memory_order_relaxed) + 1;
    tr_addr target = tr_node_addr(node);
    int rc = ext_list_add(&x->watching, target, r);
    if (rc != 0)
        return rc;
    if (ref)
        *ref = r;
    rc = node == ctx->sys->node_id ? 0 : remote_watch(ctx, node);
    if (rc == TR_ENODE)
        send_down(ctx->sys, ctx->worker, target, ctx->self_addr, r, TR_EXIT_NODEDOWN);
    else if (rc != 0)
        ext_list_remove(&x->watching, target, r);
    return rc == TR_ENODE ? 0 : rc;
}

int tr_monitor(tr_ctx *ctx, tr_addr target, uint64_t *ref)
{
    actor_ext *x = ctx ? ext_of(ctx->self) : NULL;
    if (!x)
        return ctx ? TR_ENOMEM : TR_EINVAL;
    /* relaxed: only uniqueness matters. */
    uint64_t r = atomic_fetch_add_explicit(&ctx->sys->next_ref, 1, memory_order_relaxed) + 1;
    int rc = ext_list_add(&x->watching, target, r);
    if (rc != 0)
        return rc;
    if (ref)
        *ref = r;
    rc = watch_remote(ctx, target);
    if (rc == 0)
        rc = send_system(ctx->sys, ctx->worker, ctx->self_addr, target, SYS_MONITOR, &r, sizeof r);
    if (rc == TR_EDEAD || rc == TR_ENODE) /* already gone: the down comes at once */
        send_down(ctx->sys, ctx->worker, target, ctx->self_addr, r, exit_reason_of(rc));
    else if (rc != 0) {
        ext_list_remove(&x->watching, target, r);
        return rc;
    }
    return 0;
}

int tr_demonitor(tr_ctx *ctx, uint64_t ref)
{
    actor_ext *x = ctx && ref ? ctx->self->ext : NULL;
    int64_t i = x ? ext_list_find(&x->watching, TR_ADDR_NONE, ref) : -1;
    if (i < 0)
        return TR_EINVAL;
    tr_addr target = x->watching.items[i].actor;
    ext_list_remove(&x->watching, target, ref);
    if (!is_node_addr(target))
        send_system(ctx->sys, ctx->worker, ctx->self_addr, target, SYS_DEMONITOR, &ref, sizeof ref);
    return 0;
}

int tr_link(tr_ctx *ctx, tr_addr other)
{
    if (!ctx || tr_addr_eq(other, ctx->self_addr) || tr_addr_is_none(other))
        return TR_EINVAL;
    actor_ext *x = ext_of(ctx->self);
    if (!x)
        return TR_ENOMEM;
    if (ext_list_find(&x->links, other, 0) >= 0)
        return 0;
    int rc = ext_list_add(&x->links, other, 0);
    if (rc != 0)
        return rc;
    rc = watch_remote(ctx, other);
    if (rc == 0)
        rc = send_system(ctx->sys, ctx->worker, ctx->self_addr, other, SYS_LINK, NULL, 0);
    if (rc == TR_EDEAD || rc == TR_ENODE) /* as if it ended now */
        send_link_exit(ctx->sys, ctx->worker, other, ctx->self_addr, exit_reason_of(rc));
    else if (rc != 0) {
        ext_list_remove(&x->links, other, 0);
        return rc;
    }
    return 0;
}

int tr_unlink(tr_ctx *ctx, tr_addr other)
{
    if (!ctx)
        return TR_EINVAL;
    if (ctx->self->ext && ext_list_remove(&ctx->self->ext->links, other, 0))
        send_system(ctx->sys, ctx->worker, ctx->self_addr, other, SYS_UNLINK, NULL, 0);
    return 0;
}

void tr_trap_exit(tr_ctx *ctx, bool trap)
{
    actor_ext *x = ext_of(ctx->self);
    if (x)
        x->trap_exit = trap;
}

int tr_kill(tr_ctx *ctx, tr_addr target, int reason)
{
    if (!ctx)
        return TR_EINVAL;
    int32_t r = reason;
    return send_system(ctx->sys, ctx->worker, ctx->self_addr, target, SYS_KILL, &r, sizeof r);
}

/* ---- the receiving side ------------------------------------------------- */

static uint64_t payload_ref(const tr_msg *m)
{
    uint64_t ref = 0;
    if (m->len == sizeof ref)
        memcpy(&ref, m->data, sizeof ref);
    return ref;
}

static int32_t payload_reason(const tr_msg *m)
{
    int32_t reason = TR_EXIT_KILLED;
    if (m->len == sizeof reason)
        memcpy(&reason, m->data, sizeof reason);
    return reason;
}

/* Hands the user a runtime message made here, as if it had arrived so. */
static void deliver_now(tr_ctx *ctx, actor *a, tr_addr from, uint32_t type, const void *payload,
                        size_t len)
{
    tr_msg *m = tr_msg_new(type, payload, len);
    if (!m)
        return;
    ctx->sender = from;
    a->behavior->receive(ctx, a->state, m);
    tr_msg_unref(m);
}

/* An exit signal from `from`: end, trap, or ignore. */
static bool exit_signal(tr_ctx *ctx, actor_ext *x, tr_addr from, int32_t reason)
{
    bool trap = x && x->trap_exit;
    if (reason == TR_EXIT_KILLED || (!trap && reason != TR_EXIT_NORMAL)) {
        tr_exit(ctx, reason);
        return false;
    }
    if (!trap)
        return false;
    tr_exit_info info = {.actor = from, .reason = reason};
    deliver_now(ctx, ctx->self, from, TR_MSG_EXIT, &info, sizeof info);
    return false;
}

/* The index of the first entry for an actor on node (for the node itself,
 * with whole set), or -1. */
static int64_t find_on_node(const watch_list *l, uint16_t node, bool whole)
{
    for (uint32_t i = 0; i < l->count; i++)
        if (addr_node(l->items[i].actor) == node && is_node_addr(l->items[i].actor) == whole)
            return i;
    return -1;
}

/* Node went down: each monitor of something there gets its down, each link
 * to an actor there fires, and watchers there are forgotten. The lists are
 * searched again after each delivery, which may change them. */
static void node_down(tr_ctx *ctx, actor *a, uint16_t node)
{
    int64_t i;
    ask_node_down(ctx, a, node); /* no answer will come from there */
    for (int whole = 0; whole < 2; whole++) /* its actors' downs first, then the node's */
        while (!ctx->exiting && a->ext && (i = find_on_node(&a->ext->watching, node, whole)) >= 0) {
            watch_entry e = a->ext->watching.items[i];
            ext_list_remove(&a->ext->watching, e.actor, e.ref);
            tr_down d = {.actor = e.actor, .reason = TR_EXIT_NODEDOWN, .ref = e.ref};
            deliver_now(ctx, a, e.actor, TR_MSG_DOWN, &d, sizeof d);
        }
    while (!ctx->exiting && a->ext && (i = find_on_node(&a->ext->links, node, false)) >= 0) {
        tr_addr other = a->ext->links.items[i].actor;
        ext_list_remove(&a->ext->links, other, 0);
        exit_signal(ctx, a->ext, other, TR_EXIT_NODEDOWN);
    }
    while (a->ext && (i = find_on_node(&a->ext->watchers, node, false)) >= 0)
        ext_list_remove(&a->ext->watchers, a->ext->watchers.items[i].actor,
                        a->ext->watchers.items[i].ref);
}

bool watch_handle(tr_ctx *ctx, actor *a, msg_link *link)
{
    const tr_msg *m = link->msg;
    tr_addr from = link->from;
    actor_ext *x;
    switch (m->type) {
    case TR_MSG_DOWN: { /* deliver only while the monitor is ours */
        tr_down d;
        if (m->len != sizeof d || !a->ext)
            return false;
        memcpy(&d, m->data, sizeof d);
        return ext_list_remove(&a->ext->watching, d.actor, d.ref);
    }
    case SYS_MONITOR:
        if ((x = ext_of(a)) && ext_list_add(&x->watchers, from, payload_ref(m)) == 0)
            return false;
        /* no memory to remember the watcher: tell it we are gone for it */
        send_down(ctx->sys, ctx->worker, ctx->self_addr, from, payload_ref(m), TR_EXIT_NOPROC);
        return false;
    case SYS_DEMONITOR:
        if (a->ext)
            ext_list_remove(&a->ext->watchers, from, payload_ref(m));
        return false;
    case SYS_LINK:
        if ((x = ext_of(a)) && (ext_list_find(&x->links, from, 0) >= 0 || ext_list_add(&x->links, from, 0) == 0)) {
            int rc = watch_remote(ctx, from);
            if (rc == 0)
                return false;
            ext_list_remove(&x->links, from, 0); /* its node is gone already */
            return exit_signal(ctx, x, from, exit_reason_of(rc));
        }
        send_link_exit(ctx->sys, ctx->worker, ctx->self_addr, from, TR_EXIT_NOPROC);
        return false;
    case SYS_UNLINK:
        if (a->ext)
            ext_list_remove(&a->ext->links, from, 0);
        return false;
    case SYS_LINK_EXIT: /* only from an actor we are still linked with */
        if (!a->ext || !ext_list_remove(&a->ext->links, from, 0))
            return false;
        return exit_signal(ctx, a->ext, from, payload_reason(m));
    case SYS_KILL:
        return exit_signal(ctx, a->ext, from, payload_reason(m));
    case SYS_ASK_TIMEOUT:
        ask_timed_out(ctx, a, payload_ref(m));
        return false;
    case SYS_NODE_DOWN:
        node_down(ctx, a, (uint16_t)payload_ref(m));
        return false;
    case SYS_RECV_TIMEOUT: /* only the arming still in force counts */
        if (!a->ext || !a->ext->receive_timer || payload_ref(m) != a->ext->receive_timer_gen)
            return false;
        a->ext->receive_timer = 0;
        deliver_now(ctx, a, from, TR_MSG_TIMEOUT, NULL, 0);
        return false;
    default: /* other public system messages go to the user */
        return true;
    }
}

void watch_fire(tr_ctx *ctx, actor *a, int reason)
{
    actor_ext *x = a->ext;
    if (!x)
        return;
    for (uint32_t i = 0; i < x->watchers.count; i++)
        send_down(ctx->sys, ctx->worker, ctx->self_addr, x->watchers.items[i].actor,
                  x->watchers.items[i].ref, reason);
    for (uint32_t i = 0; i < x->links.count; i++)
        send_link_exit(ctx->sys, ctx->worker, ctx->self_addr, x->links.items[i].actor, reason);
    x->watchers.count = x->links.count = 0;
}

void watch_answer_dead_msg(tr_system *sys, sched_worker *w, tr_addr dead, tr_addr from,
                           const tr_msg *m, int reason)
{
    if (m->type == SYS_MONITOR)
        send_down(sys, w, dead, from, payload_ref(m), reason);
    else if (m->type == SYS_LINK)
        send_link_exit(sys, w, dead, from, reason);
}

void watch_answer_dead(tr_system *sys, sched_worker *w, tr_addr dead, msg_link *link, int reason)
{
    watch_answer_dead_msg(sys, w, dead, link->from, link->msg, reason);
    msg_link_release(link);
}

/* ---- receive timeouts --------------------------------------------------- */

static void disarm(tr_ctx *ctx, actor_ext *x)
{
    if (x->receive_timer)
        tr_timer_cancel(ctx->sys, x->receive_timer);
    x->receive_timer = 0;
    x->receive_timer_gen++; /* a timeout already on its way is now stale */
}

int tr_receive_timeout(tr_ctx *ctx, uint64_t ms)
{
    actor_ext *x = ctx ? ext_of(ctx->self) : NULL;
    if (!x)
        return ctx ? TR_ENOMEM : TR_EINVAL;
    disarm(ctx, x);
    if (ms == 0)
        return 0;
    uint64_t gen = x->receive_timer_gen;
    tr_msg *m = tr_msg_new(SYS_RECV_TIMEOUT, &gen, sizeof gen);
    if (!m)
        return TR_ENOMEM;
    return actor_timer_internal(ctx, m, ms, &x->receive_timer);
}

void watch_before_message(tr_ctx *ctx, actor *a)
{
    if (a->ext->receive_timer)
        disarm(ctx, a->ext);
}

int watch_link_new(tr_ctx *parent, actor *child, tr_addr child_addr)
{
    actor_ext *px = ext_of(parent->self), *cx = ext_of(child);
    if (!px || !cx || ext_list_add(&px->links, child_addr, 0) != 0) {
        watch_free(parent, child); /* only the child's empty bookkeeping */
        return TR_ENOMEM;
    }
    if (ext_list_add(&cx->links, parent->self_addr, 0) != 0) {
        ext_list_remove(&px->links, child_addr, 0);
        watch_free(parent, child);
        return TR_ENOMEM;
    }
    return 0;
}
