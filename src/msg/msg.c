/* Reference-counted immutable messages. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

/* An envelope: a delivery link of its own, for a message shared by many. */
typedef struct envelope {
    msg_link link;
    pool *origin;
} envelope;

static void *block_alloc(pool *p, size_t size, int8_t *cls)
{
    int c = p ? pool_class_of(size) : -1;
    *cls = (int8_t)c;
    return c >= 0 ? pool_alloc(p, c) : malloc(size);
}

static void block_free(pool *p, int8_t cls, void *block)
{
    if (cls >= 0)
        pool_release(p, cls, block);
    else
        free(block);
}

tr_msg *tr_msg_alloc(uint32_t type, size_t len, void **data)
{
    if (len > UINT32_MAX || len > SIZE_MAX - sizeof(tr_msg))
        return NULL;
    pool *p = pool_thread_pool();
    int8_t cls;
    tr_msg *m = block_alloc(p, sizeof(tr_msg) + len, &cls);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->link.msg = m;
    m->type = type;
    m->len = (uint32_t)len;
    m->flags = 0;
    m->size_class = cls;
    m->origin = cls >= 0 ? p : NULL;
    if (data)
        *data = m->data;
    return m;
}

tr_msg *tr_msg_new(uint32_t type, const void *data, size_t len)
{
    void *payload;
    tr_msg *m = tr_msg_alloc(type, len, &payload);
    if (m && len)
        memcpy(payload, data, len);
    return m;
}

uint32_t tr_msg_type(const tr_msg *msg) { return msg->type; }
const void *tr_msg_data(const tr_msg *msg) { return msg->data; }
size_t tr_msg_size(const tr_msg *msg) { return msg->len; }
uint32_t tr_msg_flags(const tr_msg *msg) { return msg->flags; }
void tr_msg_set_local(tr_msg *msg) { msg->flags |= TR_MSG_LOCAL; }

tr_msg *tr_msg_ref(const tr_msg *msg)
{
    tr_msg *m = (tr_msg *)msg; /* the count is not part of the immutable payload */
    /* relaxed: taking a reference needs no ordering; the caller already holds one. */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void tr_msg_unref(tr_msg *msg)
{
    if (!msg)
        return;
    /* acquire: if ours is the only reference left, every other holder's
     * last use (and its release below) happened before; no one can take a
     * new reference without holding one, so no read-modify-write is needed.
     * Otherwise acq_rel: the last one out frees after all readers. */
    if (atomic_load_explicit(&msg->refs, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&msg->refs, 1, memory_order_acq_rel) != 1)
        return;
    block_free(msg->origin, msg->size_class, msg);
}

msg_link *msg_link_for_send(tr_msg *msg, tr_addr from)
{
    msg_link *link = &msg->link;
    /* acquire: if we hold the only reference, no other delivery of this
     * message can still be using the embedded link. */
    if (atomic_load_explicit(&msg->refs, memory_order_acquire) != 1) {
        pool *p = pool_thread_pool();
        int8_t cls;
        envelope *e = block_alloc(p, sizeof *e, &cls);
        if (!e)
            return NULL;
        e->origin = cls >= 0 ? p : NULL;
        e->link.msg = msg;
        link = &e->link;
    }
    link->from = from;
    return link;
}

void msg_link_release(msg_link *link)
{
    tr_msg *msg = link->msg;
    if (link != &msg->link) {
        envelope *e = container_of(link, envelope, link);
        block_free(e->origin, e->origin ? 0 : -1, e);
    }
    tr_msg_unref(msg);
}
