/* Actors on other nodes: connecting a system to peers, sending across, and
 * what arrives from them. The node layer does the wire; this file is the
 * glue between it and actors. */
#include "actor.h"

#include "../node/node.h"
#include "ext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- what this node knows of others: peers' states, who watches actors
 * on them, and the behaviours others may spawn here. Guarded by lock. ---- */

enum { PEER_UNKNOWN = 0, PEER_CONNECTING, PEER_UP, PEER_DOWN };

typedef struct remote_watcher {
    uint16_t node;
    tr_addr local;
} remote_watcher;

typedef struct peer_name {
    uint16_t node;
    char name[TR_NAME_MAX + 1];
} peer_name;

typedef struct remote_registry {
    pthread_mutex_t lock;
    uint8_t peer[UINT16_MAX + 1];
    peer_name *names; /* what each peer that said hello calls itself */
    uint32_t name_count, name_capacity;
    remote_watcher *watchers; /* local actors with a monitor or link on a node */
    uint32_t count, capacity;
    const tr_behavior **behaviors;
    uint32_t behavior_count, behavior_capacity;
} remote_registry;

/* The registry, made on first use; NULL when out of memory. */
static remote_registry *registry(tr_system *sys)
{
    pthread_mutex_lock(&sys->io_lock);
    if (!sys->remote && (sys->remote = calloc(1, sizeof *sys->remote)))
        pthread_mutex_init(&sys->remote->lock, NULL);
    remote_registry *r = sys->remote;
    pthread_mutex_unlock(&sys->io_lock);
    return r;
}

/* Whether a frame to node can arrive: it is up, or it may be the peer of a
 * handshake under way. With r->lock held. */
static bool reachable(tr_system *sys, remote_registry *r, uint16_t node)
{
    uint8_t state = r->peer[node];
    return state == PEER_UP || state == PEER_CONNECTING ||
           (state == PEER_UNKNOWN && sys->node && node_handshaking(sys->node) > 0);
}

bool actor_peer_near(tr_system *sys, uint16_t node)
{
    remote_registry *r = registry(sys);
    if (!r)
        return false;
    pthread_mutex_lock(&r->lock);
    bool near = r->peer[node] == PEER_UP || r->peer[node] == PEER_CONNECTING;
    pthread_mutex_unlock(&r->lock);
    return near;
}

int remote_watch(tr_ctx *ctx, uint16_t node)
{
    remote_registry *r = registry(ctx->sys);
    actor_ext *x = ext_of(ctx->self);
    if (!r || !x)
        return TR_ENOMEM;
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    if (!reachable(ctx->sys, r, node)) {
        rc = TR_ENODE;
        goto out;
    }
    for (uint32_t i = 0; i < r->count; i++)
        if (r->watchers[i].node == node && tr_addr_eq(r->watchers[i].local, ctx->self_addr))
            goto out;
    remote_watcher *w = ext_room_for_one(r->watchers, r->count, &r->capacity, sizeof *w);
    if (!w) {
        rc = TR_ENOMEM;
        goto out;
    }
    r->watchers = w;
    r->watchers[r->count++] = (remote_watcher){node, ctx->self_addr};
    x->remote_watch = true;
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* Removes the entries of local (node 0: every node) or, with local none,
 * those of node, moving them to out (may be NULL) when it has room. */
static uint32_t take_watchers(remote_registry *r, uint16_t node, tr_addr local,
                              remote_watcher *out, uint32_t room)
{
    uint32_t taken = 0;
    for (uint32_t i = 0; i < r->count;) {
        remote_watcher w = r->watchers[i];
        bool match = tr_addr_is_none(local) ? w.node == node : tr_addr_eq(w.local, local);
        if (!match || (out && taken == room)) {
            i++;
            continue;
        }
        if (out)
            out[taken] = w;
        taken++;
        r->watchers[i] = r->watchers[--r->count];
    }
    return taken;
}

void remote_unwatch(tr_system *sys, tr_addr local)
{
    remote_registry *r = sys->remote;
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    take_watchers(r, 0, local, NULL, 0);
    pthread_mutex_unlock(&r->lock);
}

static void set_peer(tr_system *sys, uint16_t peer, uint8_t state)
{
    remote_registry *r = registry(sys);
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->peer[peer] = state;
    pthread_mutex_unlock(&r->lock);
}

/* Node peer went down: every local actor watching something there hears it
 * (and works out which of its monitors and links that ends). */
static void node_down(tr_system *sys, uint16_t peer)
{
    remote_registry *r = registry(sys);
    if (!r)
        return;
    for (;;) {
        remote_watcher batch[64];
        pthread_mutex_lock(&r->lock);
        r->peer[peer] = PEER_DOWN;
        uint32_t n = take_watchers(r, peer, TR_ADDR_NONE, batch, 64);
        pthread_mutex_unlock(&r->lock);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t node = peer;
            tr_msg *m = tr_msg_new(SYS_NODE_DOWN, &node, sizeof node);
            if (m)
                actor_deliver(sys, NULL, tr_node_addr(peer), batch[i].local, m, true, 0);
        }
        if (n < 64)
            return;
    }
}

