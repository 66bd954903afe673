/* A node: this process's identity among others, its connections to peer
 * nodes, and routing by an address's node number. Connections live on the
 * io loop thread; other threads send straight to an open connection or
 * hand frames over as io tasks, in order, so per sender–receiver pair order
 * holds across nodes. Idle workers may read shared-memory connections
 * (node_poll). */
#ifndef TR_NODE_H
#define TR_NODE_H

#include "../io/loop.h"
#include "../msg/msg.h"

#include <stdbool.h>
#include <stdint.h>

#include "troupe.h"

typedef struct node node;

/* One message of a batch for one actor. */
typedef struct node_item {
    tr_addr from;
    tr_msg *msg;
    uint64_t ref; /* ask reference, or 0 */
} node_item;

/* How the node hands what arrives to the actor layer (loop thread). */
typedef struct node_callbacks {
    /* A message for a local actor, with its ask reference (0 for none); takes
     * msg. Returns 0, or TR_EPROTO when the peer may not send that (the
     * connection is then cut off). */
    int (*deliver)(void *arg, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane,
                   uint64_t ref);
    /* n user-lane messages for one local actor, in order (a run of SEND
     * frames to it). Takes the first *taken of them: all n, but for a
     * bounded mailbox that refuses when full and has no room for them all
     * (with must, it takes them all anyway); the rest stay the caller's,
     * to offer again once that actor has drained (see hold). Returns 0,
     * NODE_OVERLOADED when the actor cannot keep up (it took fewer, or it
     * is behind: see hold), or TR_EPROTO having taken none (the peer may
     * not send one of them). worker is what the caller of node_poll
     * passed, or NULL on the loop thread. Called on the loop thread, or on
     * the thread of node_poll. */
    int (*deliver_batch)(void *arg, void *worker, tr_addr to, node_item *items, unsigned n,
                         bool must, unsigned *taken);
    /* The connection that just delivered to the overloaded actor `to`
     * stops reading until `to` drains: true if that stands (node_resume
     * comes once it has drained or ended), false if it is too late (it
     * drained, ended, or is parked itself). Same threads as deliver_batch. */
    bool (*hold)(void *arg, tr_addr to);
    /* Whether reading still waits for `to` (its drain not yet seen). Loop
     * thread. */
    bool (*holding)(void *arg, tr_addr to);
    /* The local actor registered as name (a named send's receiver, which
     * deliver_batch then gets like any other), or TR_ADDR_NONE: no one has
     * that name, and the message is a dead letter (counted here). Loop
     * thread. */
    tr_addr (*whereis)(void *arg, const char *name);
    /* Peer asks us to spawn the behaviour registered as name, with init (may
     * be NULL; taken); the answer goes back with node_spawn_reply. */
    void (*spawn)(void *arg, uint16_t peer, const char *name, tr_msg *init, tr_addr asker,
                  uint64_t ref);
    /* The answer to our spawn request ref made by asker: the new actor, or
     * error (a TR_E code). */
    void (*spawn_reply)(void *arg, tr_addr asker, tr_addr spawned, uint64_t ref, int error);
    /* A waiter of node_wait_drained may go on. */
    void (*drained)(void *arg, void *waiter);
    /* A connection finished its handshake with peer, which calls itself
     * name (at most WIRE_NAME_MAX bytes; borrowed for the call). */
    void (*connection_up)(void *arg, uint16_t peer, const char *name);
    /* A connection ended: peer is 0 if the handshake never finished (and no
     * peer was expected); error 0
     * for an orderly end; why says what went wrong (or NULL). */
    void (*connection_closed)(void *arg, uint16_t peer, int error, const char *why);
} node_callbacks;

/* A node numbered id (1..65535) and called name (1 to 63 bytes, copied;
 * sent in its handshakes) on io; heartbeat_ms apart, an idle
 * connection sends a heartbeat, and a peer silent for NODE_SILENT_BEATS of
 * them is cut off as down. Returns 0, TR_EINVAL or TR_ENOMEM. */
#define NODE_SILENT_BEATS 4
#define NODE_OVERLOADED 1 /* deliver_batch: the receiver cannot keep up */
#define NODE_HELLO_MS 30000 /* at least this long for a new connection's HELLO */
int node_new(uint16_t id, const char *name, uint32_t heartbeat_ms, io_loop *io, const node_callbacks *cb,
             void *arg, node **out);

/* Ends every connection in order: after what was sent to it, a peer gets a
 * GOODBYE, and the node waits (at most NODE_SILENT_BEATS heartbeats) for
 * the peer to close in answer, so that everything sent before this
 * arrives. Frames coming in meanwhile are ignored. Call once no worker
 * runs (after tr_system_run returned), from a thread other than the loop.
 * Blocks until every connection has closed. Accepts NULL. */
