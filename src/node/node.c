/* Connections between nodes: handshake, framing, routing, heartbeats.
 *
 * Sending: once a peer's connection is up and nothing for that peer is
 * still queued for the loop, a sender on any thread hands its frame to the
 * transport itself (through the peer's lane, under the lane's lock), with
 * no allocation and no hop through the loop thread. Until then frames go
 * to the loop as tasks, and the lane counts them, so a direct send never
 * overtakes an earlier one.
 *
 * Receiving: the loop reads every connection. A transport whose bytes any
 * thread can see (shared memory) is read by idle workers too (node_poll):
 * a worker takes the plain user messages at the front of the ring straight
 * to their actors, which it then runs itself, and leaves anything else (a
 * control frame, a runtime message, a frame cut by the ring's end, a
 * malformed one) to the loop. The connection's read lock keeps one reader
 * at a time, and the lane's poll lock keeps a worker from finding a
 * connection that is being freed. */
#include "node.h"

#include "../transport/transport.h"
#include "wire.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct connection {
    struct connection *next;
    node *node;
    const transport_ops *ops;
    transport *t;
    wire_reader reader;
    uint16_t peer;              /* 0 until the HELLO arrived */
    uint16_t expected;          /* the peer it must be, or 0 for any */
    const char *why;            /* the protocol error that closed it, if any */
    uint64_t last_in, last_out; /* loop time (ms) of the last frame each way */
    pthread_mutex_t read_lock;  /* one reader at a time: the loop or a worker */
    _Atomic bool cut;           /* closing: workers read no more */
    _Atomic bool heard;         /* a worker read frames since the last heartbeat check */
    bool polled;                /* loop thread: workers may read it (its lane's reader) */
} connection;

/* One per peer node, made on first use, never freed before the node: how
 * senders reach that peer's connection. */
typedef struct lane {
    pthread_mutex_t lock;
    connection *c;   /* the connection while it is up, else NULL */
    unsigned queued; /* frames for this peer handed to the loop, not yet written or dropped */
    void **waiters;     /* senders waiting for the backlog to drain (see node_wait_drained) */
    unsigned nwaiters, waiters_cap;
    _Atomic size_t gather_max; /* the transport's, once its connection was up */
    pthread_mutex_t poll_lock;
    connection *reader; /* under poll_lock: c, when workers may read it */
    bool polled;        /* listed in the node's polled lanes (loop thread) */
} lane;

/* Lanes whose connection workers may read, at most this many. */
#define POLLED_MAX 256

/* The heartbeat timer: one for all connections. */
typedef struct beat_timer {
    io_closable closable; /* first: the loop closes a still-open handle with it */
    uv_timer_t timer;
    node *node;
} beat_timer;

struct node {
    uint16_t id;
    uint32_t heartbeat_ms;
    io_loop *io;
    const node_callbacks *cb;
    void *arg;
    /* Loop thread only. */
    uv_loop_t *loop;             /* known from the first connection */
    connection *connections;
    struct frame_task *waiting;  /* frames for an unknown node, while handshaking */
    beat_timer *beat;            /* started with the first connection */
    _Atomic unsigned handshaking; /* connections whose peer is not known yet */
    _Atomic uint64_t dropped;
    _Atomic(lane *) *lanes; /* by peer node number */
    _Atomic(lane *) polled[POLLED_MAX]; /* appended by the loop, never removed */
    _Atomic unsigned npolled;
    _Atomic uint64_t backlog_peak, waits;
    _Atomic(void *) poller; /* the worker that polls, or NULL */
};

int node_new(uint16_t id, uint32_t heartbeat_ms, io_loop *io, const node_callbacks *cb,
             void *arg, node **out)
{
    if (id == 0 || heartbeat_ms == 0 || !io || !cb)
        return TR_EINVAL;
    node *n = calloc(1, sizeof *n);
    if (!n)
        return TR_ENOMEM;
    *n = (node){.id = id, .heartbeat_ms = heartbeat_ms, .io = io, .cb = cb, .arg = arg};
    n->lanes = calloc(UINT16_MAX + 1, sizeof *n->lanes); /* pages untouched until used */
    if (!n->lanes) {
        free(n);
        return TR_ENOMEM;
    }
    atomic_init(&n->handshaking, 0);
    atomic_init(&n->dropped, 0);
    *out = n;
    return 0;
}

uint64_t node_dropped(node *n) { return atomic_load(&n->dropped); }

unsigned node_handshaking(node *n) { return atomic_load(&n->handshaking); }

/* ---- frames out ----------------------------------------------------------- */

/* A frame on its way to the loop thread. */
typedef struct frame_task {
    io_task task;
    struct frame_task *next_waiting;
    node *node;
    uint16_t to_node;
    size_t len;
    unsigned char *bytes; /* header and body, malloc'd: handed to the transport */
} frame_task;

static connection *route(node *n, uint16_t peer)
{
    for (connection *c = n->connections; c; c = c->next)
        if (c->peer == peer)
            return c;
    return NULL;
}

