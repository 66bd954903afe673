/* The link of an intrusive lock-free queue, embedded in what is queued.
 * It lives here, below both, so that messages (which embed one) and the
 * mailbox (which queues them) need not include each other. */
#ifndef TR_QUEUE_NODE_H
#define TR_QUEUE_NODE_H

#include <stdatomic.h>

typedef struct queue_node {
    _Atomic(struct queue_node *) next;
} queue_node;

#endif
