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

/* The size class for size bytes, or -1 when size > POOL_MAX_BLOCK. */
int pool_class_of(size_t size);

/* A block of class cls (64-byte aligned), or NULL when out of memory.
 * Any thread. */
void *pool_alloc(pool *p, int cls);
/* Gives a block of class cls back to p. Any thread. */
void pool_release(pool *p, int cls, void *block);

/* Binds cache to p for the calling thread; pool_unbind_thread flushes it back
 * to the depot. A thread binds at most one cache at a time. */
void pool_bind_thread(pool *p, pool_cache *cache);
void pool_unbind_thread(void);

/* The pool bound to the calling thread, or NULL. */
pool *pool_thread_pool(void);

#endif