void node_goodbye(node *n);

/* An actor that held connections (see hold) drained or ended: the loop
 * reads them again. Any thread. */
void node_resume(node *n);

/* Whether the system's workers run (the default) or have stopped: while
 * they are stopped no actor drains, so no connection holds for one (every
 * held connection reads again, and a peer's goodbye is not left unread).
 * Any thread. Accepts NULL. */
void node_set_running(node *n, bool running);

/* Frees the node; its io loop must be stopped first (which closes every
 * connection). Accepts NULL. */
void node_free(node *n);

/* Opens a connection over fd with the transport of scheme and greets the
 * peer, which must be node `expected` (0: any). Takes fd. Returns 0 (the
 * rest happens on the loop), TR_EINVAL for an unknown scheme, or TR_ENOMEM.
 * A connection to an expected peer that ends before its handshake is
 * reported closed for that peer. Any thread. */
int node_connect(node *n, const char *scheme, int fd, uint16_t expected);

/* Connections still in their handshake (whose peer is not known yet). Any
 * thread. */
unsigned node_handshaking(node *n);

/* Sends msg to `to` on another node, with an ask reference (0 for none).
 * Takes msg. Returns 0 when queued, TR_ELOCAL for a message marked local,
 * TR_EINVAL, TR_ENOMEM. A frame for a node with no connection is dropped on
 * the loop and counted. Any thread. */
int node_send(node *n, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane, uint64_t ref);

/* Sends msg to the actor registered as name on node to_node. As node_send. */
int node_send_named(node *n, uint16_t to_node, const char *name, tr_addr from, tr_msg *msg);

/* Asks node to_node to spawn the behaviour registered as name with init (may
 * be NULL; taken); asker gets the answer under ref. As node_send. */
int node_spawn(node *n, uint16_t to_node, const char *name, tr_msg *init, tr_addr asker,
               uint64_t ref);

/* Answers a spawn request. Returns 0 or TR_ENOMEM. Any thread. */
int node_spawn_reply(node *n, uint16_t to_node, tr_addr asker, tr_addr spawned, uint64_t ref,
                     int error);

/* Frames the calling thread sends between node_batch_begin and
 * node_batch_end are gathered per peer and written together at the end (or
 * when a frame for another peer comes, or the buffer fills): one lock and
 * one wake-up for many frames. Order is kept. A worker brackets an actor's
 * turn with them. Not nested. node_batch_end returns a peer the thread sent
 * to (since the last node_batch_end) whose backlog was over
 * NODE_BACKLOG_MAX, or 0. */
void node_batch_begin(void);
uint16_t node_batch_end(void);
/* A peer this thread's batch sent to whose backlog is over the limit, or
 * 0; and whether there is one so far (asked once a message). */
extern _Thread_local uint16_t node_congested;
static inline bool node_batch_congested(void) { return node_congested != 0; }

/* Flow control. Bytes for a peer that its transport cannot take yet wait
 * on our side (its backlog). A sender that saw more than NODE_BACKLOG_MAX
 * there waits: node_wait_drained records waiter and returns true if the
 * backlog is still not empty; drained(arg, waiter) is then called on the
 * loop thread once it is (or the connection ended). False: no need to
 * wait (or no memory to record it). Any thread. */
#define NODE_BACKLOG_MAX (1u << 20)
bool node_wait_drained(node *n, uint16_t peer, void *waiter);

/* The most bytes seen waiting for one peer, and how many times a sender
 * waited. Any thread. */
uint64_t node_backlog_peak(node *n);
uint64_t node_waits(node *n);

/* How many times a connection's reading waited for an overloaded actor to
 * drain (see hold). Any thread. */
uint64_t node_holds(node *n);

/* Reads the connections that idle threads may read (shared memory) when no
 * other thread is: plain user messages go to their actors through
 * deliver_batch with worker; anything else is left to the loop. One
 * searching worker at a time is the poller (others park instead of
 * spinning for the same bytes); while there is one, the loop does not spin
 * on those connections but only looks now and then for bytes left
 * waiting. Returns whether it delivered any. Any thread; meant for a
 * worker between turns. */
bool node_poll(node *n, void *worker);

/* The worker stops searching: it is no longer the poller, and if it parks,
 * the loop watches the connections again. */
void node_poll_leave(node *n, void *worker, bool parking);

/* Frames dropped for want of a connection. Any thread. */
uint64_t node_dropped(node *n);

#endif
