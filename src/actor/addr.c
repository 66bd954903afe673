/* Printing addresses. */
#include "actor.h"

#include <inttypes.h>
#include <stdio.h>

char *tr_addr_format(tr_addr addr, char *buf, size_t size)
{
    if (buf && size)
        snprintf(buf, size, "<%u.%" PRIu32 ".%" PRIu32 ">", (unsigned)addr_node(addr),
                 addr_index(addr), addr_gen(addr));
    return buf;
}
