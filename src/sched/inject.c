/* The inject queue: a mutex-guarded intrusive FIFO. */
#include "inject.h"

void inject_init(inject_queue *q)
{
    q->list = (run_list){0};
    atomic_init(&q->size, 0);
    pthread_mutex_init(&q->lock, NULL);
}

void inject_fini(inject_queue *q) { pthread_mutex_destroy(&q->lock); }

void inject_push(inject_queue *q, sched_node *n)
{
    pthread_mutex_lock(&q->lock);
    run_list_push(&q->list, n);
    /* seq_cst: a parking worker's check of the size must not miss this push
     * while we miss its sleeper count (see sched.c). */
    atomic_store(&q->size, q->list.count);
    pthread_mutex_unlock(&q->lock);
}

sched_node *inject_pop(inject_queue *q)
{
    if (atomic_load(&q->size) == 0)
        return NULL;
    pthread_mutex_lock(&q->lock);
    sched_node *n = run_list_pop(&q->list);
    /* relaxed: the lock orders it for pushers; idle readers only need a hint. */
    atomic_store_explicit(&q->size, q->list.count, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t inject_size(inject_queue *q) { return atomic_load(&q->size); }
