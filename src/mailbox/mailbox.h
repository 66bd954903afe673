/* The mailbox: an intrusive lock-free multi-producer single-consumer queue
 * (Dmitry Vyukov's design). A push is one atomic exchange and never waits; the
 * consumer pops without atomic read-modify-write in the common case.
 *
 * Nodes are embedded in what is queued (a message's delivery link); a node is
 * in at most one mailbox at a time and the queue never touches it after pop
 * returns it. */
#ifndef TR_MAILBOX_H
#define TR_MAILBOX_H

#include "../platform/queue_node.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef queue_node mailbox_node;

typedef struct mailbox {
    _Atomic(mailbox_node *) head; /* producers: the node pushed last */
    mailbox_node *tail;           /* consumer: the next node to pop */
    mailbox_node stub;            /* keeps the queue non-empty between pops */
} mailbox;

/* Makes an empty mailbox. Not thread-safe. */
void mailbox_init(mailbox *mb);

/* The operations below are inline: they are the hot path of every send. */

/* Appends node. Any thread. */
static inline void mailbox_push(mailbox *mb, mailbox_node *node)
{
    /* relaxed: node is private until the exchange below publishes it. */
    atomic_store_explicit(&node->next, NULL, memory_order_relaxed);
    /* seq_cst: orders this push before the sender's later read of the
     * actor's scheduling flag (see mailbox_empty). */
    mailbox_node *prev = atomic_exchange(&mb->head, node);
    /* release: the consumer that reads prev->next sees node's contents. */
    atomic_store_explicit(&prev->next, node, memory_order_release);
}

/* Appends first..last, already linked through their next fields (last's is
 * set to NULL here), with one exchange. Any thread. */
static inline void mailbox_push_chain(mailbox *mb, mailbox_node *first, mailbox_node *last)
{
    /* relaxed: the chain is private until the exchange below publishes it. */
    atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
    /* seq_cst: as in mailbox_push. */
    mailbox_node *prev = atomic_exchange(&mb->head, last);
    /* release: the consumer that follows prev->next sees the whole chain. */
    atomic_store_explicit(&prev->next, first, memory_order_release);
}

/* Removes the oldest node, or returns NULL when the mailbox is empty or a
 * producer is half-way through a push (then mailbox_empty is false and a
 * later pop will see the node). Consumer only. */
static inline mailbox_node *mailbox_pop(mailbox *mb)
{
    mailbox_node *tail = mb->tail;
    /* acquire: pairs with the release in push, so the node's payload is
     * visible before we hand it out. */
    mailbox_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &mb->stub) {
        if (!next)
            return NULL;
        mb->tail = tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        mb->tail = next;
        __builtin_prefetch(next); /* the message after this one, while it is handled */
        return tail;
    }
    /* tail is the last linked node; if head differs, a push is half done. */
    if (tail != atomic_load_explicit(&mb->head, memory_order_acquire))
        return NULL;
    mailbox_push(mb, &mb->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        mb->tail = next;
        return tail;
    }
    return NULL;
}

/* True when nothing is queued and no push is in progress. A sequentially
 * consistent read of the producers' end, so that with the scheduling flag it
 * forms a Dekker pair: either the consumer sees a new node, or the producer
 * sees the actor unscheduled. Consumer only. */
static inline bool mailbox_empty(mailbox *mb)
{
    return mb->tail == &mb->stub && atomic_load(&mb->head) == &mb->stub;
}

/* After mailbox_empty returned true: whether anything was pushed since. It
 * reads only the producers' end (seq_cst), so it is safe to call after the
 * consumer has handed its role to another thread. */
static inline bool mailbox_pushed_since_empty(mailbox *mb) { return atomic_load(&mb->head) != &mb->stub; }

#endif
