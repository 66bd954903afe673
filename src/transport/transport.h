/* Transports: byte streams between nodes, one ops table per kind, found by
 * scheme ("pipe", "shm"). The node layer knows only this header. Every
 * entry runs on the io loop thread, except send, which any thread may call,
 * and read, which any thread may call under the owner's lock.
 *
 * Two ways in: a transport with no read op hands what arrives to on_data on
 * the loop. One with a read op (shared memory, whose bytes any thread can
 * see) only tells the loop on_readable; the owner then calls read, and so
 * may worker threads between turns, so that a message goes from the ring to
 * its actor with no hop through the loop thread. */
#ifndef TR_TRANSPORT_H
#define TR_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct transport transport;

typedef struct transport_callbacks {
    /* Bytes arrived, in order; borrowed for the call (transports with no
     * read op). */
    void (*on_data)(void *owner, const void *data, size_t len);
    /* Bytes may be waiting: the owner reads them with read (transports with
     * a read op), unless another thread is reading. With last, the transport
     * is about to end: the owner waits for such a reader, and takes every
     * byte left (the start of a frame too). Returns whether it read any, or
     * another thread was reading. */
    bool (*on_readable)(void *owner, bool last);
    /* Whether another thread watches for bytes now (transports with a read
     * op): the loop then only looks now and then, instead of spinning.
     * When that thread stops watching, it calls wake. */
    bool (*watched)(void *owner);
    /* The bytes that waited on our side have all gone (backlog fell to 0).
     * Loop thread. */
    void (*on_drained)(void *owner);
    /* The stream ended: error 0 for an orderly end (EOF), else a negative
     * libuv code. Called once, before the transport lets go of anything a
     * sender uses; when it returns, no thread may call send any more, and
     * the transport is freed. */
    void (*on_closed)(void *owner, int error);
} transport_callbacks;

typedef struct transport_ops {
    const char *scheme;
    /* Frames up to this size are worth gathering with others before send
     * (one copy more, one send fewer); larger ones go to send alone. */
    size_t gather_max;
    /* With a read op: a frame of at most this many bytes (header included)
     * cut by the buffer's end is offered whole once it has all arrived, so a
     * reader may leave the part of one it was offered for a later read. */
    size_t whole_max;
    /* Opens a transport over the endpoint fd, which it takes over (closed
     * with the transport, or at once on failure). Returns 0 or a negative
     * libuv code. Not blocking. */
    int (*open)(uv_loop_t *loop, int fd, const transport_callbacks *cb, void *owner,
                transport **out);
    /* Queues a frame made of alen bytes at a then blen at b (b may be NULL
     * when blen is 0), copied, behind what was queued before; never blocks
     * and never drops (bytes wait on our side when the peer is slow). Any
     * thread, while the transport is open (the caller keeps it from being
     * freed meanwhile); on_loop says the caller is the loop thread, which
     * may write at once. Returns 0, UV_EPIPE once closing, or UV_ENOMEM. */
    int (*send)(transport *t, const void *a, size_t alen, const void *b, size_t blen,
                bool on_loop);
    /* Bytes sent but still on our side: not yet in the shared ring, or not
     * yet taken by the kernel. Any thread, while the transport is open. */
    size_t (*backlog)(transport *t);
    /* Offers the bytes waiting, in order, to take, which returns how many of
     * those offered it consumed (from the start; fewer stops the offer).
     * Returns how many were consumed in all. NULL for a transport that hands
     * bytes to on_data instead. Any thread, one at a time (the owner's lock
     * serialises readers) while the transport is open. A reader off the
     * loop that leaves bytes it cannot handle calls wake. */
    size_t (*read)(transport *t, size_t (*take)(void *arg, const void *data, size_t len),
                   void *arg, bool on_loop);
    /* Makes the loop look for bytes soon (transports with a read op). Any
     * thread, while the transport is open. */
    void (*wake)(transport *t);
    /* Stops (paused) or starts again handing bytes to on_data (transports
     * with no read op: the others' bytes simply stay in the ring while the
     * owner does not take them). The end of the stream is not noticed while
     * paused. Loop thread. */
    void (*pause)(transport *t, bool paused);
    /* Closes (idempotent); on_closed follows with 0 unless an error came first. */
    void (*close)(transport *t);
} transport_ops;

/* The ops table for a scheme, or NULL. */
const transport_ops *transport_find(const char *scheme);

extern const transport_ops transport_pipe;
extern const transport_ops transport_shm; /* needs a Unix stream socket (for the memfd) */

#endif
