/* Size-class allocator with per-thread caches (magazines) and a shared depot.
 *
 * A pool belongs to one system. Worker threads bind a pool_cache to it, so the
 * hot path (alloc and release on a worker) touches no lock and no shared
 * line: blocks freed on one worker and allocated on another move between the
 * two in magazines of POOL_MAGAZINE blocks through the depot. Threads without
 * a bound cache go to the depot under its lock. Every block goes back to the
 * system's memory when the pool is freed, so nothing outlives the system. */
#ifndef TR_POOL_H
#define TR_POOL_H

#include <stdbool.h>
#include <stddef.h>

#define POOL_CLASSES 6 /* 64, 128, 256, 512, 1024, 2048 bytes */
#define POOL_MAX_BLOCK 2048
#define POOL_MAGAZINE 64

typedef struct pool pool;

typedef struct pool_cache {
    pool *owner;
    struct {
        void *head;
        unsigned count;
    } cls[POOL_CLASSES];
} pool_cache;

/* A new pool, or NULL when out of memory. Any thread. */
pool *pool_new(void);
/* Frees the pool and every block it ever handed out. Accepts NULL. No cache
 * may still be bound. */
void pool_free(pool *p);

/* The size class for size bytes (> 0), or -1 when size > POOL_MAX_BLOCK. */
static inline int pool_class_of(size_t size)
{
    if (size <= 64)
        return 0;
    if (size > POOL_MAX_BLOCK)
        return -1;
    /* ceil(log2(size)) - 6 */
    return (int)(sizeof(unsigned long) * 8) - __builtin_clzl((unsigned long)(size - 1)) - 6;
}

/* A block of class cls (64-byte aligned), or NULL when out of memory.
 * Any thread. */
void *pool_alloc(pool *p, int cls);
/* Gives a block of class cls back to p. Any thread. */
void pool_release(pool *p, int cls, void *block);

/* The calling thread's cache, if it has one (worker threads). */
extern _Thread_local pool_cache *pool_thread_cache;

typedef struct pool_free_block {
    struct pool_free_block *next;
} pool_free_block;

/* Fast path of pool_alloc for the thread's own pool: a block of class cls
 * from the calling thread's cache, or NULL (then call pool_alloc). Sets
 * *owner to the pool the block belongs to. */
static inline void *pool_cache_take(int cls, pool **owner)
{
#ifdef TR_POOL_MALLOC
    (void)cls, (void)owner;
    return NULL;
#else
    pool_cache *c = pool_thread_cache;
    if (!c)
        return NULL;
    pool_free_block *b = c->cls[cls].head;
    if (!b)
        return NULL;
    c->cls[cls].head = b->next;
    c->cls[cls].count--;
    *owner = c->owner;
    return b;
#endif
}

/* Fast path of pool_release: true when the block went into the calling
 * thread's cache (which has room and belongs to p). */
static inline bool pool_cache_give(pool *p, int cls, void *block)
{
#ifdef TR_POOL_MALLOC
    (void)p, (void)cls, (void)block;
    return false;
#else
    pool_cache *c = pool_thread_cache;
    if (!c || c->owner != p || c->cls[cls].count + 1 >= 2 * POOL_MAGAZINE)
        return false;
    pool_free_block *b = block;
    b->next = c->cls[cls].head;
    c->cls[cls].head = b;
    c->cls[cls].count++;
    return true;
#endif
}

/* Binds cache to p for the calling thread; pool_unbind_thread flushes it back
 * to the depot. A thread binds at most one cache at a time. */
void pool_bind_thread(pool *p, pool_cache *cache);
void pool_unbind_thread(void);

/* The pool bound to the calling thread, or NULL. */
pool *pool_thread_pool(void);

#endif