/* The lane to peer, made if needed; NULL when out of memory. Any thread. */
static lane *lane_of(node *n, uint16_t peer)
{
    lane *l = atomic_load_explicit(&n->lanes[peer], memory_order_acquire);
    if (l)
        return l;
    lane *fresh = calloc(1, sizeof *fresh);
    if (!fresh)
        return NULL;
    pthread_mutex_init(&fresh->lock, NULL);
    pthread_mutex_init(&fresh->poll_lock, NULL);
    /* acq_rel: publishes the initialised lane, or sees the one that won. */
    if (atomic_compare_exchange_strong_explicit(&n->lanes[peer], &l, fresh, memory_order_acq_rel,
                                                memory_order_acquire))
        return fresh;
    pthread_mutex_destroy(&fresh->lock);
    pthread_mutex_destroy(&fresh->poll_lock);
    free(fresh);
    return l;
}

bool node_wait_drained(node *n, uint16_t peer, void *waiter)
{
    lane *l = atomic_load_explicit(&n->lanes[peer], memory_order_acquire);
    if (!l)
        return false;
    bool waits = false;
    pthread_mutex_lock(&l->lock);
    /* Under the lock: the transport says it drained only after its backlog
     * fell to zero, and the release below takes this lock, so a backlog
     * seen here is followed by a release that finds the waiter. */
    if (l->c && l->c->ops->backlog(l->c->t) > 0) {
        if (l->nwaiters == l->waiters_cap) {
            unsigned cap = l->waiters_cap ? 2 * l->waiters_cap : 8;
            void **grown = realloc(l->waiters, cap * sizeof *grown);
            if (grown) {
                l->waiters = grown;
                l->waiters_cap = cap;
            }
        }
        if (l->nwaiters < l->waiters_cap) { /* else out of memory: it goes on */
            l->waiters[l->nwaiters++] = waiter;
            waits = true;
        }
    }
    pthread_mutex_unlock(&l->lock);
    if (waits) /* relaxed: a statistic */
        atomic_fetch_add_explicit(&n->waits, 1, memory_order_relaxed);
    return waits;
}

/* Loop thread: hands peer's waiters back to the layer above. */
static void release_waiters(node *n, uint16_t peer)
{
    lane *l = atomic_load_explicit(&n->lanes[peer], memory_order_acquire);
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    void **waiters = l->waiters;
    unsigned count = l->nwaiters;
    l->waiters = NULL;
    l->nwaiters = l->waiters_cap = 0;
    pthread_mutex_unlock(&l->lock);
    for (unsigned i = 0; i < count; i++)
        n->cb->drained(n->arg, waiters[i]);
    free(waiters);
}

uint64_t node_backlog_peak(node *n) { return atomic_load(&n->backlog_peak); }

uint64_t node_waits(node *n) { return atomic_load(&n->waits); }

/* Loop thread: a frame handed over as a task is written or dropped. */
static void lane_done(node *n, uint16_t peer)
{
    lane *l = atomic_load_explicit(&n->lanes[peer], memory_order_acquire);
    pthread_mutex_lock(&l->lock);
    l->queued--;
    pthread_mutex_unlock(&l->lock);
}

/* Loop thread: opens or closes the lane of c's peer for direct sends and,
 * when its transport allows, for workers' reads. */
static void lane_set(node *n, uint16_t peer, connection *c)
{
    lane *l = lane_of(n, peer);
    if (!l)
        return; /* no lane: every frame takes the loop path */
    pthread_mutex_lock(&l->lock);
    l->c = c;
    pthread_mutex_unlock(&l->lock);
    if (c)
        atomic_store_explicit(&l->gather_max, c->ops->gather_max, memory_order_relaxed);
    connection *reader = c && c->ops->read ? c : NULL;
    if (reader && !l->polled) {
        unsigned i = atomic_load_explicit(&n->npolled, memory_order_relaxed);
        if (i == POLLED_MAX)
            reader = NULL; /* the loop alone reads it */
        else {
            l->polled = true;
            atomic_store_explicit(&n->polled[i], l, memory_order_relaxed);
            /* release: the entry before the count that shows it */
            atomic_store_explicit(&n->npolled, i + 1, memory_order_release);
        }
    }
    pthread_mutex_lock(&l->poll_lock);
    if (l->reader)
        l->reader->polled = false;
    l->reader = reader;
    if (reader)
        reader->polled = true;
    pthread_mutex_unlock(&l->poll_lock);
}

/* Loop thread: writes bytes (malloc'd, freed here) to c. */
static void conn_write(connection *c, void *bytes, size_t len)
{
    c->last_out = uv_now(c->node->loop);
    c->ops->send(c->t, bytes, len, NULL, 0, true);
    free(bytes);
}

static void drop(frame_task *f)
{
    free(f->bytes);
    atomic_fetch_add_explicit(&f->node->dropped, 1, memory_order_relaxed);
    free(f);
}

static void write_on_loop(io_task *task, uv_loop_t *loop)
{
    frame_task *f = container_of(task, frame_task, task);
    node *n = f->node;
    connection *c = loop ? route(n, f->to_node) : NULL;
    if (c) {
        conn_write(c, f->bytes, f->len);
        if (loop)
            lane_done(n, f->to_node);
        free(f);
    } else if (loop && atomic_load_explicit(&n->handshaking, memory_order_relaxed) > 0) {
        /* its peer may be the one greeting us */
        frame_task **tail = &n->waiting;
        while (*tail)
            tail = &(*tail)->next_waiting;
        f->next_waiting = NULL;
        *tail = f;
    } else {
        if (loop)
            lane_done(n, f->to_node);
        drop(f);
    }
}

