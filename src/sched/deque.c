/* Chase–Lev deque. The orderings follow Lê et al. with the fences folded into
 * seq_cst accesses of top and bottom, which ThreadSanitizer understands and
 * which cost the same on x86 (a locked instruction either way). */
#include "deque.h"

#include <stdlib.h>

static deque_buffer *buffer_new(int64_t capacity)
{
    deque_buffer *b = malloc(sizeof *b + (size_t)capacity * sizeof(b->slots[0]));
    if (!b)
        return NULL;
    b->mask = capacity - 1;
    b->retired = NULL;
    return b;
}

int deque_init(deque *d, unsigned log2_capacity)
{
    deque_buffer *b = buffer_new((int64_t)1 << log2_capacity);
    if (!b)
        return -1;
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    atomic_init(&d->buffer, b);
    return 0;
}

void deque_fini(deque *d)
{
    deque_buffer *b = atomic_load_explicit(&d->buffer, memory_order_relaxed);
    while (b) {
        deque_buffer *older = b->retired;
        free(b);
        b = older;
    }
}

static deque_buffer *grow(deque *d, deque_buffer *old, int64_t top, int64_t bottom)
{
    deque_buffer *b = buffer_new((old->mask + 1) * 2);
    if (!b)
        return NULL;
    for (int64_t i = top; i < bottom; i++) {
        void *x = atomic_load_explicit(&old->slots[i & old->mask], memory_order_relaxed);
        atomic_store_explicit(&b->slots[i & b->mask], x, memory_order_relaxed);
    }
    b->retired = old;
    /* release: a thief that loads the new buffer sees the copied slots. */
    atomic_store_explicit(&d->buffer, b, memory_order_release);
    return b;
}

int deque_push(deque *d, void *x)
{
    /* relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* acquire: pairs with the thieves' CAS so the size check is not stale
     * in the unsafe direction (stale only makes us grow early). */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    deque_buffer *buf = atomic_load_explicit(&d->buffer, memory_order_relaxed);
    if (b - t > buf->mask) {
        buf = grow(d, buf, t, b);
        if (!buf)
            return -1;
    }
    /* relaxed: published by the seq_cst store of bottom below. */
    atomic_store_explicit(&buf->slots[b & buf->mask], x, memory_order_relaxed);
    atomic_store(&d->bottom, b + 1);
    return 0;
}

void *deque_pop(deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    deque_buffer *buf = atomic_load_explicit(&d->buffer, memory_order_relaxed);
    /* seq_cst store then seq_cst load: a thief and the owner racing for the
     * last item cannot both miss each other. */
    atomic_store(&d->bottom, b);
    int64_t t = atomic_load(&d->top);
    if (t > b) { /* empty */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    void *x = atomic_load_explicit(&buf->slots[b & buf->mask], memory_order_relaxed);
    if (t == b) { /* the last item: race the thieves for it */
        if (!atomic_compare_exchange_strong(&d->top, &t, t + 1))
            x = NULL;
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

void *deque_steal(deque *d)
{
    int64_t t = atomic_load(&d->top);
    int64_t b = atomic_load(&d->bottom);
    if (t >= b)
        return NULL;
    /* acquire: pairs with the release in grow. */
    deque_buffer *buf = atomic_load_explicit(&d->buffer, memory_order_acquire);
    void *x = atomic_load_explicit(&buf->slots[t & buf->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong(&d->top, &t, t + 1))
        return DEQUE_ABORT;
    return x;
}

int64_t deque_size(deque *d)
{
    int64_t b = atomic_load(&d->bottom);
    int64_t t = atomic_load(&d->top);
    return b > t ? b - t : 0;
}
