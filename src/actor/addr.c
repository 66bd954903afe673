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

/* One decimal number up to max, then the expected separator. */
static bool parse_field(const char **p, uint64_t max, char sep, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s++ - '0');
        if (v > max)
            return false;
    }
    if (*s != sep)
        return false;
    *p = s + 1;
    *out = v;
    return true;
}

int tr_addr_parse(const char *text, tr_addr *out)
{
    uint64_t node, index, gen;
    const char *p = text;
    if (!text || !out || *p++ != '<' || !parse_field(&p, UINT16_MAX, '.', &node) ||
        !parse_field(&p, ADDR_MAX_INDEX, '.', &index) || !parse_field(&p, ADDR_GEN_MASK, '>', &gen) ||
        *p != '\0')
        return TR_EINVAL;
    *out = addr_make((uint16_t)node, (uint32_t)gen, (uint32_t)index);
    return 0;
}