/* A handshake ended (peer known, or 0 if it failed): send what waited for
 * that peer, in order; once no handshake is left, drop the rest. */
static void handshake_over(node *n, uint16_t peer)
{
    unsigned left = atomic_fetch_sub(&n->handshaking, 1) - 1;
    connection *c = peer ? route(n, peer) : NULL;
    frame_task **p = &n->waiting;
    while (*p) {
        frame_task *f = *p;
        if (c && f->to_node == peer) {
            *p = f->next_waiting;
            conn_write(c, f->bytes, f->len);
            lane_done(n, f->to_node);
            free(f);
        } else if (left == 0) {
            *p = f->next_waiting;
            lane_done(n, f->to_node);
            drop(f);
        } else {
            p = &f->next_waiting;
        }
    }
}

void node_free(node *n)
{
    if (!n)
        return;
    while (n->waiting) { /* only if the loop stopped during a handshake */
        frame_task *f = n->waiting;
        n->waiting = f->next_waiting;
        drop(f);
    }
    for (uint32_t i = 0; i <= UINT16_MAX; i++) {
        lane *l = atomic_load_explicit(&n->lanes[i], memory_order_relaxed);
        if (l) {
            pthread_mutex_destroy(&l->lock);
            pthread_mutex_destroy(&l->poll_lock);
            free(l->waiters);
            free(l);
        }
    }
    free(n->lanes);
    free(n);
}

/* Header + body (h->length bytes, or none) in one malloc'd buffer of *len
 * bytes: the loop's own frames. NULL when out of memory. */
static unsigned char *frame_bytes(const wire_header *h, const void *body, size_t *len)
{
    *len = WIRE_HEADER_SIZE + h->length;
    unsigned char *bytes = malloc(*len);
    if (!bytes)
        return NULL;
    wire_encode_header(h, bytes);
    if (body)
        memcpy(bytes + WIRE_HEADER_SIZE, body, h->length);
    return bytes;
}

/* Frames gathered by this thread for one peer (see node_batch_begin), up
 * to the transport's gather_max (this until the peer's connection is up);
 * larger ones go straight out, behind what was gathered. */
#define BATCH_COPY_MAX 512

typedef struct out_batch {
    bool on;
    uint16_t congested; /* a peer this thread sent to whose backlog is over the limit */
    node *node;
    uint16_t peer;
    size_t len;
    unsigned char bytes[16384];
} out_batch;

static _Thread_local out_batch gathered;

static int send_bytes(node *n, uint16_t to_node, const void *head, size_t head_len,
                      const void *body, size_t body_len);

/* Writes out what this thread gathered. */
static void batch_out(void)
{
    out_batch *g = &gathered;
    if (g->len == 0)
        return;
    size_t len = g->len;
    g->len = 0;
    send_bytes(g->node, g->peer, g->bytes, len, NULL, 0);
}

bool node_batch_congested(void) { return gathered.congested != 0; }

void node_batch_begin(void)
{
    gathered.on = true;
    gathered.congested = 0; /* only what this batch sends counts */
}

uint16_t node_batch_end(void)
{
    batch_out();
    gathered.on = false;
    uint16_t congested = gathered.congested;
    gathered.congested = 0;
    return congested;
}

/* Sends the frame (body: prefix then the rest) to to_node, gathered when
 * this thread batches, else at once. */
static int queue_frame(node *n, uint16_t to_node, const wire_header *h, const void *prefix,
                       size_t prefix_len, const void *body)
{
    out_batch *g = &gathered;
    size_t need = WIRE_HEADER_SIZE + h->length;
    bool alone = need > sizeof g->bytes;
    if (g->on && !alone && need > BATCH_COPY_MAX) {
        lane *l = lane_of(n, to_node);
        /* relaxed: a hint, set when the connection comes up */
        alone = !l || need > atomic_load_explicit(&l->gather_max, memory_order_relaxed);
    }
    if (g->on && alone) /* large: one copy fewer than gathering it */
        batch_out();
    if (!g->on || alone) {
        unsigned char head[WIRE_HEADER_SIZE + 8];
        wire_encode_header(h, head);
        if (prefix_len)
            memcpy(head + WIRE_HEADER_SIZE, prefix, prefix_len);
        return send_bytes(n, to_node, head, WIRE_HEADER_SIZE + prefix_len, body,
                          h->length - prefix_len);
    }
    if (g->len && (g->node != n || g->peer != to_node || g->len + need > sizeof g->bytes))
        batch_out();
    unsigned char *at = g->bytes + g->len;
    wire_encode_header(h, at);
    if (prefix_len)
        memcpy(at + WIRE_HEADER_SIZE, prefix, prefix_len);
    if (h->length > prefix_len)
        memcpy(at + WIRE_HEADER_SIZE + prefix_len, body, h->length - prefix_len);
    g->node = n;
    g->peer = to_node;
    g->len += need;
    return 0;
}

