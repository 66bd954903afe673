/* Messages: immutable once sent, reference counted, from the system's pool.
 *
 * A message carries one embedded delivery link, used when it is sent while
 * its sender holds the only reference (the common case: no allocation besides
 * the message). A message sent while other references exist gets a separate
 * envelope link per delivery, so one message can sit in many mailboxes. */
#ifndef TR_MSG_H
#define TR_MSG_H

#include "../platform/queue_node.h"
#include "../platform/platform.h"
#include "../platform/pool.h"

#include <stdatomic.h>
#include <stdint.h>

#include "troupe.h"

/* One delivery of a message: what sits in a mailbox. */
typedef struct msg_link {
    queue_node node; /* in one mailbox at a time */
    tr_addr from;
    struct tr_msg *msg;
} msg_link;

struct tr_msg {
    msg_link link;        /* the embedded delivery */
    _Atomic uint32_t refs;
    uint32_t type;
    uint32_t len;
    uint16_t flags;
    int8_t size_class;    /* pool class, or -1 for malloc */
    pool *origin;         /* the pool it came from, NULL for malloc */
    _Alignas(8) unsigned char data[];
};

/* Envelopes: a delivery link of its own, for a message sent while shared or
 * one that carries an ask reference. */
typedef struct envelope {
    msg_link link;
    uint64_t ref; /* an ask's reference, or 0 */
    pool *origin;
    int8_t size_class;
} envelope;

msg_link *msg_envelope_new(tr_msg *msg);
void msg_envelope_free(msg_link *link);

/* A link carrying ref, for an ask or its reply (always an envelope). Takes
 * over the caller's reference to msg; NULL when out of memory. */
static inline msg_link *msg_link_with_ref(tr_msg *msg, tr_addr from, uint64_t ref)
{
    msg_link *link = msg_envelope_new(msg);
    if (link) {
        link->from = from;
        container_of(link, envelope, link)->ref = ref;
    }
    return link;
}

/* The ask reference a link carries, or 0. */
static inline uint64_t msg_link_ref(const msg_link *link)
{
    return link == &link->msg->link ? 0 : container_of(link, envelope, link)->ref;
}
void *msg_block_alloc_slow(size_t size, int *cls, pool **origin);
void msg_block_free_slow(pool *origin, int8_t cls, void *block);

/* A block of size bytes: from the thread's pool cache when it can. */
static inline void *msg_block_alloc(size_t size, int8_t *cls_out, pool **origin)
{
    int cls = pool_class_of(size);
    void *b = cls >= 0 ? pool_cache_take(cls, origin) : NULL;
    if (!b)
        b = msg_block_alloc_slow(size, &cls, origin);
    *cls_out = (int8_t)cls;
    return b;
}

/* A message of len bytes (uninitialised), or NULL when out of memory or
 * too long: tr_msg_alloc, inline for the runtime's own hot paths (every
 * message read from another node). */
static inline tr_msg *msg_alloc(uint32_t type, size_t len)
{
    int8_t cls;
    pool *origin;
    tr_msg *m = len <= UINT32_MAX - sizeof(tr_msg)
                    ? msg_block_alloc(sizeof(tr_msg) + len, &cls, &origin)
                    : NULL;
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->link.msg = m;
    m->type = type;
    m->len = (uint32_t)len;
    m->flags = 0;
    m->size_class = cls;
    m->origin = origin;
    return m;
}

static inline void msg_block_free(pool *origin, int8_t cls, void *block)
{
    if (cls < 0 || !pool_cache_give(origin, cls, block))
        msg_block_free_slow(origin, cls, block);
}

/* A link to deliver msg from `from`; takes over the caller's reference.
 * NULL when an envelope was needed and memory ran out (the reference is then
 * still the caller's). */
static inline msg_link *msg_link_for_send(tr_msg *msg, tr_addr from)
{
    msg_link *link = &msg->link;
    /* acquire: if we hold the only reference, no other delivery of this
     * message can still be using the embedded link. */
    if (atomic_load_explicit(&msg->refs, memory_order_acquire) != 1 &&
        !(link = msg_envelope_new(msg)))
        return NULL;
    link->from = from;
    return link;
}

/* tr_msg_unref, inline for the runtime's own hot path. */
static inline void msg_unref(tr_msg *msg)
{
    /* acquire: if ours is the only reference left, every other holder's
     * last use (and its release below) happened before; no one can take a
     * new reference without holding one, so no read-modify-write is needed.
     * Otherwise acq_rel: the last one out frees after all readers. */
    if (atomic_load_explicit(&msg->refs, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&msg->refs, 1, memory_order_acq_rel) != 1)
        return;
    msg_block_free(msg->origin, msg->size_class, msg);
}

/* Releases a delivered link and its reference to the message. */
static inline void msg_link_release(msg_link *link)
{
    tr_msg *msg = link->msg;
    if (link != &msg->link)
        msg_envelope_free(link);
    msg_unref(msg);
}

/* The link that owns a queue node. */
static inline msg_link *msg_link_of(queue_node *node)
{
    return container_of(node, msg_link, node);
}

/* Checks that data is exactly one well-formed msgpack object whose declared
 * sizes fit in len (each declared element needs at least a byte), before
 * msgpack-c, which trusts declared sizes and would try to allocate what a
 * few hostile bytes announce. Returns 0 or TR_EFORMAT. */
int msgpack_check(const void *data, size_t len);

#endif
