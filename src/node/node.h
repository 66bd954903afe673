/* A node: this process's identity among others, its connections to peer
 * nodes, and routing by an address's node number. Connections live on the
 * io loop thread; other threads hand frames over as io tasks, in order, so
 * per sender–receiver pair order holds across nodes. */
#ifndef TR_NODE_H
#define TR_NODE_H

#include "../io/loop.h"
#include "../msg/msg.h"

#include <stdbool.h>
#include <stdint.h>

#include "troupe.h"

typedef struct node node;

/* How the node hands what arrives to the actor layer (loop thread). */
typedef struct node_callbacks {
    /* A message for a local actor; takes msg. */
    void (*deliver)(void *arg, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane);
    /* A message for a local actor by name; takes msg. */
    void (*deliver_named)(void *arg, const char *name, tr_addr from, tr_msg *msg);
    /* A connection ended: peer is 0 if the handshake never finished; error 0
     * for an orderly end; why says what went wrong (or NULL). */
    void (*connection_closed)(void *arg, uint16_t peer, int error, const char *why);
} node_callbacks;

/* A node numbered id (1..65535) on io. Returns 0, TR_EINVAL or TR_ENOMEM. */
int node_new(uint16_t id, io_loop *io, const node_callbacks *cb, void *arg, node **out);

/* Frees the node; its io loop must be stopped first (which closes every
 * connection). Accepts NULL. */
void node_free(node *n);

/* Opens a connection over fd with the transport of scheme and greets the
 * peer. Takes fd. Returns 0 (the rest happens on the loop), TR_EINVAL for
 * an unknown scheme, or TR_ENOMEM. Any thread. */
int node_connect(node *n, const char *scheme, int fd);

/* Sends msg to `to` on another node. Takes msg. Returns 0 when queued,
 * TR_ELOCAL for a message marked local, TR_EINVAL, TR_ENOMEM. A frame for a
 * node with no connection is dropped on the loop and counted. Any thread. */
int node_send(node *n, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane);

/* Sends msg to the actor registered as name on node to_node. As node_send. */
int node_send_named(node *n, uint16_t to_node, const char *name, tr_addr from, tr_msg *msg);

/* Frames dropped for want of a connection. Any thread. */
uint64_t node_dropped(node *n);

#endif
