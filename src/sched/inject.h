/* Intrusive FIFO lists of runnables, and the inject queue built on one: the
 * queue for work made runnable by threads outside the pool (the main thread,
 * other libraries' threads) and the fallback when a deque cannot grow. A
 * mutex guards it; an atomic count lets idle workers look without the lock.
 * It is off the hot path: actors woken by other actors go to worker deques.
 * Being intrusive, neither ever allocates, so scheduling cannot fail. */
#ifndef TR_INJECT_H
#define TR_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

/* Embedded in every runnable. */
typedef struct sched_node {
    struct sched_node *next;
} sched_node;

typedef struct run_list {
    sched_node *head, *tail;
    size_t count;
} run_list;

static inline void run_list_push(run_list *l, sched_node *n)
{
    n->next = NULL;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    l->count++;
}

static inline sched_node *run_list_pop(run_list *l)
{
    sched_node *n = l->head;
    if (n) {
        l->head = n->next;
        if (!l->head)
            l->tail = NULL;
        l->count--;
    }
    return n;
}

typedef struct inject_queue {
    pthread_mutex_t lock;
    run_list list;
    _Atomic size_t size; /* list.count, readable without the lock */
} inject_queue;

void inject_init(inject_queue *q);
void inject_fini(inject_queue *q);
/* Any thread. */
void inject_push(inject_queue *q, sched_node *n);
/* Any thread. NULL when empty. */
sched_node *inject_pop(inject_queue *q);
/* Any thread. */
size_t inject_size(inject_queue *q);

#endif