/* Sends head_len bytes at head then body_len at body (whole frames) to
 * to_node: straight to its transport when its lane is open and clear, else
 * through the loop. */
static int send_bytes(node *n, uint16_t to_node, const void *head, size_t head_len,
                      const void *body, size_t body_len)
{
    lane *l = lane_of(n, to_node);
    if (!l)
        return TR_ENOMEM;
    pthread_mutex_lock(&l->lock);
    if (l->c && l->queued == 0) {
        int rc = l->c->ops->send(l->c->t, head, head_len, body, body_len, false);
        size_t backlog = l->c->ops->backlog(l->c->t);
        pthread_mutex_unlock(&l->lock);
        if (backlog) {
            uint64_t peak = atomic_load_explicit(&n->backlog_peak, memory_order_relaxed);
            while (backlog > peak && !atomic_compare_exchange_weak_explicit(
                                         &n->backlog_peak, &peak, backlog, memory_order_relaxed,
                                         memory_order_relaxed))
                ;
            if (backlog > NODE_BACKLOG_MAX)
                gathered.congested = to_node;
        }
        return rc == 0 ? 0 : rc == UV_ENOMEM ? TR_ENOMEM : TR_EDEAD;
    }
    l->queued++; /* until the loop has written or dropped it */
    pthread_mutex_unlock(&l->lock);
    frame_task *f = malloc(sizeof *f);
    unsigned char *bytes = f ? malloc(head_len + body_len) : NULL;
    if (!bytes) {
        free(f);
        pthread_mutex_lock(&l->lock);
        l->queued--;
        pthread_mutex_unlock(&l->lock);
        return TR_ENOMEM;
    }
    memcpy(bytes, head, head_len);
    if (body_len)
        memcpy(bytes + head_len, body, body_len);
    *f = (frame_task){.task.run = write_on_loop, .node = n, .to_node = to_node,
                      .len = head_len + body_len, .bytes = bytes};
    io_loop_submit(n->io, &f->task);
    return 0;
}

/* Queues a frame whose body is the msgpack in buf. */
static int queue_packed(node *n, uint16_t to_node, wire_header *h, const msgpack_sbuffer *buf)
{
    if (buf->size > WIRE_DEFAULT_MAX_BODY)
        return TR_ETOOBIG;
    h->length = (uint32_t)buf->size;
    return queue_frame(n, to_node, h, NULL, 0, buf->data);
}

static uint16_t msg_wire_flags(const tr_msg *msg)
{
    return msg && (msg->flags & TR_MSG_MSGPACK) ? WIRE_FLAG_MSGPACK : 0;
}

int node_send(node *n, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane, uint64_t ref)
{
    int rc = TR_EINVAL;
    if (!n || !msg)
        goto out;
    rc = TR_ELOCAL;
    if (msg->flags & TR_MSG_LOCAL)
        goto out;
    rc = TR_ETOOBIG;
    if (msg->len > WIRE_DEFAULT_MAX_BODY - sizeof ref)
        goto out;
    unsigned char prefix[8];
    size_t prefix_len = 0;
    if (ref) {
        wire_put64(prefix, ref);
        prefix_len = sizeof prefix;
    }
    wire_header h = {.op = WIRE_SEND,
                     .flags = (uint16_t)(msg_wire_flags(msg) | (system_lane ? WIRE_FLAG_SYSTEM : 0) |
                                         (ref ? WIRE_FLAG_REF : 0)),
                     .length = (uint32_t)(prefix_len + msg->len), .type = msg->type,
                     .from = from.bits, .to = to.bits};
    rc = queue_frame(n, (uint16_t)(to.bits >> 48), &h, prefix, prefix_len, msg->data);
out:
    tr_msg_unref(msg);
    return rc;
}

/* [name, bin or nil] and more, into buf: the start of the named-send and
 * spawn bodies. */
static void pack_name_and_payload(msgpack_packer *pk, size_t size, const char *name,
                                  size_t name_len, const tr_msg *msg)
{
    msgpack_pack_array(pk, size);
    msgpack_pack_str_with_body(pk, name, name_len);
    if (msg)
        msgpack_pack_bin_with_body(pk, msg->data, msg->len);
    else
        msgpack_pack_nil(pk);
}

static bool name_ok(const char *name, size_t *len)
{
    *len = name ? strlen(name) : 0;
    return *len > 0 && *len <= WIRE_NAME_MAX;
}

int node_send_named(node *n, uint16_t to_node, const char *name, tr_addr from, tr_msg *msg)
{
    int rc = TR_EINVAL;
    size_t name_len;
    if (!n || !msg || !name_ok(name, &name_len))
        goto out;
    rc = TR_ELOCAL;
    if (msg->flags & TR_MSG_LOCAL)
        goto out;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    pack_name_and_payload(&pk, 2, name, name_len, msg);
    wire_header h = {.op = WIRE_NAMED_SEND, .flags = msg_wire_flags(msg), .type = msg->type,
                     .from = from.bits};
    rc = queue_packed(n, to_node, &h, &buf);
    msgpack_sbuffer_destroy(&buf);
out:
    tr_msg_unref(msg);
    return rc;
}

