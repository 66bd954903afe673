/* Vyukov's intrusive MPSC queue. */
#include "mailbox.h"

#include <stddef.h>

void mailbox_init(mailbox *mb)
{
    atomic_init(&mb->stub.next, NULL);
    atomic_init(&mb->head, &mb->stub);
    mb->tail = &mb->stub;
}

void mailbox_push(mailbox *mb, mailbox_node *node)
{
    /* relaxed: node is private until the exchange below publishes it. */
    atomic_store_explicit(&node->next, NULL, memory_order_relaxed);
    /* seq_cst: orders this push before the sender's later read of the
     * actor's scheduling flag (see mailbox_empty). */
    mailbox_node *prev = atomic_exchange(&mb->head, node);
    /* release: the consumer that reads prev->next sees node's contents. */
    atomic_store_explicit(&prev->next, node, memory_order_release);
}

mailbox_node *mailbox_pop(mailbox *mb)
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

bool mailbox_empty(mailbox *mb)
{
    return mb->tail == &mb->stub && atomic_load(&mb->head) == &mb->stub;
}

bool mailbox_pushed_since_empty(mailbox *mb) { return atomic_load(&mb->head) != &mb->stub; }