int tr_register_behavior(tr_system *sys, const tr_behavior *beh)
{
    size_t len = beh && beh->name ? strlen(beh->name) : 0;
    if (!sys || !beh || !beh->receive || len == 0 || len > TR_NAME_MAX)
        return TR_EINVAL;
    remote_registry *r = registry(sys);
    if (!r)
        return TR_ENOMEM;
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    for (uint32_t i = 0; i < r->behavior_count; i++)
        if (strcmp(r->behaviors[i]->name, beh->name) == 0) {
            rc = TR_EEXIST;
            goto out;
        }
    const tr_behavior **b = ext_room_for_one(r->behaviors, r->behavior_count,
                                             &r->behavior_capacity, sizeof *b);
    if (!b) {
        rc = TR_ENOMEM;
        goto out;
    }
    r->behaviors = b;
    r->behaviors[r->behavior_count++] = beh;
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static const tr_behavior *find_behavior(tr_system *sys, const char *name)
{
    remote_registry *r = sys->remote;
    const tr_behavior *found = NULL;
    if (!r)
        return NULL;
    pthread_mutex_lock(&r->lock);
    for (uint32_t i = 0; i < r->behavior_count && !found; i++)
        if (strcmp(r->behaviors[i]->name, name) == 0)
            found = r->behaviors[i];
    pthread_mutex_unlock(&r->lock);
    return found;
}

/* Spawns the behaviour registered as name here (from ctx's handler, or
 * outside when ctx is NULL). Takes init. */
static int spawn_registered(tr_system *sys, tr_ctx *ctx, const char *name, tr_msg *init,
                            tr_addr *out)
{
    const tr_behavior *beh = find_behavior(sys, name);
    *out = TR_ADDR_NONE;
    if (!beh) {
        tr_msg_unref(init);
        return TR_ENOENT;
    }
    return ctx ? tr_spawn(ctx, beh, init, out) : tr_system_spawn(sys, beh, init, out);
}

/* Hands asker the answer to its spawn request ref. */
static void spawn_answer(tr_system *sys, sched_worker *w, tr_addr asker, tr_addr spawned,
                         uint64_t ref, int error)
{
    tr_spawned answer;
    memset(&answer, 0, sizeof answer);
    answer.actor = error ? TR_ADDR_NONE : spawned;
    answer.error = error;
    tr_msg *m = tr_msg_new(TR_MSG_SPAWNED, &answer, sizeof answer);
    if (m)
        actor_deliver(sys, w, spawned, asker, m, true, ref);
}

typedef struct spawn_request {
    uint16_t node;
    const char *name;
    tr_msg *init;
} spawn_request;

static int send_spawn(tr_ctx *ctx, uint64_t ref, void *data)
{
    spawn_request *req = data;
    tr_system *sys = ctx->sys;
    tr_msg *init = req->init;
    req->init = NULL; /* taken here, whatever happens */
    if (req->node == sys->node_id) {
        tr_addr spawned;
        int rc = spawn_registered(sys, ctx, req->name, init, &spawned);
        spawn_answer(sys, ctx->worker, ctx->self_addr, spawned, ref, rc);
        return 0;
    }
    remote_registry *r = registry(sys);
    if (!r) {
        tr_msg_unref(init);
        return TR_ENOMEM;
    }
    pthread_mutex_lock(&r->lock);
    bool up = reachable(sys, r, req->node);
    pthread_mutex_unlock(&r->lock);
    if (!up) {
        tr_msg_unref(init);
        return TR_ENODE;
    }
    return node_spawn(sys->node, req->node, req->name, init, ctx->self_addr, ref);
}

static int spawn_remote(tr_ctx *ctx, uint16_t node, const char *name, tr_msg *init,
                        uint64_t timeout_ms, tr_reply_fn fn, void *arg, uint64_t *ref)
{
    size_t len = name ? strlen(name) : 0;
    spawn_request req = {node, name, init};
    int rc = !ctx || node == 0 || len == 0 || len > TR_NAME_MAX ? TR_EINVAL
             : init && (init->flags & TR_MSG_LOCAL) && node != ctx->sys->node_id ? TR_ELOCAL
                                                                                 : 0;
    if (rc == 0)
        rc = ask_start(ctx, send_spawn, &req, node, TR_MSG_SPAWNED, timeout_ms, fn, arg, ref);
    tr_msg_unref(req.init); /* still ours if the request was never sent */
    return rc;
}

int tr_spawn_remote(tr_ctx *ctx, uint16_t node, const char *name, tr_msg *init,
                    uint64_t timeout_ms, uint64_t *ref)
{
    return spawn_remote(ctx, node, name, init, timeout_ms, NULL, NULL, ref);
}

int tr_spawn_remote_then(tr_ctx *ctx, uint16_t node, const char *name, tr_msg *init,
                         uint64_t timeout_ms, tr_reply_fn fn, void *arg)
{
    if (!fn) {
        tr_msg_unref(init);
        return TR_EINVAL;
    }
    return spawn_remote(ctx, node, name, init, timeout_ms, fn, arg, NULL);
}

/* ---- what arrives from other nodes (io loop thread) ---------------------- */

/* Whether a peer may send this into an actor's lane. Runtime messages it
 * may send are those of links and monitors, with their exact payloads. */
static bool allowed(const tr_msg *m, bool system_lane, uint64_t ref)
{
    if (m->type < TR_MSG_SYSTEM)
        return !system_lane || ref != 0; /* a user message, or the answer to an ask */
    if (!system_lane || ref != 0)
        return false;
    switch (m->type) {
    case SYS_LINK:
    case SYS_UNLINK:
        return m->len == 0;
    case SYS_MONITOR:
    case SYS_DEMONITOR:
        return m->len == sizeof(uint64_t);
    case SYS_LINK_EXIT:
    case SYS_KILL:
        return m->len == sizeof(int32_t);
    case TR_MSG_DOWN:
        return m->len == sizeof(tr_down);
    default:
        return false;
    }
}

static int deliver_in(void *arg, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane,
                      uint64_t ref)
{
    tr_system *sys = arg;
    if (!allowed(msg, system_lane, ref)) {
        tr_msg_unref(msg);
        return TR_EPROTO;
    }
    tr_msg *kept = system_lane && !ref ? tr_msg_ref(msg) : NULL;
    if (actor_deliver(sys, NULL, from, to, msg, system_lane, ref) == TR_EDEAD && kept)
        watch_answer_dead_msg(sys, NULL, to, from, kept, TR_EXIT_NOPROC);
    tr_msg_unref(kept);
    return 0;
}

static int deliver_batch_in(void *arg, void *worker, tr_addr to, node_item *items, unsigned n,
                            bool must, unsigned *taken)
{
    for (unsigned i = 0; i < n; i++)
        if (!allowed(items[i].msg, false, items[i].ref))
            return TR_EPROTO;
    return actor_deliver_many(arg, worker, to, items, n, must, taken) ? NODE_OVERLOADED : 0;
}

static bool hold_in(void *arg, tr_addr to) { return actor_hold(arg, to); }

static bool holding_in(void *arg, tr_addr to) { return actor_holding(arg, to); }

static tr_addr whereis_in(void *arg, const char *name)
{
    tr_system *sys = arg;
    tr_addr to;
    if (tr_whereis(sys, name, &to) == 0)
        return to;
    /* relaxed: a statistic. */
    atomic_fetch_add_explicit(&sys->dead_letters, 1, memory_order_relaxed);
    return TR_ADDR_NONE;
}

static void spawn_in(void *arg, uint16_t peer, const char *name, tr_msg *init, tr_addr asker,
                     uint64_t ref)
{
    tr_system *sys = arg;
    tr_addr spawned;
    int rc = spawn_registered(sys, NULL, name, init, &spawned);
    node_spawn_reply(sys->node, peer, asker, spawned, ref, rc);
}

static void spawn_reply_in(void *arg, tr_addr asker, tr_addr spawned, uint64_t ref, int error)
{
    spawn_answer(arg, NULL, asker, spawned, ref, error);
}

/* With r->lock held: peer's entry in r->names, or NULL. */
static peer_name *name_of(remote_registry *r, uint16_t peer)
{
    for (uint32_t i = 0; i < r->name_count; i++)
        if (r->names[i].node == peer)
            return &r->names[i];
    return NULL;
}

static void connection_up(void *arg, uint16_t peer, const char *name)
{
    set_peer(arg, peer, PEER_UP);
    remote_registry *r = registry(arg);
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    peer_name *e = name_of(r, peer);
    if (!e && (e = ext_room_for_one(r->names, r->name_count, &r->name_capacity, sizeof *e))) {
        r->names = e;
        e = &r->names[r->name_count++];
        e->node = peer;
    }
    if (e) /* else out of memory: the name stays unknown */
        snprintf(e->name, sizeof e->name, "%s", name);
    pthread_mutex_unlock(&r->lock);
}

int tr_node_name(tr_system *sys, uint16_t node, char *buf, size_t size)
{
    if (!sys || !buf || size < TR_NAME_MAX + 1)
        return TR_EINVAL;
    if (node == sys->node_id) {
        snprintf(buf, size, "%s", sys->node_name);
        return 0;
    }
    remote_registry *r = registry(sys);
    if (!r)
        return TR_ENOMEM;
    pthread_mutex_lock(&r->lock);
    peer_name *e = name_of(r, node);
    if (e)
        snprintf(buf, size, "%s", e->name);
    pthread_mutex_unlock(&r->lock);
    return e ? 0 : TR_ENOENT;
}

static void connection_closed(void *arg, uint16_t peer, int error, const char *why)
{
    (void)error, (void)why; /* logged by the node */
    tr_system *sys = arg;
    if (peer)
        node_down(sys, peer);
    sched_release(&sys->sched); /* the connection no longer keeps the system up */
}

static void drained(void *arg, void *waiter) { mute_resume(arg, waiter); }

static const node_callbacks callbacks = {
    .drained = drained,
    .deliver = deliver_in, .deliver_batch = deliver_batch_in, .hold = hold_in, .holding = holding_in, .whereis = whereis_in, .spawn = spawn_in,
    .spawn_reply = spawn_reply_in, .connection_up = connection_up,
    .connection_closed = connection_closed};

int tr_system_connect(tr_system *sys, int fd) { return tr_system_connect_via(sys, fd, "pipe"); }

int tr_system_connect_via(tr_system *sys, int fd, const char *transport)
{
    return actor_connect(sys, fd, transport, 0);
}

int actor_connect(tr_system *sys, int fd, const char *transport, uint16_t expected)
{
    io_loop *io;
    if (!sys || fd < 0 || sys->node_id == 0 || expected == sys->node_id || !transport ||
        (strcmp(transport, "pipe") != 0 && strcmp(transport, "shm") != 0))
        return TR_EINVAL;
    int rc = actor_io(sys, &io);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&sys->io_lock);
    if (!sys->node) {
        node *made = NULL;
        rc = node_new(sys->node_id, sys->node_name, sys->heartbeat_ms, io, &callbacks, sys, &made);
        atomic_store(&sys->node, made); /* workers look at it to batch their sends */
        if (made) /* from now on searching workers read shared memory too */
            sched_set_poll(&sys->sched, actor_poll);
    }
    pthread_mutex_unlock(&sys->io_lock);
    if (rc != 0)
        return rc;
    if (expected) /* a down node coming back: monitors made now wait for it */
        set_peer(sys, expected, PEER_CONNECTING);
    sched_hold(&sys->sched); /* released when the connection closes */
    rc = node_connect(sys->node, transport, fd, expected);
    if (rc != 0)
        sched_release(&sys->sched);
    return rc;
}

