/* Connections between nodes: handshake, framing, routing. */
#include "node.h"

#include "../transport/transport.h"
#include "wire.h"

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
    uint16_t peer; /* 0 until the HELLO arrived */
    const char *why; /* the protocol error that closed it, if any */
} connection;

struct node {
    uint16_t id;
    io_loop *io;
    const node_callbacks *cb;
    void *arg;
    /* Loop thread only. */
    connection *connections;
    unsigned handshaking;        /* connections whose peer is not known yet */
    struct frame_task *waiting;  /* frames for an unknown node, while handshaking */
    _Atomic uint64_t dropped;
};

int node_new(uint16_t id, io_loop *io, const node_callbacks *cb, void *arg, node **out)
{
    if (id == 0 || !io || !cb)
        return TR_EINVAL;
    node *n = calloc(1, sizeof *n);
    if (!n)
        return TR_ENOMEM;
    *n = (node){.id = id, .io = io, .cb = cb, .arg = arg};
    atomic_init(&n->dropped, 0);
    *out = n;
    return 0;
}

uint64_t node_dropped(node *n) { return atomic_load(&n->dropped); }

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
        c->ops->write(c->t, f->bytes, f->len);
        free(f);
    } else if (loop && n->handshaking > 0) { /* its peer may be the one greeting us */
        frame_task **tail = &n->waiting;
        while (*tail)
            tail = &(*tail)->next_waiting;
        f->next_waiting = NULL;
        *tail = f;
    } else {
        drop(f);
    }
}

/* A handshake ended (peer known, or 0 if it failed): send what waited for
 * that peer, in order; once no handshake is left, drop the rest. */
