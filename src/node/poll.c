/* Workers reading shared memory (node_poll): a worker takes the plain user
 * messages at the front of a ring straight to their actors, which it then
 * runs itself, and leaves anything else (a control frame, a runtime
 * message, a frame cut by the ring's end, a malformed one) to the loop.
 * The connection's read lock keeps one reader at a time, and the lane's
 * poll lock keeps a worker from finding a connection that is being freed.
 * A delivery to an overloaded actor holds the connection (no worker reads
 * it until that actor drains, see connection_hold). */
#include "node_private.h"

#include <assert.h>

/* At most this many messages a look: the worker runs them before it reads
 * more, so the blocks they came in are reused while still in its cache. */
#define POLL_TAKE_MAX 256

typedef struct worker_read {
    connection *c;
    void *worker;
    unsigned taken;
    bool delivered;
    bool stuck; /* stopped at bytes only the loop handles */
    batch b;
} worker_read;

static void worker_flush(worker_read *wr)
{
    batch *b = &wr->b;
    if (b->n == 0)
        return;
    wr->delivered = true;
    /* Plain user messages only, which the actor layer always accepts (a
     * full mailbox's share kept in the connection, which then holds). */
    int rc = connection_deliver(wr->c, b, wr->worker, false);
    assert(rc == 0);
    (void)rc;
}

/* read's take on a worker: the whole plain user-lane SENDs at the front. */
static size_t take_sends(void *arg, const void *data, size_t len)
{
    worker_read *wr = arg;
    const unsigned char *p = data;
    size_t at = 0;
    for (; wr->taken < POLL_TAKE_MAX && !connection_held(wr->c); wr->taken++) {
        wire_header h;
        const unsigned char *body;
        const char *why;
        if (at == len)
            break;
        wr->stuck = true; /* until this frame is taken */
        if (wire_frame_at(p + at, len - at, wr->c->reader.max_body, &h, &body, &why) != 1 ||
            h.op != WIRE_SEND || (h.flags & WIRE_FLAG_SYSTEM) || h.type >= TR_MSG_SYSTEM)
            break; /* the loop's to handle, or to refuse (or cut by the ring's end) */
        size_t body_len = h.length;
        uint64_t ref;
        if (!node_ask_ref(&h, &body, &body_len, &ref))
            break;
        tr_msg *m = node_message_of(h.type, h.flags, body, body_len);
        if (!m)
            break; /* out of memory: the loop will try */
        wr->stuck = false;
        batch *b = &wr->b;
        if (b->n && b->to.bits != h.to)
            worker_flush(wr);
        b->to = (tr_addr){h.to};
        b->items[b->n++] = (node_item){(tr_addr){h.from}, m, ref};
        at += WIRE_HEADER_SIZE + h.length;
        /* Full: out now, so that a hold it causes stops the reading before
         * the next frame, which may be for the same actor. */
        if (b->n == BATCH_MAX)
            worker_flush(wr);
    }
    worker_flush(wr);
    return at;
}

/* Reads l's connection if no one else is and nothing of a frame waits in
 * the loop's reader. */
static bool poll_lane(lane *l, void *worker)
{
    if (pthread_mutex_trylock(&l->poll_lock) != 0)
        return false;
    bool delivered = false;
    connection *c = l->reader;
    if (c && !atomic_load_explicit(&c->cut, memory_order_relaxed) &&
        pthread_mutex_trylock(&c->read_lock) == 0) {
        if (c->reader.start == c->reader.end && !c->reader.failed && !connection_held(c) &&
            c->kept.n == 0) {
            worker_read wr = {.c = c, .worker = worker};
            if (c->ops->read(c->t, take_sends, &wr, false) > 0)
                atomic_store_explicit(&c->heard, true, memory_order_relaxed);
            if (wr.stuck) /* what is left is the loop's to read */
                c->ops->wake(c->t);
            delivered = wr.delivered;
        }
        pthread_mutex_unlock(&c->read_lock);
    }
    pthread_mutex_unlock(&l->poll_lock);
    return delivered;
}

bool node_poll(node *n, void *worker)
{
    void *poller = atomic_load_explicit(&n->poller, memory_order_relaxed);
    if (poller != worker &&
        (poller || !atomic_compare_exchange_strong(&n->poller, &poller, worker)))
        return false; /* another worker polls */
    /* acquire: pairs with the release in lane_set. */
    unsigned count = atomic_load_explicit(&n->npolled, memory_order_acquire);
    bool delivered = false;
    for (unsigned i = 0; i < count; i++)
        delivered |= poll_lane(atomic_load_explicit(&n->polled[i], memory_order_relaxed), worker);
    return delivered;
}

void node_poll_leave(node *n, void *worker, bool parking)
{
    void *expected = worker;
    if (!atomic_compare_exchange_strong(&n->poller, &expected, NULL) || !parking)
        return; /* not the poller; or back soon, and the loop looks meanwhile */
    /* No worker watches now: the loop must, at once (it may be waiting for
     * its next look, or asleep without asking writers to wake it). */
    unsigned count = atomic_load_explicit(&n->npolled, memory_order_acquire);
    for (unsigned i = 0; i < count; i++) {
        lane *l = atomic_load_explicit(&n->polled[i], memory_order_relaxed);
        pthread_mutex_lock(&l->poll_lock);
        if (l->reader)
            l->reader->ops->wake(l->reader->t);
        pthread_mutex_unlock(&l->poll_lock);
    }
}
