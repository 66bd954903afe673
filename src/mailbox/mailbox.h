/* The mailbox: an intrusive lock-free multi-producer single-consumer queue
 * (Dmitry Vyukov's design). A push is one atomic exchange and never waits; the
 * consumer pops without atomic read-modify-write in the common case.
 *
 * Nodes are embedded in what is queued (a message's delivery link); a node is
 * in at most one mailbox at a time and the queue never touches it after pop
 * returns it. */
#ifndef TR_MAILBOX_H
#define TR_MAILBOX_H

#include <stdatomic.h>
#include <stdbool.h>

typedef struct mailbox_node {
    _Atomic(struct mailbox_node *) next;
} mailbox_node;

typedef struct mailbox {
    _Atomic(mailbox_node *) head; /* producers: the node pushed last */
    mailbox_node *tail;           /* consumer: the next node to pop */
    mailbox_node stub;            /* keeps the queue non-empty between pops */
} mailbox;

/* Makes an empty mailbox. Not thread-safe. */
void mailbox_init(mailbox *mb);

/* Appends node. Any thread. */
void mailbox_push(mailbox *mb, mailbox_node *node);

/* Removes the oldest node, or returns NULL when the mailbox is empty or a
 * producer is half-way through a push (then mailbox_empty is false and a
 * later pop will see the node). Consumer only. */
mailbox_node *mailbox_pop(mailbox *mb);

/* True when nothing is queued and no push is in progress. A sequentially
 * consistent read of the producers' end, so that with the scheduling flag it
 * forms a Dekker pair: either the consumer sees a new node, or the producer
 * sees the actor unscheduled. Consumer only. */
bool mailbox_empty(mailbox *mb);

/* After mailbox_empty returned true: whether anything was pushed since. It
 * reads only the producers' end (seq_cst), so it is safe to call after the
 * consumer has handed its role to another thread. */
bool mailbox_pushed_since_empty(mailbox *mb);

#endif
