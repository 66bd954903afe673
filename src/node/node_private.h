/* The node layer's own definitions, shared by node.c (connections, frames
 * in), send.c (frames out) and poll.c (workers reading). */
#ifndef TR_NODE_PRIVATE_H
#define TR_NODE_PRIVATE_H

#include "node.h"

#include "../transport/transport.h"
#include "wire.h"

#include "../msg/msg.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* A run of user-lane SEND frames to one actor, handed over together. */
#define BATCH_MAX 64

typedef struct batch {
    tr_addr to;
    unsigned n;
    node_item items[BATCH_MAX];
} batch;

/* A connection to a peer node: the loop's, but for what its lane lets
 * senders and readers on other threads use. */
typedef struct connection {
    struct connection *next;
    node *node;
    const transport_ops *ops;
    transport *t;
    wire_reader reader;
    uint16_t peer;              /* 0 until the HELLO arrived */
    char peer_name[WIRE_NAME_MAX + 1]; /* the name in its HELLO, for logs */
    uint16_t expected;          /* the peer it must be, or 0 for any */
    const char *why;            /* the protocol error that closed it, if any */
    uint64_t last_in, last_out; /* loop time (ms) of the last frame each way */
    pthread_mutex_t read_lock;  /* one reader at a time: the loop or a worker */
    _Atomic bool cut;           /* closing: workers read no more */
    /* Loop thread: BYE_SAID once we said GOODBYE (then only the peer's
     * GOODBYE is read), BYE_HEARD once the peer did (nothing more is). */
    enum { BYE_NONE, BYE_SAID, BYE_HEARD } bye;
    _Atomic bool heard;         /* a worker read frames since the last heartbeat check */
    bool polled;                /* loop thread: workers may read it (its lane's reader) */
    bool last_read;             /* loop thread: the transport is ending: take every byte */
    /* Loop thread: the node this connection's HELLO named while another
     * connection to that node was still up (a restarted process, before its
     * old connection's end was seen), and since when. Its frames wait in
     * the reader until the old connection ends. */
    uint16_t claims;
    uint64_t claimed_at;
    /* The local actor whose drain reading waits for (an address's bits), or
     * 0: set by the reader that delivered to it overloaded, cleared on the
     * loop (see node_resume). While set, workers do not read the
     * connection and the loop reads it only at its end. */
    _Atomic uint64_t held_on;
    bool paused; /* loop thread: the transport's pause is on */
    /* Messages read for a bounded mailbox that had no room for them: kept
     * here, ahead of anything read after them, while the connection holds
     * on that actor (see connection_deliver). The reader's, like reader. */
    batch kept;
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
    char name[WIRE_NAME_MAX + 1];
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
    struct goodbye *goodbye; /* loop thread: ending every connection (node_goodbye) */
    io_task resume;             /* node_resume's look at held connections */
    _Atomic bool resume_queued; /* resume is queued and has not started */
    _Atomic bool stopped;       /* the workers have stopped: no connection holds */
    _Atomic uint64_t holds;     /* times a connection's reading waited for an actor */
};

/* A frame on its way to the loop thread. */
typedef struct frame_task {
    io_task task;
    struct frame_task *next_waiting;
    node *node;
    uint16_t to_node;
    size_t len;
    unsigned char *bytes; /* header and body, malloc'd: handed to the transport */
} frame_task;

/* node.c: the connection to peer (loop thread); c stops reading until the
 * overloaded actor `to` drains (the thread that read c, holding its read
 * lock on a worker); b's messages to their actor (worker: node_poll's, or
 * NULL on the loop; must: every one taken, room or not), whatever a full
 * bounded mailbox did not take kept in c while c holds on it, returning 0
 * or TR_EPROTO (b's messages still the caller's; b is empty otherwise);
 * a SEND's ask reference, moving body and len past it (false when missing
 * or zero). */
connection *node_route(node *n, uint16_t peer);
void connection_hold(connection *c, tr_addr to);
int connection_deliver(connection *c, batch *b, void *worker, bool must);
bool node_ask_ref(const wire_header *h, const unsigned char **body, size_t *len, uint64_t *ref);

/* Inline: a worker reading shared memory asks these once a frame. */
static inline bool connection_held(const connection *c)
{
    return atomic_load_explicit(&c->held_on, memory_order_relaxed) != 0;
}

static inline tr_msg *node_message_of(uint32_t type, uint16_t wire_flags, const void *body,
                                      size_t len)
{
    tr_msg *m = msg_alloc(type, len);
    if (!m)
        return NULL;
    if (len)
        memcpy(m->data, body, len);
    if (wire_flags & WIRE_FLAG_MSGPACK)
        m->flags |= TR_MSG_MSGPACK;
    return m;
}

/* send.c, loop thread: opens or closes peer's lane (c up, or NULL); hands
 * the waiters of its backlog back; a handshake ended (peer known, or 0);
 * writes a malloc'd frame to c; the loop's own frames; drops a frame. */
void lane_set(node *n, uint16_t peer, connection *c);
void lane_release_waiters(node *n, uint16_t peer);
void handshake_over(node *n, uint16_t peer);
void connection_write(connection *c, void *bytes, size_t len);
unsigned char *frame_bytes(const wire_header *h, const void *body, size_t *len);
void frame_drop(frame_task *f);

#endif
