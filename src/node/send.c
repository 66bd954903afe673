/* Frames out: lanes, gathering, sending, flow control.
 *
 * Once a peer's connection is up and nothing for that peer is still queued
 * for the loop, a sender on any thread hands its frame to the transport
 * itself (through the peer's lane, under the lane's lock), with no
 * allocation and no hop through the loop thread. Until then frames go to
 * the loop as tasks, and the lane counts them, so a direct send never
 * overtakes an earlier one. */
#include "node_private.h"

#include <stdlib.h>
#include <string.h>

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
void lane_release_waiters(node *n, uint16_t peer)
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
void lane_set(node *n, uint16_t peer, connection *c)
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
void connection_write(connection *c, void *bytes, size_t len)
{
    c->last_out = uv_now(c->node->loop);
    c->ops->send(c->t, bytes, len, NULL, 0, true);
    free(bytes);
}

void frame_drop(frame_task *f)
{
    free(f->bytes);
    atomic_fetch_add_explicit(&f->node->dropped, 1, memory_order_relaxed);
    free(f);
}

static void write_on_loop(io_task *task, uv_loop_t *loop)
{
    frame_task *f = container_of(task, frame_task, task);
    node *n = f->node;
    connection *c = loop ? node_route(n, f->to_node) : NULL;
    if (c) {
        connection_write(c, f->bytes, f->len);
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
        frame_drop(f);
    }
}

/* A handshake ended (peer known, or 0 if it failed): send what waited for
 * that peer, in order; once no handshake is left, drop the rest. */
void handshake_over(node *n, uint16_t peer)
{
    unsigned left = atomic_fetch_sub(&n->handshaking, 1) - 1;
    connection *c = peer ? node_route(n, peer) : NULL;
    frame_task **p = &n->waiting;
    while (*p) {
        frame_task *f = *p;
        if (c && f->to_node == peer) {
            *p = f->next_waiting;
            connection_write(c, f->bytes, f->len);
            lane_done(n, f->to_node);
            free(f);
        } else if (left == 0) {
            *p = f->next_waiting;
            lane_done(n, f->to_node);
            frame_drop(f);
        } else {
            p = &f->next_waiting;
        }
    }
}

/* Header + body (h->length bytes, or none) in one malloc'd buffer of *len
 * bytes: the loop's own frames. NULL when out of memory. */
unsigned char *frame_bytes(const wire_header *h, const void *body, size_t *len)
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

_Thread_local uint16_t node_congested;

void node_batch_begin(void)
{
    gathered.on = true;
    node_congested = 0; /* only what this batch sends counts */
}

uint16_t node_batch_end(void)
{
    batch_out();
    gathered.on = false;
    uint16_t congested = node_congested;
    node_congested = 0;
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
                node_congested = to_node;
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
    if (msg)
        msg_unref(msg); /* inline: once a message */
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
