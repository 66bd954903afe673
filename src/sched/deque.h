/* A Chase–Lev work-stealing deque of opaque pointers (the C11 version of
 * Lê, Pop, Cohen and Zappa Nardelli, PPoPP 2013). The owner pushes and pops
 * at the bottom (LIFO: the actor just made runnable runs next, cache-warm);
 * thieves take from the top (FIFO: the oldest work moves). The buffer grows
 * when full; old buffers are kept until deque_fini because a thief may still
 * be reading one. */
#ifndef TR_DEQUE_H
#define TR_DEQUE_H

#include "../platform/platform.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct deque_buffer {
    int64_t mask;
    struct deque_buffer *retired; /* older buffers, freed at fini */
    _Atomic(void *) slots[];
} deque_buffer;

typedef struct deque {
    _Alignas(CACHE_LINE) _Atomic int64_t top; /* thieves (CAS) and owner */
    _Alignas(CACHE_LINE) _Atomic int64_t bottom; /* owner */
    _Atomic(deque_buffer *) buffer;            /* owner writes, thieves read */
} deque;

#define DEQUE_ABORT ((void *)1) /* steal lost a race; try again or elsewhere */

/* Returns 0 or -1 when out of memory. */
int deque_init(deque *d, unsigned log2_capacity);
void deque_fini(deque *d);

/* Owner only. Returns 0, or -1 when growing failed (x was not pushed). */
int deque_push(deque *d, void *x);
/* Owner only. NULL when empty. */
void *deque_pop(deque *d);
/* Any thread. NULL when empty, DEQUE_ABORT when another thread won. */
void *deque_steal(deque *d);
/* An estimate of the number of items. Any thread. */
int64_t deque_size(deque *d);

#endif