int node_spawn(node *n, uint16_t to_node, const char *name, tr_msg *init, tr_addr asker,
               uint64_t ref)
{
    int rc = TR_EINVAL;
    size_t name_len;
    if (!n || !name_ok(name, &name_len))
        goto out;
    rc = TR_ELOCAL;
    if (init && (init->flags & TR_MSG_LOCAL))
        goto out;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    pack_name_and_payload(&pk, 4, name, name_len, init);
    msgpack_pack_uint32(&pk, init ? init->type : 0);
    msgpack_pack_uint64(&pk, ref);
    wire_header h = {.op = WIRE_SPAWN, .flags = msg_wire_flags(init), .from = asker.bits};
    rc = queue_packed(n, to_node, &h, &buf);
    msgpack_sbuffer_destroy(&buf);
out:
    tr_msg_unref(init);
    return rc;
}

int node_spawn_reply(node *n, uint16_t to_node, tr_addr asker, tr_addr spawned, uint64_t ref,
                     int error)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, ref);
    msgpack_pack_int32(&pk, error);
    wire_header h = {.op = WIRE_SPAWN_REPLY, .from = spawned.bits, .to = asker.bits};
    int rc = queue_packed(n, to_node, &h, &buf);
    msgpack_sbuffer_destroy(&buf);
    return rc;
}

/* ---- frames in -------------------------------------------------------------- */

static void broken(connection *c, const char *why)
{
    atomic_store_explicit(&c->cut, true, memory_order_relaxed); /* workers stop reading it */
    if (!c->why) {
        c->why = why;
        fprintf(stderr, "troupe: node %u: closing the connection to node %u: %s\n",
                (unsigned)c->node->id, (unsigned)c->peer, why);
    }
    c->ops->close(c->t);
}

static tr_msg *message_of(uint32_t type, uint16_t wire_flags, const void *body, size_t len)
{
    tr_msg *m = tr_msg_new(type, body, len);
    if (m && (wire_flags & WIRE_FLAG_MSGPACK))
        m->flags |= TR_MSG_MSGPACK;
    return m;
}

/* Decodes a control body of shape into f, or cuts the connection off. */
static bool control_in(connection *c, const wire_header *h, const unsigned char *body,
                       const char *shape, msgpack_unpacked *up, wire_field *f)
{
    const char *why = NULL;
    msgpack_unpacked_init(up);
    if (wire_array_decode(body, h->length, shape, up, f, &why) == 0)
        return true;
    msgpack_unpacked_destroy(up);
    broken(c, why);
    return false;
}

static void name_copy(char out[WIRE_NAME_MAX + 1], const wire_field *f)
{
    memcpy(out, f->ptr, f->len);
    out[f->len] = '\0';
}

static void named_send_in(connection *c, const wire_header *h, const unsigned char *body)
{
    msgpack_unpacked up;
    wire_field f[2];
    if (!control_in(c, h, body, "sb", &up, f))
        return;
    char name[WIRE_NAME_MAX + 1];
    name_copy(name, &f[0]);
    tr_msg *m = message_of(h->type, h->flags, f[1].ptr, f[1].len);
    msgpack_unpacked_destroy(&up);
    if (m)
        c->node->cb->deliver_named(c->node->arg, name, (tr_addr){h->from}, m);
}

static void spawn_in(connection *c, const wire_header *h, const unsigned char *body)
{
    msgpack_unpacked up;
    wire_field f[4];
    if (!control_in(c, h, body, "sbuu", &up, f))
        return;
    char name[WIRE_NAME_MAX + 1];
    name_copy(name, &f[0]);
    tr_msg *init = NULL;
    if (f[1].ptr && !(init = message_of((uint32_t)f[2].u, h->flags, f[1].ptr, f[1].len))) {
        msgpack_unpacked_destroy(&up);
        node_spawn_reply(c->node, c->peer, (tr_addr){h->from}, TR_ADDR_NONE, f[3].u, TR_ENOMEM);
        return;
    }
    msgpack_unpacked_destroy(&up);
    c->node->cb->spawn(c->node->arg, c->peer, name, init, (tr_addr){h->from}, f[3].u);
}

static void spawn_reply_in(connection *c, const wire_header *h, const unsigned char *body)
{
    msgpack_unpacked up;
    wire_field f[2];
    if (!control_in(c, h, body, "ui", &up, f))
        return;
    msgpack_unpacked_destroy(&up);
    c->node->cb->spawn_reply(c->node->arg, (tr_addr){h->to}, (tr_addr){h->from}, f[0].u,
                             (int)f[1].i);
}

/* A run of user-lane SEND frames to one actor, handed over together. */
#define BATCH_MAX 64

typedef struct batch {
    tr_addr to;
    unsigned n;
    node_item items[BATCH_MAX];
} batch;

static void batch_flush(connection *c, batch *b)
{
    if (b->n == 0)
        return;
    node *n = c->node;
    unsigned count = b->n;
    b->n = 0;
    if (n->cb->deliver_batch(n->arg, NULL, b->to, b->items, count) != 0) {
        for (unsigned i = 0; i < count; i++)
            tr_msg_unref(b->items[i].msg);
        broken(c, "a runtime message this peer may not send, or with a malformed payload");
    }
}

/* A SEND's ask reference, if its flags say it has one: moves body and len
 * past it. False when it is missing or zero. */
