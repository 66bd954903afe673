/* The actor table: pages of control blocks indexed by address. Blocks are
 * never freed while the system lives, so a sender holding a stale address can
 * always look at the block's incarnation without a use-after-free. */
#include "actor.h"


int table_init(actor_table *t)
{
    for (unsigned i = 0; i < TABLE_PAGES; i++)
        atomic_init(&t->pages[i], NULL);
    pthread_mutex_init(&t->lock, NULL);
    t->free_list = NULL;
    t->next_index = 1; /* index 0 stays unused, so no address is all zero */
    atomic_init(&t->limit, 0);
    return 0;
}

void table_fini(actor_table *t)
{
    for (unsigned i = 0; i < TABLE_PAGES; i++)
        platform_pages_free(atomic_load_explicit(&t->pages[i], memory_order_relaxed),
                            TABLE_PAGE_SIZE * sizeof(actor));
    pthread_mutex_destroy(&t->lock);
}

/* A never-used block; the table lock is held. */
static actor *fresh_block(actor_table *t, int *err)
{
    uint32_t index = t->next_index;
    if (index > ADDR_MAX_INDEX) {
        *err = TR_ELIMIT;
        return NULL;
    }
    unsigned page_no = index >> TABLE_PAGE_BITS;
    actor *page = atomic_load_explicit(&t->pages[page_no], memory_order_relaxed);
    if (!page) {
        /* Mapped lazily: untouched slots cost no memory. Zeroed life means
         * incarnation 0, which no address carries. */
        page = platform_pages_alloc(TABLE_PAGE_SIZE * sizeof(actor));
        if (!page) {
            *err = TR_ENOMEM;
            return NULL;
        }
        atomic_store_explicit(&t->pages[page_no], page, memory_order_relaxed);
        /* release: a lookup that sees the new limit sees the page pointer. */
        atomic_store_explicit(&t->limit, (page_no + 1) << TABLE_PAGE_BITS, memory_order_release);
    }
    t->next_index++;
    actor *a = &page[index & (TABLE_PAGE_SIZE - 1)];
    a->index = index;
    mailbox_init(&a->mailbox);
    mailbox_init(&a->system);
    return a;
}

actor *table_acquire(actor_table *t, int *err)
{
    pthread_mutex_lock(&t->lock);
    actor *a = t->free_list;
    uint64_t step = LIFE_GEN_ONE;
    if (a) {
        t->free_list = a->next_free;
        step -= LIFE_CLOSED; /* and reopen */
    } else {
        a = fresh_block(t, err);
    }
    pthread_mutex_unlock(&t->lock);
    if (!a)
        return NULL;
    /* A read-modify-write, never a store: a stale sender may hold a pin for
     * an instant (it will see the wrong incarnation and let go). */
    uint64_t life = atomic_fetch_add(&a->life, step) + step;
    if (((life >> 32) & ADDR_GEN_MASK) == 0) /* incarnation 0 is never used */
        atomic_fetch_add(&a->life, LIFE_GEN_ONE);
    return a;
}

void table_release(actor_table *t, actor *a)
{
    pthread_mutex_lock(&t->lock);
    a->next_free = t->free_list;
    t->free_list = a;
    pthread_mutex_unlock(&t->lock);
}

void table_for_each(actor_table *t, void (*fn)(actor *a, void *arg), void *arg)
{
    for (uint32_t i = 1; i < t->next_index; i++)
        fn(table_lookup(t, i), arg);
}
