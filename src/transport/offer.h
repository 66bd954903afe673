/* Offering a ring's bytes to a reader, for a transport whose bytes wait in
 * a ring that any thread may read (shm). Not part of the transport
 * interface. */
#ifndef TR_TRANSPORT_OFFER_H
#define TR_TRANSPORT_OFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A frame cut by the ring's end is offered whole from a copy of its two
 * pieces when they fit in this many bytes together. */
#define OFFER_BOUNCE 4096

typedef size_t (*offer_take_fn)(void *arg, const void *data, size_t len);

/* Offers the n bytes from position tail of the ring of size bytes (a power
 * of two) at data to take, in order, where they lie; a frame cut by the
 * ring's end, from a copy (see OFFER_BOUNCE). With past_end false, nothing
 * past the ring's end is offered. Returns how many take consumed; take
 * stops the offer by consuming fewer than it was offered. */
size_t offer_read(const unsigned char *data, size_t size, uint64_t tail, size_t n, bool past_end,
                  offer_take_fn take, void *arg);

#endif