int actor_remote_send(tr_system *sys, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane,
                      uint64_t ref)
{
    if (!sys->node) { /* not connected to anyone */
        atomic_fetch_add_explicit(&sys->dead_letters, 1, memory_order_relaxed);
        tr_msg_unref(msg);
        return TR_EDEAD;
    }
    return node_send(sys->node, from, to, msg, system_lane, ref);
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

/* ---- ending with another node ---------------------------------------------- */

static int stopper_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    uint16_t node;
    memcpy(&node, tr_msg_data(arg), sizeof node);
    return tr_monitor_node(ctx, node, NULL);
}

static void stopper_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (tr_msg_type(msg) == TR_MSG_DOWN) {
        tr_system_stop(ctx->sys);
        tr_exit(ctx, TR_EXIT_NORMAL);
    }
}

static const tr_behavior stopper = {
    .name = "troupe.stop-with-node", .init = stopper_init, .receive = stopper_receive};

int tr_system_stop_with_node(tr_system *sys, uint16_t node)
{
    if (!sys || node == 0 || node == sys->node_id)
        return TR_EINVAL;
    tr_msg *arg = tr_msg_new(0, &node, sizeof node);
    return arg ? tr_system_spawn(sys, &stopper, arg, NULL) : TR_ENOMEM;
}