static bool ref_of(const wire_header *h, const unsigned char **body, size_t *len, uint64_t *ref)
{
    *ref = 0;
    if (!(h->flags & WIRE_FLAG_REF))
        return true;
    if (*len < sizeof *ref || (*ref = wire_get64(*body)) == 0)
        return false;
    *body += sizeof *ref;
    *len -= sizeof *ref;
    return true;
}

static void send_in(connection *c, batch *b, const wire_header *h, const unsigned char *body)
{
    node *n = c->node;
    uint64_t ref;
    size_t len = h->length;
    if (!ref_of(h, &body, &len, &ref)) {
        broken(c, "a send with a missing or zero ask reference");
        return;
    }
    tr_msg *m = message_of(h->type, h->flags, body, len);
    if (!m)
        return;
    if (!(h->flags & WIRE_FLAG_SYSTEM)) { /* user lane: batched per receiver */
        if (b->n == BATCH_MAX || (b->n && b->to.bits != h->to))
            batch_flush(c, b);
        if (c->why) {
            tr_msg_unref(m);
            return;
        }
        b->to = (tr_addr){h->to};
        b->items[b->n++] = (node_item){(tr_addr){h->from}, m, ref};
        return;
    }
    batch_flush(c, b); /* a system-lane message keeps its place after the user ones */
    if (!c->why && n->cb->deliver(n->arg, (tr_addr){h->from}, (tr_addr){h->to}, m, true, ref) != 0)
        broken(c, "a runtime message this peer may not send, or with a malformed payload");
    else if (c->why)
        tr_msg_unref(m);
}

static void hello_in(connection *c, const wire_header *h, const unsigned char *body)
{
    node *n = c->node;
    wire_hello hello;
    const char *why = "expected a HELLO first";
    if (h->op != WIRE_HELLO || wire_hello_decode(body, h->length, &hello, &why) != 0) {
        broken(c, why);
        return;
    }
    if (hello.node == 0 || hello.node == n->id || route(n, hello.node)) {
        broken(c, "the peer's node number is 0, ours, or already connected");
        return;
    }
    if (c->expected && hello.node != c->expected) {
        broken(c, "the peer is not the node expected on this connection");
        return;
    }
    c->peer = hello.node;
    n->cb->connection_up(n->arg, c->peer);
    handshake_over(n, c->peer);
    lane_set(n, c->peer, c); /* after what waited: direct sends come behind it */
}

static void frame_in(connection *c, batch *b, const wire_header *h, const unsigned char *body)
{
    if (c->peer == 0) { /* the first frame must be the peer's HELLO */
        hello_in(c, h, body);
        return;
    }
    if (h->op == WIRE_SEND) {
        send_in(c, b, h, body);
        return;
    }
    batch_flush(c, b); /* what came before goes first */
    if (c->why)
        return;
    switch (h->op) {
    case WIRE_NAMED_SEND:
        named_send_in(c, h, body);
        return;
    case WIRE_SPAWN:
        spawn_in(c, h, body);
        return;
    case WIRE_SPAWN_REPLY:
        spawn_reply_in(c, h, body);
        return;
    case WIRE_HEARTBEAT:
        if (h->length != 0)
            broken(c, "a heartbeat with a body");
        return;
    case WIRE_GOODBYE:
        c->ops->close(c->t);
        return;
    default:
        broken(c, h->op == WIRE_HELLO ? "a second HELLO" : "an operation this node does not support");
    }
}

static void on_data(void *owner, const void *data, size_t len)
{
    connection *c = owner;
    if (c->why)
        return; /* closing: ignore the rest */
    c->last_in = uv_now(c->node->loop);
    wire_header h;
    const unsigned char *body, *at = data;
    const char *why = NULL;
    int rc;
    batch b;
    b.n = 0;
    while (!c->why && (rc = wire_reader_next_in(&c->reader, &at, &len, &h, &body, &why)) == 1)
        frame_in(c, &b, &h, body);
    if (!c->why)
        batch_flush(c, &b);
    for (unsigned i = 0; i < b.n; i++) /* cut off meanwhile: what was gathered goes */
        tr_msg_unref(b.items[i].msg);
    if (!c->why && rc < 0)
        broken(c, rc == TR_ENOMEM ? "out of memory" : why);
}

