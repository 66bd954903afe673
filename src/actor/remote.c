/* Actors on other nodes: connecting a system to peers, sending across, and
 * what arrives from them. The node layer does the wire; this file is the
 * glue between it and actors. */
#include "actor.h"

#include "../node/node.h"

static void deliver_in(void *arg, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane)
{
    actor_deliver(arg, NULL, from, to, msg, system_lane, 0);
}

static void deliver_named_in(void *arg, const char *name, tr_addr from, tr_msg *msg)
{
    tr_system *sys = arg;
    tr_addr to;
    if (tr_whereis(sys, name, &to) != 0) {
        /* relaxed: a statistic. */
        atomic_fetch_add_explicit(&sys->dead_letters, 1, memory_order_relaxed);
        tr_msg_unref(msg);
        return;
    }
    actor_deliver(sys, NULL, from, to, msg, false, 0);
}

static void connection_closed(void *arg, uint16_t peer, int error, const char *why)
{
    (void)peer, (void)error, (void)why; /* logged by the node; node-down comes next */
    tr_system *sys = arg;
    sched_release(&sys->sched); /* the connection no longer keeps the system up */
}

static const node_callbacks callbacks = {
    .deliver = deliver_in, .deliver_named = deliver_named_in, .connection_closed = connection_closed};

int tr_system_connect(tr_system *sys, int fd)
{
    io_loop *io;
    if (!sys || fd < 0 || sys->node_id == 0)
        return TR_EINVAL;
    int rc = actor_io(sys, &io);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&sys->io_lock);
    if (!sys->node)
        rc = node_new(sys->node_id, io, &callbacks, sys, &sys->node);
    pthread_mutex_unlock(&sys->io_lock);
    if (rc != 0)
        return rc;
    sched_hold(&sys->sched); /* released when the connection closes */
    rc = node_connect(sys->node, "pipe", fd);
    if (rc != 0)
        sched_release(&sys->sched);
    return rc;
}

int actor_remote_send(tr_system *sys, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane)
{
    if (!sys->node) { /* not connected to anyone */
        atomic_fetch_add_explicit(&sys->dead_letters, 1, memory_order_relaxed);
        tr_msg_unref(msg);
        return TR_EDEAD;
    }
    return node_send(sys->node, from, to, msg, system_lane);
}

int tr_send_named_node(tr_ctx *ctx, uint16_t node_id, const char *name, tr_msg *msg)
{
    if (!ctx) {
        tr_msg_unref(msg);
        return TR_EINVAL;
    }
    if (node_id == ctx->sys->node_id)
        return tr_send_named(ctx, name, msg);
    if (!ctx->sys->node) {
        tr_msg_unref(msg);
        return TR_EDEAD;
    }
    ctx->sent++;
    return node_send_named(ctx->sys->node, node_id, name, ctx->self_addr, msg);
}

uint16_t tr_addr_node(tr_addr addr) { return addr_node(addr); }

void actor_remote_free(tr_system *sys)
{
    node_free(sys->node); /* after the io loop stopped: connections are closed */
    sys->node = NULL;
}
