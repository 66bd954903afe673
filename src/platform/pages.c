/* Lazily mapped zeroed memory. */
#include "platform.h"

#include <sys/mman.h>

void *platform_pages_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void platform_pages_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}