static void on_closed(void *owner, int error)
{
    connection *c = owner;
    node *n = c->node;
    const char *why = c->why;
    if (!why && wire_reader_finish(&c->reader, &why) != 0)
        fprintf(stderr, "troupe: node %u: connection to node %u: %s\n", (unsigned)n->id,
                (unsigned)c->peer, why);
    else if (!why && error && error != UV_ECONNRESET && error != UV_EPIPE) /* not just gone */
        fprintf(stderr, "troupe: node %u: connection to node %u lost: %s\n", (unsigned)n->id,
                (unsigned)c->peer, uv_strerror(error));
    for (connection **p = &n->connections; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    if (c->peer == 0) /* it never finished its handshake */
        handshake_over(n, 0);
    else {
        lane_set(n, c->peer, NULL); /* no sender nor reader finds it after this */
        release_waiters(n, c->peer); /* nothing will drain: let them go on */
    }
    pthread_mutex_lock(&c->read_lock); /* a worker still reading has finished */
    pthread_mutex_unlock(&c->read_lock);
    pthread_mutex_destroy(&c->read_lock);
    n->cb->connection_closed(n->arg, c->peer ? c->peer : c->expected, why ? TR_EPROTO : error,
                             why);
    wire_reader_fini(&c->reader);
    free(c);
}

/* read's take on the loop: everything, through the reader. */
static size_t take_all(void *arg, const void *data, size_t len)
{
    on_data(arg, data, len);
    return len;
}

static bool on_readable(void *owner, bool wait)
{
    connection *c = owner;
    if (!wait && pthread_mutex_trylock(&c->read_lock) != 0)
        return true; /* a worker is reading */
    if (wait)
        pthread_mutex_lock(&c->read_lock);
    size_t took = c->ops->read(c->t, take_all, c, true);
    pthread_mutex_unlock(&c->read_lock);
    return took > 0;
}

/* Whether a worker polls c, so that the loop need not spin on it. */
static bool watched(void *owner)
{
    connection *c = owner;
    return c->polled && atomic_load(&c->node->poller) != NULL;
}

static void on_drained(void *owner)
{
    connection *c = owner;
    if (c->peer)
        release_waiters(c->node, c->peer);
}

static const transport_callbacks connection_callbacks = {
    .on_data = on_data, .on_readable = on_readable, .watched = watched,
    .on_drained = on_drained, .on_closed = on_closed};

/* ---- workers reading ------------------------------------------------------------ */

typedef struct worker_read {
    connection *c;
    void *worker;
    bool delivered;
    batch b;
} worker_read;

static void worker_flush(worker_read *wr)
{
    batch *b = &wr->b;
    if (b->n == 0)
        return;
    node *n = wr->c->node;
    unsigned count = b->n;
    b->n = 0;
    wr->delivered = true;
    /* Plain user messages only, which the actor layer always accepts. */
    int rc = n->cb->deliver_batch(n->arg, wr->worker, b->to, b->items, count);
    assert(rc == 0);
    (void)rc;
}

/* read's take on a worker: the whole plain user-lane SENDs at the front. */
static size_t take_sends(void *arg, const void *data, size_t len)
{
    worker_read *wr = arg;
    const unsigned char *p = data;
    size_t at = 0;
    for (;;) {
        wire_header h;
        const unsigned char *body;
        const char *why;
        if (wire_frame_at(p + at, len - at, wr->c->reader.max_body, &h, &body, &why) != 1 ||
            h.op != WIRE_SEND || (h.flags & WIRE_FLAG_SYSTEM) || h.type >= TR_MSG_SYSTEM)
            break; /* the loop's to handle, or to refuse */
        size_t body_len = h.length;
        uint64_t ref;
        if (!ref_of(&h, &body, &body_len, &ref))
            break;
        tr_msg *m = message_of(h.type, h.flags, body, body_len);
        if (!m)
            break; /* out of memory: the loop will try */
        batch *b = &wr->b;
        if (b->n == BATCH_MAX || (b->n && b->to.bits != h.to))
            worker_flush(wr);
        b->to = (tr_addr){h.to};
        b->items[b->n++] = (node_item){(tr_addr){h.from}, m, ref};
        at += WIRE_HEADER_SIZE + h.length;
    }
    worker_flush(wr);
    return at;
}

/* Reads l's connection if no one else is and nothing of a frame waits in
 * the loop's reader. */
static bool poll_lane(lane *l, void *worker)
{
    if (pthread_mutex_trylock(&l->poll_lock) != 0)
        return false;
    bool delivered = false;
    connection *c = l->reader;
    if (c && !atomic_load_explicit(&c->cut, memory_order_relaxed) &&
        pthread_mutex_trylock(&c->read_lock) == 0) {
        if (c->reader.start == c->reader.end && !c->reader.failed) {
            worker_read wr = {.c = c, .worker = worker};
            if (c->ops->read(c->t, take_sends, &wr, false) > 0)
                atomic_store_explicit(&c->heard, true, memory_order_relaxed);
            delivered = wr.delivered;
        }
        pthread_mutex_unlock(&c->read_lock);
    }
    pthread_mutex_unlock(&l->poll_lock);
    return delivered;
}

bool node_poll(node *n, void *worker)
{
    void *poller = atomic_load_explicit(&n->poller, memory_order_relaxed);
    if (poller != worker &&
        (poller || !atomic_compare_exchange_strong(&n->poller, &poller, worker)))
        return false; /* another worker polls */
    /* acquire: pairs with the release in lane_set. */
    unsigned count = atomic_load_explicit(&n->npolled, memory_order_acquire);
    bool delivered = false;
    for (unsigned i = 0; i < count; i++)
        delivered |= poll_lane(atomic_load_explicit(&n->polled[i], memory_order_relaxed), worker);
    return delivered;
}

void node_poll_leave(node *n, void *worker, bool parking)
{
    void *expected = worker;
    if (!atomic_compare_exchange_strong(&n->poller, &expected, NULL) || !parking)
        return; /* not the poller; or back soon, and the loop looks meanwhile */
    /* No worker watches now: the loop must, at once (it may be waiting for
     * its next look, or asleep without asking writers to wake it). */
    unsigned count = atomic_load_explicit(&n->npolled, memory_order_acquire);
    for (unsigned i = 0; i < count; i++) {
        lane *l = atomic_load_explicit(&n->polled[i], memory_order_relaxed);
        pthread_mutex_lock(&l->poll_lock);
        if (l->reader)
            l->reader->ops->wake(l->reader->t);
        pthread_mutex_unlock(&l->poll_lock);
    }
}

/* ---- heartbeats ------------------------------------------------------------------ */

/* A frame with no body (heartbeat, hello's header aside) to c. */
static void empty_frame_out(connection *c, uint8_t op)
{
    wire_header h = {.op = op};
    size_t len;
    unsigned char *bytes = frame_bytes(&h, NULL, &len);
    if (bytes)
        conn_write(c, bytes, len);
}

static void on_beat(uv_timer_t *t)
{
    node *n = ((beat_timer *)t->data)->node;
    uint64_t now = uv_now(n->loop), beat = n->heartbeat_ms;
    for (connection *c = n->connections, *next; c; c = next) {
        next = c->next; /* broken() only starts closing: c stays listed */
        if (c->why)
            continue;
        if (atomic_exchange_explicit(&c->heard, false, memory_order_relaxed))
            c->last_in = now; /* workers read from it */
        /* A peer still starting (a new process, maybe under a sanitizer on a
         * loaded machine) gets longer to say hello than one to keep talking. */
        uint64_t limit = c->peer ? NODE_SILENT_BEATS * beat
                                 : (NODE_HELLO_MS > NODE_SILENT_BEATS * beat ? NODE_HELLO_MS
                                                                            : NODE_SILENT_BEATS * beat);
        if (now - c->last_in >= limit)
            broken(c, c->peer ? "the peer fell silent (no heartbeat)" : "no HELLO in time");
        else if (now - c->last_out >= beat)
            empty_frame_out(c, WIRE_HEARTBEAT);
    }
}

static void free_beat(uv_handle_t *h) { free(h->data); }

static void start_beating(node *n, uv_loop_t *loop)
{
    if (n->beat)
        return;
    n->loop = loop;
    n->beat = calloc(1, sizeof *n->beat);
    if (!n->beat)
        return; /* no heartbeats: only a closed stream will tell a peer is down */
    n->beat->closable.on_close = free_beat;
    n->beat->node = n;
    uv_timer_init(loop, &n->beat->timer);
    n->beat->timer.data = n->beat; /* the loop's close-all finds the closable here */
    uv_timer_start(&n->beat->timer, on_beat, n->heartbeat_ms, n->heartbeat_ms);
}

/* ---- connecting ---------------------------------------------------------------- */

typedef struct connect_task {
    io_task task;
    node *node;
    const transport_ops *ops;
    int fd;
    uint16_t expected;
} connect_task;

static void hello_out(connection *c)
{
    wire_hello hello = {.version = WIRE_VERSION, .node = c->node->id};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    wire_hello_encode(&hello, &buf);
    wire_header h = {.op = WIRE_HELLO, .length = (uint32_t)buf.size};
    size_t len;
    unsigned char *bytes = frame_bytes(&h, buf.data, &len);
    if (bytes)
        conn_write(c, bytes, len);
    msgpack_sbuffer_destroy(&buf);
}

static void connect_on_loop(io_task *task, uv_loop_t *loop)
{
    connect_task *ct = container_of(task, connect_task, task);
    node *n = ct->node;
    connection *c = loop ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        close(ct->fd);
        atomic_fetch_sub(&n->handshaking, 1);
        n->cb->connection_closed(n->arg, ct->expected, TR_ENOMEM, "could not open the connection");
        free(ct);
        return;
    }
    start_beating(n, loop);
    pthread_mutex_init(&c->read_lock, NULL);
    c->node = n;
    c->ops = ct->ops;
    c->expected = ct->expected;
    c->last_in = c->last_out = uv_now(loop);
    wire_reader_init(&c->reader, 0);
    int rc = ct->ops->open(loop, ct->fd, &connection_callbacks, c, &c->t);
    free(ct);
    if (rc != 0) {
        wire_reader_fini(&c->reader);
        pthread_mutex_destroy(&c->read_lock);
        handshake_over(n, 0);
        n->cb->connection_closed(n->arg, c->expected, TR_EINVAL,
                                 "the transport could not open the endpoint");
        free(c);
        return;
    }
    c->next = n->connections;
    n->connections = c;
    hello_out(c);
}

int node_connect(node *n, const char *scheme, int fd, uint16_t expected)
{
    const transport_ops *ops = transport_find(scheme);
    if (!n || !ops || fd < 0)
        return TR_EINVAL;
    connect_task *ct = malloc(sizeof *ct);
    if (!ct)
        return TR_ENOMEM;
    *ct = (connect_task){.task.run = connect_on_loop, .node = n, .ops = ops, .fd = fd,
                         .expected = expected};
    /* counted from now, so a send made right after waits for this handshake */
    atomic_fetch_add(&n->handshaking, 1);
    io_loop_submit(n->io, &ct->task);
    return 0;
}
