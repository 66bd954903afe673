/* Platform facts and small helpers shared by every layer. */
#ifndef TR_PLATFORM_H
#define TR_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#define CACHE_LINE 64

#define container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* A hint to the CPU that we are spinning (pause on x86, yield on arm). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* size zeroed bytes, page-aligned, mapped lazily: untouched pages cost no
 * memory. NULL when out of memory. Free with platform_pages_free. */
void *platform_pages_alloc(size_t size);
void platform_pages_free(void *p, size_t size);

/* A monotonic clock in nanoseconds (vDSO: no system call). */
uint64_t platform_now_ns(void);

/* Number of online CPUs, at least 1. */
unsigned platform_cpu_count(void);

/* A fast per-thread pseudo-random number (xorshift); state must be non-zero. */
static inline uint32_t platform_rand(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

#endif