uint16_t tr_addr_node(tr_addr addr) { return addr_node(addr); }

tr_addr tr_node_addr(uint16_t node) { return addr_make(node, 0, 0); }

void actor_remote_stats(tr_system *sys, tr_stats *out)
{
    pthread_mutex_lock(&sys->io_lock);
    node *n = sys->node;
    out->node_dropped = n ? node_dropped(n) : 0;
    out->node_backlog_peak = n ? node_backlog_peak(n) : 0;
    out->node_waits = n ? node_waits(n) : 0;
    out->node_holds = n ? node_holds(n) : 0;
    pthread_mutex_unlock(&sys->io_lock);
}

void actor_remote_goodbye(tr_system *sys) { node_goodbye(sys->node); }

void actor_remote_running(tr_system *sys, bool running)
{
    /* acquire: the node is initialised before it is published. */
    node_set_running(atomic_load_explicit(&sys->node, memory_order_acquire), running);
}

void actor_remote_free(tr_system *sys)
{
    node_free(sys->node); /* after the io loop stopped: connections are closed */
    sys->node = NULL;
    if (sys->remote) {
        pthread_mutex_destroy(&sys->remote->lock);
        free(sys->remote->watchers);
        free(sys->remote->names);
        free(sys->remote->behaviors);
        free(sys->remote);
        sys->remote = NULL;
    }
}
