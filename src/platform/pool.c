/* Size-class allocator: per-thread magazines over a locked depot. */
#include "pool.h"
#include "platform.h"

#include <pthread.h>
#include <stdlib.h>

/* A free block. Blocks of one magazine are chained by next; magazines in the
 * depot are chained through their first block's next_magazine. */
typedef struct free_block {
    struct free_block *next;
    struct free_block *next_magazine;
    unsigned count; /* blocks in this magazine (first block only) */
} free_block;

typedef struct depot {
    pthread_mutex_t lock;
    free_block *magazines;
} depot;

typedef struct chunk {
    struct chunk *next;
} chunk;

struct pool {
    depot depots[POOL_CLASSES];
    pthread_mutex_t chunk_lock;
    chunk *chunks; /* every chunk carved, freed with the pool */
};

_Thread_local pool_cache *pool_thread_cache;

static size_t class_size(int cls) { return (size_t)64 << cls; }


pool *pool_new(void)
{
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    for (int i = 0; i < POOL_CLASSES; i++)
        pthread_mutex_init(&p->depots[i].lock, NULL);
    pthread_mutex_init(&p->chunk_lock, NULL);
    return p;
}

void pool_free(pool *p)
{
    if (!p)
        return;
    for (chunk *c = p->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    for (int i = 0; i < POOL_CLASSES; i++)
        pthread_mutex_destroy(&p->depots[i].lock);
    pthread_mutex_destroy(&p->chunk_lock);
    free(p);
}

static void depot_put(pool *p, int cls, free_block *mag, unsigned count)
{
    depot *d = &p->depots[cls];
    mag->count = count;
    pthread_mutex_lock(&d->lock);
    mag->next_magazine = d->magazines;
    d->magazines = mag;
    pthread_mutex_unlock(&d->lock);
}

#ifdef TR_POOL_MALLOC
/* Sanitizer builds: plain malloc, so use-after-free is caught. */
void *pool_alloc(pool *p, int cls)
{
    (void)p;
    return aligned_alloc(CACHE_LINE, class_size(cls));
}

void pool_release(pool *p, int cls, void *block)
{
    (void)p;
    (void)cls;
    free(block);
}
#else
/* Carves a fresh chunk into one magazine of blocks. */
static free_block *carve(pool *p, int cls)
{
    size_t size = class_size(cls);
    chunk *c = aligned_alloc(CACHE_LINE, CACHE_LINE + size * POOL_MAGAZINE);
    if (!c)
        return NULL;
    pthread_mutex_lock(&p->chunk_lock);
    c->next = p->chunks;
    p->chunks = c;
    pthread_mutex_unlock(&p->chunk_lock);
    char *base = (char *)c + CACHE_LINE;
    free_block *head = NULL;
    for (int i = POOL_MAGAZINE - 1; i >= 0; i--) {
        free_block *b = (free_block *)(void *)(base + (size_t)i * size);
        b->next = head;
        head = b;
    }
    head->count = POOL_MAGAZINE;
    return head;
}

static free_block *depot_take(pool *p, int cls)
{
    depot *d = &p->depots[cls];
    pthread_mutex_lock(&d->lock);
    free_block *mag = d->magazines;
    if (mag)
        d->magazines = mag->next_magazine;
    pthread_mutex_unlock(&d->lock);
    return mag ? mag : carve(p, cls);
}

void *pool_alloc(pool *p, int cls)
{
    pool_cache *c = pool_thread_cache;
    if (c && c->owner == p) {
        free_block *b = c->cls[cls].head;
        if (!b) {
            b = depot_take(p, cls);
            if (!b)
                return NULL;
            c->cls[cls].count = b->count;
        }
        c->cls[cls].head = b->next;
        c->cls[cls].count--;
        return b;
    }
    /* No cache: take a magazine, keep one block, give the rest back. */
    free_block *mag = depot_take(p, cls);
    if (!mag)
        return NULL;
    if (mag->next)
        depot_put(p, cls, mag->next, mag->count - 1);
    return mag;
}

void pool_release(pool *p, int cls, void *block)
{
    free_block *b = block;
    pool_cache *c = pool_thread_cache;
    if (!c || c->owner != p) {
        b->next = NULL;
        depot_put(p, cls, b, 1);
        return;
    }
    b->next = c->cls[cls].head;
    c->cls[cls].head = b;
    if (++c->cls[cls].count < 2 * POOL_MAGAZINE)
        return;
    /* Too many cached: hand the newest POOL_MAGAZINE to the depot. */
    free_block *last = b;
    for (int i = 1; i < POOL_MAGAZINE; i++)
        last = last->next;
    c->cls[cls].head = last->next;
    c->cls[cls].count -= POOL_MAGAZINE;
    last->next = NULL;
    depot_put(p, cls, b, POOL_MAGAZINE);
}
#endif

void pool_bind_thread(pool *p, pool_cache *cache)
{
    *cache = (pool_cache){.owner = p};
    pool_thread_cache = cache;
}

void pool_unbind_thread(void)
{
    pool_cache *c = pool_thread_cache;
    if (!c)
        return;
    for (int cls = 0; cls < POOL_CLASSES; cls++)
        if (c->cls[cls].head)
            depot_put(c->owner, cls, c->cls[cls].head, c->cls[cls].count);
    *c = (pool_cache){0};
    pool_thread_cache = NULL;
}

pool *pool_thread_pool(void) { return pool_thread_cache ? pool_thread_cache->owner : NULL; }
