/* Offering a ring's bytes to a reader (see offer.h). */
#include "offer.h"

#include <assert.h>
#include <string.h>

static size_t offer(const unsigned char *data, size_t at, size_t n, offer_take_fn take, void *arg)
{
    size_t took = take(arg, data + at, n);
    assert(took <= n);
    return took;
}

size_t offer_read(const unsigned char *data, size_t size, uint64_t tail, size_t n, bool past_end,
                  offer_take_fn take, void *arg)
{
    size_t at = (size_t)(tail & (size - 1));
    size_t first = size - at < n ? size - at : n;
    size_t took = offer(data, at, first, take, arg), rest = first - took;
    if (!past_end || n == first)
        return took;
    if (rest && rest < OFFER_BOUNCE) {
        /* Maybe a frame cut by the ring's end: offer it whole, from a copy
         * of its two pieces, and what follows it from the ring again. A
         * reader that took less than all would otherwise leave it to the
         * loop, which would then read everything after it too. */
        unsigned char bounce[OFFER_BOUNCE];
        size_t more = OFFER_BOUNCE - rest < n - first ? OFFER_BOUNCE - rest : n - first;
        memcpy(bounce, data + at + took, rest);
        memcpy(bounce + rest, data, more);
        size_t again = take(arg, bounce, rest + more);
        took += again;
        if (again > rest && again - rest < n - first)
            took += offer(data, again - rest, n - first - (again - rest), take, arg);
    } else if (!rest) {
        took += offer(data, 0, n - first, take, arg);
    }
    return took;
}
