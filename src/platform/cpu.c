/* CPU facts from the operating system. */
#include "platform.h"

#include <unistd.h>

unsigned platform_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}
