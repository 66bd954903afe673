/* Vyukov's intrusive MPSC queue. */
#include "mailbox.h"

#include <stddef.h>

void mailbox_init(mailbox *mb)
{
    atomic_init(&mb->stub.next, NULL);
    atomic_init(&mb->head, &mb->stub);
    mb->tail = &mb->stub;
}