static void handshake_over(node *n, uint16_t peer)
{
    n->handshaking--;
    connection *c = peer ? route(n, peer) : NULL;
    frame_task **p = &n->waiting;
    while (*p) {
        frame_task *f = *p;
        if (c && f->to_node == peer) {
            *p = f->next_waiting;
            c->ops->write(c->t, f->bytes, f->len);
            free(f);
        } else if (n->handshaking == 0) {
            *p = f->next_waiting;
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
    free(n);
}

/* Builds header + body into one buffer and hands it to the loop. */
static int queue_frame(node *n, uint16_t to_node, const wire_header *h, const void *body)
{
    frame_task *f = malloc(sizeof *f);
    unsigned char *bytes = malloc(WIRE_HEADER_SIZE + h->length);
    if (!f || !bytes) {
        free(f);
        free(bytes);
        return TR_ENOMEM;
    }
    wire_encode_header(h, bytes);
    if (h->length)
        memcpy(bytes + WIRE_HEADER_SIZE, body, h->length);
    *f = (frame_task){.task.run = write_on_loop, .node = n, .to_node = to_node,
                      .len = WIRE_HEADER_SIZE + h->length, .bytes = bytes};
    io_loop_submit(n->io, &f->task);
    return 0;
}

int node_send(node *n, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane)
{
    int rc = TR_EINVAL;
    if (!n || !msg)
        goto out;
    rc = TR_ELOCAL;
    if (msg->flags & TR_MSG_LOCAL)
        goto out;
    wire_header h = {.op = WIRE_SEND,
                     .flags = (uint16_t)((msg->flags & TR_MSG_MSGPACK ? WIRE_FLAG_MSGPACK : 0) |
                                         (system_lane ? WIRE_FLAG_SYSTEM : 0)),
                     .length = msg->len, .type = msg->type, .from = from.bits, .to = to.bits};
    rc = queue_frame(n, (uint16_t)(to.bits >> 48), &h, msg->data);
out:
    tr_msg_unref(msg);
    return rc;
}

int node_send_named(node *n, uint16_t to_node, const char *name, tr_addr from, tr_msg *msg)
{
    int rc = TR_EINVAL;
    size_t name_len = name ? strlen(name) : 0;
    if (!n || !msg || name_len == 0 || name_len > WIRE_NAME_MAX)
        goto out;
    rc = TR_ELOCAL;
    if (msg->flags & TR_MSG_LOCAL)
        goto out;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, name, name_len);
    msgpack_pack_bin_with_body(&pk, msg->data, msg->len);
    wire_header h = {.op = WIRE_NAMED_SEND,
                     .flags = msg->flags & TR_MSG_MSGPACK ? WIRE_FLAG_MSGPACK : 0,
                     .length = (uint32_t)buf.size, .type = msg->type, .from = from.bits};
    rc = buf.size > WIRE_DEFAULT_MAX_BODY ? TR_ETOOBIG : queue_frame(n, to_node, &h, buf.data);
    msgpack_sbuffer_destroy(&buf);
out:
    tr_msg_unref(msg);
    return rc;
}

/* ---- frames in -------------------------------------------------------------- */

static void broken(connection *c, const char *why)
{
    if (!c->why) {
        c->why = why;
        fprintf(stderr, "troupe: node %u: closing the connection to node %u: %s\n",
                (unsigned)c->node->id, (unsigned)c->peer, why);
    }
    c->ops->close(c->t);
}

static tr_msg *message_of(const wire_header *h, const void *body, size_t len)
{
    tr_msg *m = tr_msg_new(h->type, body, len);
    if (m && (h->flags & WIRE_FLAG_MSGPACK))
        m->flags |= TR_MSG_MSGPACK;
    return m;
}

static void named_send_in(connection *c, const wire_header *h, const unsigned char *body)
{
    node *n = c->node;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    const msgpack_object *o = &up.data;
    if (msgpack_check(body, h->length) != 0 ||
        msgpack_unpack_next(&up, (const char *)body, h->length, &off) != MSGPACK_UNPACK_SUCCESS ||
        o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        o->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
        o->via.array.ptr[0].via.str.size == 0 || o->via.array.ptr[0].via.str.size > WIRE_NAME_MAX ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_BIN) {
        msgpack_unpacked_destroy(&up);
        broken(c, "malformed named send");
        return;
    }
    char name[WIRE_NAME_MAX + 1];
    memcpy(name, o->via.array.ptr[0].via.str.ptr, o->via.array.ptr[0].via.str.size);
    name[o->via.array.ptr[0].via.str.size] = '\0';
    tr_msg *m = message_of(h, o->via.array.ptr[1].via.bin.ptr, o->via.array.ptr[1].via.bin.size);
    msgpack_unpacked_destroy(&up);
    if (m)
        n->cb->deliver_named(n->arg, name, (tr_addr){h->from}, m);
}

static void frame_in(connection *c, const wire_header *h, const unsigned char *body)
{
    node *n = c->node;
    if (c->peer == 0) { /* the first frame must be the peer's HELLO */
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
        c->peer = hello.node;
        handshake_over(n, c->peer);
        return;
    }
    switch (h->op) {
    case WIRE_SEND: {
        tr_msg *m = message_of(h, body, h->length);
        if (m)
            n->cb->deliver(n->arg, (tr_addr){h->from}, (tr_addr){h->to}, m,
                           h->flags & WIRE_FLAG_SYSTEM);
        return;
    }
    case WIRE_NAMED_SEND:
        named_send_in(c, h, body);
        return;
    case WIRE_HEARTBEAT:
        return;
    case WIRE_GOODBYE:
        c->ops->close(c->t);
        return;
    default:
        broken(c, h->op == WIRE_HELLO ? "a second HELLO" : "an operation this node does not support yet");
    }
}

static void on_data(void *owner, const void *data, size_t len)
{
    connection *c = owner;
    if (c->why)
        return; /* closing: ignore the rest */
    if (wire_reader_feed(&c->reader, data, len) != 0) {
        broken(c, "out of memory");
        return;
    }
    wire_header h;
    const unsigned char *body;
    const char *why = NULL;
    int rc;
    while (!c->why && (rc = wire_reader_next(&c->reader, &h, &body, &why)) == 1)
        frame_in(c, &h, body);
    if (!c->why && rc < 0)
        broken(c, why);
}

static void on_closed(void *owner, int error)
{
    connection *c = owner;
    node *n = c->node;
    const char *why = c->why;
    if (!why && wire_reader_finish(&c->reader, &why) != 0)
        fprintf(stderr, "troupe: node %u: connection to node %u: %s\n", (unsigned)n->id,
                (unsigned)c->peer, why);
    for (connection **p = &n->connections; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    if (c->peer == 0) /* it never finished its handshake */
        handshake_over(n, 0);
    n->cb->connection_closed(n->arg, c->peer, why ? TR_EPROTO : error, why);
    wire_reader_fini(&c->reader);
    free(c);
}

static const transport_callbacks connection_callbacks = {.on_data = on_data, .on_closed = on_closed};

/* ---- connecting ---------------------------------------------------------------- */

typedef struct connect_task {
    io_task task;
    node *node;
    const transport_ops *ops;
    int fd;
} connect_task;

static void hello_out(connection *c)
{
    wire_hello hello = {.version = WIRE_VERSION, .node = c->node->id};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    wire_hello_encode(&hello, &buf);
    unsigned char *bytes = malloc(WIRE_HEADER_SIZE + buf.size);
    if (bytes) {
        wire_header h = {.op = WIRE_HELLO, .length = (uint32_t)buf.size};
        wire_encode_header(&h, bytes);
        memcpy(bytes + WIRE_HEADER_SIZE, buf.data, buf.size);
        c->ops->write(c->t, bytes, WIRE_HEADER_SIZE + buf.size);
    }
    msgpack_sbuffer_destroy(&buf);
}

static void connect_on_loop(io_task *task, uv_loop_t *loop)
{
    connect_task *ct = container_of(task, connect_task, task);
    node *n = ct->node;
    connection *c = loop ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        close(ct->fd);
        n->cb->connection_closed(n->arg, 0, TR_ENOMEM, "could not open the connection");
        free(ct);
        return;
    }
    c->node = n;
    c->ops = ct->ops;
    wire_reader_init(&c->reader, 0);
    int rc = ct->ops->open(loop, ct->fd, &connection_callbacks, c, &c->t);
    free(ct);
    if (rc != 0) {
        wire_reader_fini(&c->reader);
        free(c);
        n->cb->connection_closed(n->arg, 0, TR_EINVAL, "the transport could not open the endpoint");
        return;
    }
    c->next = n->connections;
    n->connections = c;
    n->handshaking++;
    hello_out(c);
}

int node_connect(node *n, const char *scheme, int fd)
{
    const transport_ops *ops = transport_find(scheme);
    if (!n || !ops || fd < 0)
        return TR_EINVAL;
    connect_task *ct = malloc(sizeof *ct);
    if (!ct)
        return TR_ENOMEM;
    *ct = (connect_task){.task.run = connect_on_loop, .node = n, .ops = ops, .fd = fd};
    io_loop_submit(n->io, &ct->task);
    return 0;
}
